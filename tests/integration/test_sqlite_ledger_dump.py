"""A SQLite database that also holds the run ledger, backed up in-process while the
dump is slow: the dump's read lock must not fail the run (progress writes would wait
on it and give up after SQLite's 5 s busy timeout) nor hold off the application."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connections

from django_rclone_celery.models import BackupRun

pytestmark = pytest.mark.django_db(transaction=True, databases=["default"])


def test_slow_dump_of_the_ledgers_own_sqlite_file_succeeds(
    remote_dir: Path, drc_config: Any
) -> None:
    path = connections["default"].settings_dict["NAME"]
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE IF EXISTS big_ledger_dump")
        db.execute("CREATE TABLE big_ledger_dump (id INTEGER PRIMARY KEY, a TEXT)")
        db.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 60000) "
            "INSERT INTO big_ledger_dump SELECT i, hex(randomblob(60)) FROM n"
        )
    # About 8 MB at 1 MB/s: the dump holds its read lock for several seconds.
    drc_config(RCLONE_FLAGS=["--bwlimit", "1M", "--buffer-size", "0"], COMPRESSION="none")
    reads: list[float] = []
    done = threading.Event()

    def read_meanwhile() -> None:  # the application reading while the backup runs
        while not done.is_set():
            started = time.monotonic()
            with sqlite3.connect(path, timeout=30) as db:
                db.execute("SELECT count(*) FROM big_ledger_dump").fetchone()
            reads.append(time.monotonic() - started)
            time.sleep(0.2)

    reader = threading.Thread(target=read_meanwhile)
    reader.start()
    try:
        started = time.monotonic()
        call_command("dbbackup", "-d", "default")
        took = time.monotonic() - started
    finally:
        done.set()
        reader.join()
        with sqlite3.connect(path) as db:
            db.execute("DROP TABLE big_ledger_dump")
    assert took > 6, "the dump was not slow enough to hold its lock past SQLite's 5 s wait"
    row = BackupRun.objects.get(operation="db_backup", database="default")
    assert row.status == "succeeded", row.error
    assert [p.name for p in (remote_dir / "db").glob("*.manifest.json")]
    assert reads
    assert max(reads) < 2, f"the application waited {max(reads):.1f} s to read"
