"""A SQLite ledger whose file a restore's swap replaces under another run's connection.

SQLite refuses every write through such a connection ("attempt to write a
readonly database"); a run of another target, or one still waiting for the
lease, must write through a fresh one instead, and a row the swap lost is
written again once the lease is held.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from django.db import OperationalError, connections

from django_rclone_celery import ledger
from django_rclone_celery.models import BackupRun, Status

pytestmark = pytest.mark.django_db(transaction=True, databases=["default"])


def ledger_file() -> Path:
    return Path(connections["default"].settings_dict["NAME"])


def swap_in(copy: Path) -> None:
    """What a SQLite restore does: a new file renamed over the live one."""
    os.replace(copy, ledger_file())


def statuses_on_disk() -> dict[str, str]:
    with sqlite3.connect(ledger_file()) as db:
        rows = db.execute("SELECT task_id, status FROM django_rclone_celery_backuprun").fetchall()
    return dict(rows)


def test_writes_go_to_the_file_that_replaced_the_ledger(tmp_path: Path) -> None:
    row, _ = ledger.claim("db_backup", "other", "manual:a", "run-a")
    copy = tmp_path / "restored.sqlite3"
    shutil.copyfile(ledger_file(), copy)  # the restored file holds the row (written back)
    swap_in(copy)
    # Without a fresh connection this write fails: the old file is read-only now.
    ledger.fail(row, RuntimeError("boom"))
    assert statuses_on_disk()["run-a"] == Status.FAILED


def test_a_row_claimed_just_before_the_swap_is_written_again(tmp_path: Path) -> None:
    copy = tmp_path / "before.sqlite3"
    shutil.copyfile(ledger_file(), copy)  # the ledger as the restore saw it, before our claim
    row, created = ledger.claim("db_backup", "other", "manual:b", "run-b")
    assert created
    swap_in(copy)
    connections["default"].close()
    assert not BackupRun.objects.filter(task_id="run-b").exists()
    again = ledger.written_again_if_lost(row)
    started = ledger.start(again, "run-b", "token", "here")
    assert started is not None
    assert started.status == Status.RUNNING
    assert statuses_on_disk()["run-b"] == Status.RUNNING


def test_other_operational_errors_are_raised_after_one_try() -> None:
    calls: list[int] = []

    @ledger.survives_swap
    def broken() -> None:
        calls.append(1)
        with connections["default"].cursor() as cursor:
            cursor.execute("INSERT INTO no_such_table VALUES (1)")

    with pytest.raises(OperationalError, match="no such table"):
        broken()
    assert calls == [1]
