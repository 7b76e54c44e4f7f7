"""A backup that says "succeeded" restores in full (#20, #16 item 7).

Real SQLite, PostgreSQL and MariaDB, the real dump tools and rclone on a
local-directory remote. A dump that did not end (a writer's lock, a tool that
prints an error and exits 0, a cut stream) is never published, and a restore
refuses it, with or without a manifest, before the live database is touched.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zstandard
from django.db import connections

from django_rclone_celery.completeness import stream_check
from django_rclone_celery.models import BackupRun
from tests.helpers.databases import (
    _SCRATCH_TABLES,
    make_big_table,
    populate,
)
from tests.helpers.remotes import remote_files
from tests.helpers.workers import wait_for

BACKUP = "django_rclone_celery.db_backup"


def big_table(alias: str, rows: int) -> None:
    """``drc_big`` with ``rows`` rows of random text, on every engine (SQLite too)."""
    if connections[alias].vendor != "sqlite":
        make_big_table(alias, "drc_big", rows)
        return
    _SCRATCH_TABLES.add((alias, "drc_big"))
    with connections[alias].cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS drc_big")
        cursor.execute("CREATE TABLE drc_big (id integer PRIMARY KEY, a text, b text)")
        cursor.execute(
            "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < %s) "
            "INSERT INTO drc_big SELECT n, hex(randomblob(16)), 'it''s' || char(10) || n FROM seq",
            [rows],
        )


def decoded(remote_dir: Path, name: str) -> bytes:
    data = (remote_dir / "db" / name).read_bytes()
    return zstandard.ZstdDecompressor().decompressobj().decompress(data)


def checked(vendor: str, data: bytes, step: int = 1 << 20) -> Any:
    check = stream_check(vendor)
    assert check is not None
    for start in range(0, len(data), step):
        check.feed(memoryview(data)[start : start + step])
    return check


def exact_counts(alias: str) -> dict[str, int]:
    with connections[alias].cursor() as cursor:
        counts = {}
        for table in ("testapp_author", "testapp_book", "drc_big"):
            try:
                cursor.execute(f"SELECT count(*) FROM {table}")
            except Exception:
                continue
            counts[table] = cursor.fetchone()[0]
    return counts


def app_counts(counts: dict[str, int]) -> dict[str, int]:
    """The manifest's counts of the app's tables, keyed without a schema."""
    wanted = ("testapp_author", "testapp_book", "drc_big")
    return {k.rsplit(".", 1)[-1]: v for k, v in counts.items() if k.rsplit(".", 1)[-1] in wanted}


# SQLite under a writer ------------------------------------------------------------
@pytest.fixture
def sqlite_file() -> Iterator[str]:
    path = str(connections["default"].settings_dict["NAME"])
    yield path
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=DELETE")


def hold_lock(path: str, journal: str) -> sqlite3.Connection:
    """A writer in the middle of a write transaction that readers must wait for."""
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute(f"PRAGMA journal_mode={journal}")
    if journal == "wal":
        # WAL readers never wait for a writer; an exclusive-mode writer is the
        # WAL case that still shuts them out.
        writer.execute("PRAGMA locking_mode=EXCLUSIVE")
    writer.execute("BEGIN EXCLUSIVE")
    writer.execute("INSERT INTO testapp_author (name) VALUES ('uncommitted')")
    return writer


class LedgerOnPg:
    """Keeps the run ledger off the SQLite file the test locks (there, the command
    would stop earlier, in one line too: it cannot record the run)."""

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        from django_rclone_celery.models import BackupRun

        return "pg" if model is BackupRun else None

    db_for_write = db_for_read


# A tool that prints an error and exits 0 ------------------------------------------
WRAPPERS = {
    # The message sqlite3 prints for a lock or a bad page, then exit 0.
    "sqlite3": (
        "printf 'PRAGMA foreign_keys=OFF;\\nBEGIN TRANSACTION;\\n"
        "/**** ERROR: (11) database disk image is malformed *****/\\n"
        "ROLLBACK; -- due to errors\\n'\nexit 0\n"
    ),
    # Half a dump, an error on stderr, exit 0.
    "mysqldump": '"$REAL" "$@" | head -c 3000\necho "mysqldump: Got error 2013" >&2\nexit 0\n',
    "pg_dump": '"$REAL" "$@" | head -c 6000\necho "pg_dump: error: connection lost" >&2\nexit 0\n',
}
TOOL = {"default": "sqlite3", "pg": "pg_dump", "maria": "mysqldump"}


def install_wrapper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tool: str) -> None:
    real = shutil.which(tool)
    assert real
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / tool
    body = WRAPPERS[tool]
    script.write_text(
        f'#!/bin/sh\nREAL="{real}"\ncase "$1" in --version) exec "$REAL" "$@";; esac\n{body}'
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")


@pytest.mark.django_db(transaction=True, databases=["default"])
def test_the_task_fails_its_ledger_row_with_the_reason(
    task_app: Any,
    workers: Any,
    remote_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    populate("default", authors=2, books=1)
    install_wrapper(tmp_path, monkeypatch, "sqlite3")
    workers.start()
    result = task_app.send_task(BACKUP, kwargs={"database": "default"})
    with pytest.raises(Exception) as caught:
        result.get(timeout=120)
    assert type(caught.value).__name__ == "IncompleteBackup"
    run = wait_for(
        lambda: BackupRun.objects.filter(task_id=result.id, status="failed").first(),
        what="a failed ledger row",
        pool=workers,
    )
    assert "database disk image is malformed" in run.error
    failed = [s for s in workers.signals() if s["signal"] == "stage_failed"]
    assert [s["exception"] for s in failed] == ["IncompleteBackup"]
    assert remote_files(remote_dir) == []


# Restore refuses the same, with or without a manifest (#16 item 7) ------------------
def cut_after_a_statement(dump: bytes) -> bytes:
    """The first part of a dump, ending with a complete statement's line."""
    middle = dump.index(b";\n", len(dump) // 2) + 2
    return dump[:middle]


