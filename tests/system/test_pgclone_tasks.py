"""pgclone's Celery tasks, run by a real ``celery worker`` through a real Redis broker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.db import connections

from django_rclone_celery import pgclone
from django_rclone_celery.models import BackupRun
from tests.helpers.databases import damage, populate, snapshot
from tests.helpers.workers import wait_for

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True, databases=["default", "pg"]),
]


def _drop_beside_live() -> None:
    from django_rclone_celery.connectors import get_connector

    live = connections["pg"].settings_dict["NAME"]
    connections["pg"].close()
    connector = get_connector("pg")
    with connector.cursor("postgres") as cursor:
        cursor.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", [live + "__%"])
        for (name,) in cursor.fetchall():
            connector.drop(cursor, name)  # type: ignore[attr-defined]


def test_dump_restore_and_copy_tasks_run_on_a_worker(
    task_app: Any,
    workers: Any,
    remote_dir: Path,
    settings: Any,
) -> None:
    settings.PGCLONE_DATABASE = "pg"
    populate("pg")
    original = snapshot("pg")
    workers.start()
    try:
        dumped = task_app.send_task(
            "django_rclone_celery.pgclone_dump", kwargs={"database": "pg", "instance": "w"}
        ).get(timeout=180)
        assert dumped["status"] == "succeeded"
        assert dumped["operation"] == "pgclone_dump"
        key = dumped["dump_key"]
        assert key.startswith("w/pg/none/")
        assert pgclone.ls() == [key]
        assert dumped["path"] == str(remote_dir / "pgclone" / key)
        assert dumped["size"] == (remote_dir / "pgclone" / key).stat().st_size
        run = BackupRun.objects.get(task_id=dumped["task_id"])
        assert (run.operation, run.database, run.status) == ("pgclone_dump", "pg", "succeeded")

        damage("pg")
        connections["pg"].close()
        restored = task_app.send_task(
            "django_rclone_celery.pgclone_restore",
            kwargs={"dump_key": "w/", "database": "pg", "pre_swap_hooks": []},
        ).get(timeout=180)
        assert (restored["operation"], restored["dump_key"]) == ("pgclone_restore", key)
        assert snapshot("pg") == original

        connections["pg"].close()
        snap = f":drc_pgclone_task_{connections['pg'].settings_dict['NAME']}"[:60]
        copied = task_app.send_task(
            "django_rclone_celery.pgclone_copy", kwargs={"dump_key": snap, "database": "pg"}
        ).get(timeout=180)
        assert (copied["operation"], copied["dump_key"], copied["path"]) == (
            "pgclone_copy",
            snap,
            snap[1:],
        )
        assert snap in pgclone.ls(local=True)

        # A refused copy fails the task with the operation's error.
        again = task_app.send_task(
            "django_rclone_celery.pgclone_copy", kwargs={"dump_key": snap, "database": "pg"}
        )
        with pytest.raises(Exception) as caught:
            again.get(timeout=120)
        assert type(caught.value).__name__ == "CopyError"
        failed = wait_for(
            lambda: BackupRun.objects.filter(task_id=again.id, status="failed").first(),
            what="failed ledger row",
            pool=workers,
        )
        assert "already exists" in failed.error
    finally:
        _drop_beside_live()
        from django_rclone_celery.connectors import get_connector

        connector = get_connector("pg")
        with connector.cursor("postgres") as cursor:
            cursor.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE 'drc_pgclone_task_%'"
            )
            for (name,) in cursor.fetchall():
                connector.drop(cursor, name)  # type: ignore[attr-defined]
