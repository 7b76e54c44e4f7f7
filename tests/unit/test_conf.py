"""Settings: django-rclone's keys work unchanged, every problem has a stable check id."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.core import checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from django_rclone_celery.checks import TAG, check_settings
from django_rclone_celery.conf import DEFAULTS, get_settings, validate
from django_rclone_celery.exceptions import ConfigurationError


def ids(raw: object) -> list[str]:
    return sorted(p.id for p in validate(raw))  # type: ignore[arg-type]


def test_django_rclone_settings_work_unchanged() -> None:
    # A django-rclone user's full settings dict, every key at a non-default value.
    raw = {
        "REMOTE": "s3remote:bucket/backups",
        "RCLONE_BINARY": "rclone",
        "RCLONE_CONFIG": "/etc/rclone.conf",
        "RCLONE_FLAGS": ["--transfers", "8"],
        "DB_BACKUP_DIR": "database",
        "DB_FILENAME_TEMPLATE": "{database}_{datetime}.{ext}",
        "DB_DATE_FORMAT": "%Y%m%d%H%M%S",
        "DB_CLEANUP_KEEP": 3,
        "MEDIA_BACKUP_DIR": "files",
        "CONNECTORS": {"default": "django_rclone.db.postgresql.PgDumpConnector"},
        "CONNECTOR_MAPPING": {"custom.engine": "django_rclone.db.mysql.MysqlDumpConnector"},
    }
    assert validate(raw) == []
    with override_settings(DJANGO_RCLONE=raw):
        s = get_settings()
        assert s.remote == "s3remote:bucket/backups"
        assert s.rclone_config == "/etc/rclone.conf"
        assert s.rclone_flags == ("--transfers", "8")
        assert s.db_backup_dir == "database"
        assert s.db_cleanup_keep == 3
        assert s.media_backup_dir == "files"
        assert s.compression == "zstd"


def test_defaults_match_django_rclone() -> None:
    with override_settings(DJANGO_RCLONE={"REMOTE": "r:"}):
        s = get_settings()
    assert (s.rclone_binary, s.rclone_config, s.rclone_flags) == ("rclone", None, ())
    assert s.db_backup_dir == "db"
    assert s.db_filename_template == "{database}-{datetime}.{ext}"
    assert s.db_date_format == "%Y-%m-%d-%H%M%S"
    assert s.db_cleanup_keep == 10
    assert s.media_backup_dir == "media"


def test_settings_refresh_when_overridden() -> None:
    with override_settings(DJANGO_RCLONE={"REMOTE": "first:"}):
        assert get_settings().remote == "first:"
        with override_settings(DJANGO_RCLONE={"REMOTE": "second:"}):
            assert get_settings().remote == "second:"
        assert get_settings().remote == "first:"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("not a dict", ["django_rclone_celery.E001"]),
        ({}, ["django_rclone_celery.E002"]),
        ({"REMOTE": ""}, ["django_rclone_celery.E002"]),
        ({"REMOTE": 5}, ["django_rclone_celery.E003"]),
        ({"REMOTE": "r:", "DB_CLEANUP_KEEP": "3"}, ["django_rclone_celery.E003"]),
        ({"REMOTE": "r:", "INSTALL_SCHEDULES": 1}, ["django_rclone_celery.E003"]),
        ({"REMOTE": "r:", "RCLONE_FLAGS": ["--a", 3]}, ["django_rclone_celery.E003"]),
        (
            {"REMOTE": "r:", "DB_FILENAME_TEMPLATE": "{datetime}.{ext}"},
            ["django_rclone_celery.E004"],
        ),
        (
            {"REMOTE": "r:", "DB_FILENAME_TEMPLATE": "{database}/{datetime}.{ext}"},
            ["django_rclone_celery.E004"],
        ),
        (
            {"REMOTE": "r:", "DB_FILENAME_TEMPLATE": "{database}-{host}-{datetime}.{ext}"},
            ["django_rclone_celery.E004"],
        ),
        ({"REMOTE": "r:", "DB_DATE_FORMAT": "%Y/%m"}, ["django_rclone_celery.E005"]),
        ({"REMOTE": "r:", "DB_CLEANUP_KEEP": 0}, ["django_rclone_celery.E006"]),
        ({"REMOTE": "r:", "DB_CLEANUP_KEEP_DAILY": -1}, ["django_rclone_celery.E012"]),
        ({"REMOTE": "r:", "DB_CLEANUP_KEEP_WEEKLY": -1}, ["django_rclone_celery.E013"]),
        ({"REMOTE": "r:", "DB_CLEANUP_KEEP_MONTHLY": -3}, ["django_rclone_celery.E014"]),
        ({"REMOTE": "r:", "DB_CLEANUP_KEEP_WITHIN_DAYS": -1}, ["django_rclone_celery.E015"]),
        ({"REMOTE": "r:", "DB_CLEANUP_KEEP_DAILY": "7"}, ["django_rclone_celery.E003"]),
        ({"REMOTE": "r:", "DB_CLEANUP_KEEP_WEEKLY": 1.5}, ["django_rclone_celery.E003"]),
        ({"REMOTE": "r:", "DB_CLEANUP_KEEP_MONTHLY": None}, ["django_rclone_celery.E003"]),
        ({"REMOTE": "r:", "DB_CLEANUP_KEEP_WITHIN_DAYS": True}, ["django_rclone_celery.E003"]),
        ({"REMOTE": "r:", "COMPRESSION": "gzip"}, ["django_rclone_celery.E007"]),
        ({"REMOTE": "r:", "COMPRESSION_LEVEL": 40}, ["django_rclone_celery.E008"]),
        ({"REMOTE": "r:", "COMPRESSION_THREADS": -2}, ["django_rclone_celery.E016"]),
        ({"REMOTE": "r:", "COMPRESSION_THREADS": "2"}, ["django_rclone_celery.E003"]),
        ({"REMOTE": "r:", "COMPRESSION_THREADS": None}, []),
        ({"REMOTE": "r:", "COMPRESSION_THREADS": -1}, []),
        ({"REMOTE": "r:", "COMPRESSION_THREADS": 0}, []),
        ({"REMOTE": "r:", "COMPRESSION_THREADS": 4}, []),
        ({"REMOTE": "r:", "DB_BACKUP_DIR": "../elsewhere"}, ["django_rclone_celery.E009"]),
        (
            {"REMOTE": "r:", "TASK_SOFT_TIME_LIMIT": 100, "TASK_TIME_LIMIT": 50},
            ["django_rclone_celery.E010"],
        ),
        ({"REMOTE": "r:", "SQLITE_LOCK_TIMEOUT": 0}, ["django_rclone_celery.E068"]),
        ({"REMOTE": "r:", "SQLITE_LOCK_TIMEOUT": "5"}, ["django_rclone_celery.E003"]),
        ({"REMOTE": "r:", "SQLITE_LOCK_TIMEOUT": 1}, []),
        ({"REMOTE": "r:", "REMOTEE": "typo"}, ["django_rclone_celery.W001"]),
    ],
)
def test_validation_ids(raw: object, expected: list[str]) -> None:
    found = ids(raw)
    for check_id in expected:
        assert check_id in found
    assert all(i in expected for i in found), found


def test_get_settings_raises_the_first_error_with_its_id() -> None:
    with (
        override_settings(DJANGO_RCLONE={"REMOTE": "r:", "COMPRESSION": "gzip"}),
        pytest.raises(ConfigurationError, match=r"django_rclone_celery\.E007"),
    ):
        get_settings()


def test_every_default_has_a_type_rule() -> None:
    # Each key is declared once, as a field: its type test accepts its own default.
    from django_rclone_celery.conf import SETTINGS

    assert set(SETTINGS.declared) == set(DEFAULTS)
    for key, (_, declared) in SETTINGS.declared.items():
        assert declared.kind, key
        assert declared.accepts(DEFAULTS[key]), key


def test_system_check_reports_missing_rclone() -> None:
    with override_settings(DJANGO_RCLONE={"REMOTE": "r:", "RCLONE_BINARY": "no-such-rclone-xyz"}):
        messages = check_settings()
    assert [m.id for m in messages if m.level >= checks.ERROR] == ["django_rclone_celery.E011"]


def test_system_check_reports_missing_dump_tool() -> None:
    raw = {
        "REMOTE": "r:",
        "CONNECTORS": {"default": "tests.unit.test_conf.MissingToolConnector"},
    }
    with override_settings(DJANGO_RCLONE=raw):
        messages = check_settings()
    assert any(
        m.id == "django_rclone_celery.W003" and "drc-missing-dump" in m.msg for m in messages
    )


def test_system_check_reports_unmappable_engine() -> None:
    raw = {"REMOTE": "r:", "CONNECTORS": {"default": "tests.unit.test_conf.NotAConnector"}}
    with override_settings(DJANGO_RCLONE=raw):
        messages = check_settings()
    assert any(m.id == "django_rclone_celery.W002" for m in messages)


def test_registered_checks_run_clean_on_test_settings() -> None:
    errors = [m for m in checks.run_checks() if m.level >= checks.ERROR]
    assert errors == []


from django_rclone_celery.connectors.sqlite import SqliteConnector  # noqa: E402


class MissingToolConnector(SqliteConnector):
    dump_tool = "drc-missing-dump"


class NotAConnector:
    pass


def _unrelated_error(app_configs: object = None, **kwargs: object) -> list[checks.CheckMessage]:
    return [checks.Error("an unrelated app is misconfigured", id="otherapp.E001")]


def _our_error(app_configs: object = None, **kwargs: object) -> list[checks.CheckMessage]:
    return [checks.Error("a backup setting is wrong", id="django_rclone_celery.E999")]


@pytest.mark.parametrize(
    ("check", "tags", "blocks"),
    [(_unrelated_error, ("otherapp",), False), (_our_error, (TAG,), True)],
    ids=["unrelated-error-does-not-block", "own-error-blocks"],
)
def test_operation_commands_run_only_this_packages_checks(
    check: Any, tags: tuple[str, ...], blocks: bool
) -> None:
    registry = checks.registry.registry
    registry.register(check, *tags)
    try:
        # ``manage.py check`` still sees every error.
        with pytest.raises(SystemCheckError):
            call_command("check")
        out = io.StringIO()
        if blocks:
            with pytest.raises(SystemCheckError, match="a backup setting is wrong"):
                call_command("listbackups", "--json", skip_checks=False, stdout=out)
        else:
            call_command("listbackups", "--json", skip_checks=False, stdout=out)
            assert isinstance(json.loads(out.getvalue()), list)
    finally:
        registry.registered_checks.discard(check)
