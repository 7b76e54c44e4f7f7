"""Two projects (or environments) sharing one Redis and one remote: ``NAMESPACE``.

Each project is its settings: the tests switch ``DJANGO_RCLONE`` between
them, against the session's throwaway Redis and one local-directory remote
driven by the real rclone binary.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core import checks
from django.core.management import call_command

from django_rclone_celery import locks, naming
from django_rclone_celery.conf import get_settings
from django_rclone_celery.operations import cleanup_backups, list_backups
from tests.helpers.workers import LOCK_DB, RedisServer

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def write_backups(db: Path, count: int) -> list[str]:
    """``count`` daily backup objects of ``default``, named by the current project's settings."""
    settings = get_settings()
    names = []
    for day in range(count):
        name = naming.render(
            settings, database="default", ext="sqlite3.zst", when=NOW - timedelta(days=day)
        )
        (db / name).write_bytes(b"backup")
        names.append(name)
    return names


def test_two_projects_on_one_redis_never_wait_for_each_other(
    redis_server: RedisServer, drc_config: Callable[..., Any]
) -> None:
    redis_server.client(LOCK_DB).flushdb()
    drc_config(LOCK_URL=redis_server.url(LOCK_DB), NAMESPACE="shop")
    shop = locks.lease("default", ttl=30)
    assert shop.acquire()
    shop_again = locks.lease("default", ttl=30)
    assert not shop_again.acquire()  # within one project the lock still excludes
    drc_config(NAMESPACE="blog")
    blog = locks.lease("default", ttl=30)
    assert blog.acquire()  # another project's "default" is another lock
    assert blog.release()
    drc_config(NAMESPACE="shop")
    assert shop.release()
    assert sorted(redis_server.client(LOCK_DB).keys()) == []


def test_without_a_namespace_the_lock_key_names_the_project(drc_config: Callable[..., Any]) -> None:
    drc_config(NAMESPACE=None)
    # tests.settings: the settings module's top package stands in for the project.
    assert locks.lock_key("default") == "django_rclone_celery:lock:tests:default"
    drc_config(NAMESPACE="shop")
    assert locks.lock_key("default") == "django_rclone_celery:lock:shop:default"


@pytest.mark.django_db(transaction=True, databases=["default"])
def test_two_projects_on_one_remote_never_list_or_delete_each_others_backups(
    remote_dir: Path, drc_config: Callable[..., Any]
) -> None:
    db = remote_dir / "db"
    db.mkdir()
    legacy = write_backups(db, 2)  # django-rclone's names, from before NAMESPACE was set
    assert legacy[0] == "default-2026-03-01-120000.sqlite3.zst"
    drc_config(NAMESPACE="shop")
    shop = write_backups(db, 3)
    assert shop[0] == "shop.default-2026-03-01-120000.sqlite3.zst"
    # A real backup is named the same way, and is listed and restorable.
    call_command("dbbackup", "-d", "default", stdout=StringIO())
    [real] = [b.name for b in list_backups("default") if b.created > NOW]
    assert real.startswith("shop.default-")
    call_command("dbrestore", "-d", "default", "-i", real, "--noinput", stdout=StringIO())
    shop.insert(0, real)
    drc_config(NAMESPACE="blog")
    blog = write_backups(db, 3)

    # Each project sees its own backups and the unprefixed ones, never the other's.
    assert {b.name for b in list_backups("default")} == {*blog, *legacy}
    drc_config(NAMESPACE="shop")
    assert {b.name for b in list_backups("default")} == {*shop, *legacy}

    # Retention deletes only names with the project's own prefix.
    result = cleanup_backups("default", keep=1)
    assert sorted(result.deleted) == sorted(shop[1:])
    assert sorted(p.name for p in db.iterdir() if not p.name.endswith(".manifest.json")) == sorted(
        [shop[0], *blog, *legacy]
    )
    drc_config(NAMESPACE="blog")
    assert sorted(cleanup_backups("default", keep=2).deleted) == sorted(blog[2:])
    # A project without a namespace owns only the unprefixed names.
    drc_config(NAMESPACE=None)
    assert {b.name for b in list_backups("default")} == set(legacy)
    assert cleanup_backups("default", keep=1).deleted == [legacy[1]]
    assert sorted(p.name for p in db.iterdir() if not p.name.endswith(".manifest.json")) == sorted(
        [shop[0], *blog[:2], legacy[0]]
    )


@pytest.mark.parametrize("bad", ["a.b", "a/b", "prod:eu", "-x", "x" * 65])
def test_a_namespace_that_would_break_names_is_refused(
    drc_config: Callable[..., Any], bad: str
) -> None:
    drc_config(NAMESPACE=bad)
    ids = [m.id for m in checks.run_checks(tags=["django_rclone_celery"])]
    assert "django_rclone_celery.E017" in ids
