"""Restoring one alias's backups into another database (``--from-database``).

"Restore production's backup into staging": the backups of alias ``pg`` go
into alias ``gis`` (also PostgreSQL, with PostGIS). Real PostgreSQL, MariaDB
and SQLite databases, the real rclone binary on a local-directory remote, and
real Celery workers for the task; nothing is mocked.
"""

from __future__ import annotations

from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connections

from django_rclone_celery import locks
from django_rclone_celery.models import BackupRun
from django_rclone_celery.operations import backup_database
from tests.helpers.databases import damage, populate, snapshot
from tests.helpers.workers import wait_for

RESTORE = "django_rclone_celery.db_restore"


def call(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def read(alias: str) -> dict[str, list[tuple[Any, ...]]]:
    """The rows of ``alias`` as a new session sees them (a restore may have swapped it)."""
    connections[alias].close()
    return snapshot(alias)


def staging_data(alias: str) -> dict[str, list[tuple[Any, ...]]]:
    """Rows for the target that differ from whatever ``populate`` gives the source."""
    populate(alias, authors=2, books=1)
    damage(alias)
    return snapshot(alias)


# Through Celery ------------------------------------------------------------
WORKER_DBS = pytest.mark.django_db(transaction=True, databases=["default", "pg", "gis"])


@WORKER_DBS
def test_the_task_restores_from_another_alias_under_the_target_lock(
    task_app: Any, workers: Any, remote_dir: Path
) -> None:
    """The lease taken is the target's (the database replaced), not the source's."""
    populate("pg")
    production = snapshot("pg")
    backup = backup_database("pg")
    staging = staging_data("gis")
    workers.start()

    source_lock, target_lock = locks.lease("pg"), locks.lease("gis")
    assert source_lock.acquire()
    assert target_lock.acquire()
    try:
        with locks.Heartbeat(source_lock):  # held the whole time: the run must not need it
            with locks.Heartbeat(target_lock):
                result = task_app.send_task(
                    RESTORE, kwargs={"database": "gis", "from_database": "pg"}
                )
                row = wait_for(
                    lambda: BackupRun.objects.filter(task_id=result.id, status="queued").first(),
                    what="the restore to wait for the lock on gis",
                    pool=workers,
                )
                assert row.database == "gis"
                assert read("gis") == staging
            target_lock.release()
            value = result.get(timeout=120)
    finally:
        target_lock.release()
        source_lock.release()

    assert value["status"] == "succeeded"
    assert (value["database"], value["name"]) == ("gis", backup.name)
    assert read("gis") == production
    run = BackupRun.objects.get(task_id=result.id)
    assert (run.operation, run.database, run.status) == ("db_restore", "gis", "succeeded")


@WORKER_DBS
def test_dbrestore_wait_hands_the_confirmed_backup_and_source_to_the_worker(
    task_app: Any, workers: Any, remote_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    populate("pg", authors=1, books=1)
    older_rows = snapshot("pg")
    older = backup_database("pg")
    populate("pg", authors=1, books=1)
    backup_database("pg")  # newer: the latest, but not the one confirmed
    staging_data("gis")
    workers.start()
    monkeypatch.setattr("builtins.input", lambda prompt: "y")

    text = call("dbrestore", "-d", "gis", "--from-database", "pg", "-i", older.name, "--wait")

    assert "Queued db_restore as task" in text
    assert "succeeded" in text
    assert older.name in text
    assert read("gis") == older_rows


@WORKER_DBS
def test_enqueue_sends_from_database_with_the_message(task_app: Any, remote_dir: Path) -> None:
    # No worker: the message waits in Redis; its kwargs are what a worker would get.
    text = call("dbrestore", "-d", "gis", "--from-database", "pg", "--noinput", "--enqueue")
    with task_app.connection_for_read() as conn:
        message = conn.default_channel.basic_get("celery")
    assert message.headers["task"] == RESTORE
    assert message.headers["id"] in text
    args, kwargs, _ = message.decode()
    assert (args, kwargs) == ([], {"database": "gis", "input_path": None, "from_database": "pg"})
