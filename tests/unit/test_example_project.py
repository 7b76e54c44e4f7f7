"""The example project's configuration from environment variables."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ENV_PY = Path(__file__).resolve().parents[2] / "example_project" / "bookshop" / "env.py"


def load_env() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bookshop_env", ENV_PY)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "postgres://app:s%40cret@db.internal:6543/shop",
            {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": "shop",
                "USER": "app",
                "PASSWORD": "s@cret",
                "HOST": "db.internal",
                "PORT": "6543",
            },
        ),
        (
            "mariadb://root@127.0.0.1/shop",
            {
                "ENGINE": "django.db.backends.mysql",
                "NAME": "shop",
                "USER": "root",
                "PASSWORD": "",
                "HOST": "127.0.0.1",
                "PORT": "",
                "OPTIONS": {"charset": "utf8mb4"},
            },
        ),
        (
            "sqlite:////var/lib/shop.sqlite3",
            {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": "/var/lib/shop.sqlite3",
                "OPTIONS": {"timeout": 30},
            },
        ),
        (
            "sqlite:///shop.sqlite3",
            {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": "shop.sqlite3",
                "OPTIONS": {"timeout": 30},
            },
        ),
    ],
)
def test_database_url(url: str, expected: dict[str, object]) -> None:
    assert load_env().parse_database_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("oracle://x/y", "scheme 'oracle' is not one of"),
        ("postgres://host:5432/", "needs a database name"),
        ("sqlite://", "needs a file name"),
    ],
)
def test_bad_database_url_is_a_clear_error(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_env().parse_database_url(url)


def test_embedded_defaults_need_no_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "REDIS_URL", "BACKUP_REMOTE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BOOKSHOP_VAR", str(tmp_path))
    env = load_env()
    assert env.database()["NAME"] == str(tmp_path / "bookshop.sqlite3")
    celery = env.celery()
    assert celery["broker_url"] == "filesystem://"
    assert celery["broker_transport"] == "bookshop.broker:Transport"  # whole messages only
    assert celery["result_backend"] == (tmp_path / "broker" / "results").as_uri()
    assert env.remote() == str(tmp_path / "remote")
    assert env.lock_url() == (tmp_path / "locks").as_uri()

    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6390/0")
    celery = env.celery()
    assert celery["broker_url"] == celery["result_backend"] == "redis://127.0.0.1:6390/0"
    assert celery["broker_transport_options"]["visibility_timeout"] > 6 * 3600 + 300
    assert env.lock_url() is None
