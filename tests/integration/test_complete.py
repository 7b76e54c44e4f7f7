"""A backup that says "succeeded" restores in full (#20, #16 item 7).

Real SQLite, PostgreSQL and MariaDB, the real dump tools and rclone on a
local-directory remote. A dump that did not end (a writer's lock, a tool that
prints an error and exits 0, a cut stream) is never published, and a restore
refuses it, with or without a manifest, before the live database is touched.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zstandard
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections

from django_rclone_celery import signals
from django_rclone_celery.completeness import stream_check
from django_rclone_celery.exceptions import IncompleteBackup, InvalidBackup
from django_rclone_celery.models import BackupRun
from django_rclone_celery.operations import (
    backup_database,
    list_backups,
    restore_database,
    verify_backup,
)
from tests.helpers.databases import (
    _SCRATCH_TABLES,
    db_params,
    make_big_table,
    populate,
    snapshot,
    staging_leftovers,
)
from tests.helpers.remotes import remote_files


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


# The check itself, on real dumps ------------------------------------------------
@pytest.mark.parametrize("alias", db_params("default", "pg", "maria"))
def test_counts_come_from_the_stream_and_every_cut_is_refused(alias: str, remote_dir: Path) -> None:
    from tests.testapp.models import Author

    populate(alias, authors=4, books=3)
    # Values that look like a row separator or sqlite3's error line must not count as such.
    Author.objects.using(alias).create(name="x'),('y),(z\\'),\n(/**** ERROR: (5) no *****/")
    big_table(alias, 3000)
    backup = backup_database(alias)
    manifest = json.loads((remote_dir / "db" / (backup.name + ".manifest.json")).read_text())
    assert manifest["row_counts_from"] == "dump"
    # Exact, not estimates: the rows the dump holds.
    assert (
        app_counts(manifest["row_counts"])
        == exact_counts(alias)
        == {
            "testapp_author": 5,
            "testapp_book": 12,
            "drc_big": 3000,
        }
    )
    dump = decoded(remote_dir, backup.name)
    vendor = connections[alias].vendor
    whole = checked(vendor, dump, step=4093)
    assert whole.problem() is None
    if vendor == "postgresql":
        # The backup counted in the snapshot pg_dump read (one chunk per row is
        # too many to walk on the backup path); verification walks and counts.
        assert whole.counts() is None
        assert set(manifest["row_counts"]) == whole.tables()
        counted = stream_check(vendor, counting=True)
        assert counted is not None
        for start in range(0, len(dump), 4093):
            counted.feed(dump[start : start + 4093])
        assert counted.problem() is None
        assert counted.counts() == manifest["row_counts"]
    else:
        assert whole.counts() == manifest["row_counts"]
    # Cut anywhere before its last line, even right after a complete statement: refused.
    lines = [i + 1 for i, byte in enumerate(dump) if byte == 0x0A]
    last = dump.rstrip(b"\n").rfind(b"\n") + 1
    cuts = {last - 1, len(dump) // 2, 10, *lines[-8:-1], *lines[:: max(1, len(lines) // 40)]}
    for cut in sorted(c for c in cuts if 0 < c < last):
        assert checked(vendor, dump[:cut]).problem(), f"a dump cut at byte {cut} passed"


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

        return "pg" if model is BackupRun else None

    db_for_write = db_for_read


@pytest.mark.django_db(transaction=True, databases=["default", "pg"])
@pytest.mark.parametrize("journal", ["delete", "wal"])
def test_sqlite_locked_past_the_bound_fails_in_one_line_and_publishes_nothing(
    journal: str, sqlite_file: str, remote_dir: Path, drc_config: Any, capsys: Any, settings: Any
) -> None:
    settings.DATABASE_ROUTERS = [f"{__name__}.LedgerOnPg"]
    populate("default", authors=2, books=1)
    first = backup_database("default")
    before = remote_files(remote_dir)
    drc_config(SQLITE_LOCK_TIMEOUT=1)
    connections["default"].close()
    failed: list[Any] = []

    def on_failed(sender: Any, exception: BaseException, **kwargs: Any) -> None:
        failed.append(exception)

    signals.stage_failed.connect(on_failed)
    writer = hold_lock(sqlite_file, journal)
    try:
        started = time.monotonic()
        with pytest.raises(CommandError) as caught:
            call_command("dbbackup", "-d", "default")
        waited = time.monotonic() - started
    finally:
        signals.stage_failed.disconnect(on_failed)
        writer.execute("ROLLBACK")
        writer.close()
    message = str(caught.value)
    assert "database is locked for more than 1 s" in message
    assert "\n" not in message
    assert waited >= 1
    assert [type(e) for e in failed] == [IncompleteBackup]
    assert remote_files(remote_dir) == before
    assert list_backups("default")[0].name == first.name


@pytest.mark.django_db(transaction=True, databases=["default"])
@pytest.mark.parametrize("journal", ["delete", "wal"])
def test_sqlite_waits_for_a_writer_and_publishes_a_whole_snapshot(
    journal: str, sqlite_file: str, remote_dir: Path, drc_config: Any
) -> None:
    populate("default", authors=3, books=2)
    drc_config(SQLITE_LOCK_TIMEOUT=30)
    connections["default"].close()
    writer = sqlite3.connect(sqlite_file, isolation_level=None, check_same_thread=False)
    writer.execute(f"PRAGMA journal_mode={journal}")
    writer.execute("BEGIN EXCLUSIVE")
    writer.executemany(
        "INSERT INTO testapp_author (name) VALUES (?)", [(f"late {i}",) for i in range(50)]
    )
    commit = threading.Timer(0.7, lambda: writer.execute("COMMIT"))
    commit.start()
    try:
        backup = backup_database("default")
    finally:
        commit.join()
        writer.close()
    manifest = json.loads((remote_dir / "db" / (backup.name + ".manifest.json")).read_text())
    authors = manifest["row_counts"]["testapp_author"]
    if journal == "delete":
        assert authors == 53  # it waited for the commit, then read it
    else:
        assert authors in (3, 53)  # a WAL reader reads whichever commit it started at
    assert manifest["row_counts"]["testapp_book"] == 6
    result = verify_backup("default", restore=True)
    assert "end marker" in result.checks
    assert "restore" in result.checks


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


@pytest.mark.parametrize("alias", db_params("default", "pg", "maria"))
def test_a_tool_that_prints_an_error_and_exits_0_publishes_nothing(
    alias: str, remote_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    populate(alias, authors=3, books=2)
    big_table(alias, 2000)
    first = backup_database(alias)
    before = remote_files(remote_dir)
    install_wrapper(tmp_path, monkeypatch, TOOL[alias])
    with pytest.raises(CommandError) as caught:
        call_command("dbbackup", "-d", alias)
    message = str(caught.value)
    assert "\n" not in message
    assert f"the dump of database {alias!r}" in message
    assert "incomplete" in message
    assert remote_files(remote_dir) == before
    assert list_backups(alias)[0].name == first.name


# Restore refuses the same, with or without a manifest (#16 item 7) ------------------
def cut_after_a_statement(dump: bytes) -> bytes:
    """The first part of a dump, ending with a complete statement's line."""
    middle = dump.index(b";\n", len(dump) // 2) + 2
    return dump[:middle]


@pytest.mark.parametrize("with_manifest", [False, True], ids=["no-manifest", "manifest"])
@pytest.mark.parametrize("alias", db_params("default", "maria", "pg"))
def test_restore_refuses_a_dump_cut_after_a_complete_statement(
    alias: str, with_manifest: bool, remote_dir: Path
) -> None:
    populate(alias, authors=4, books=3)
    big_table(alias, 3000)
    backup = backup_database(alias)
    dump = decoded(remote_dir, backup.name)
    cut = dump[: len(dump) // 2] if alias == "pg" else cut_after_a_statement(dump)
    stored = zstandard.ZstdCompressor().compress(cut)
    (remote_dir / "db" / backup.name).write_bytes(stored)
    manifest_path = remote_dir / "db" / (backup.name + ".manifest.json")
    if with_manifest:  # a manifest that agrees: the checksum cannot tell
        manifest = json.loads(manifest_path.read_text())
        manifest.update(size=len(stored), sha256=hashlib.sha256(stored).hexdigest())
        manifest_path.write_text(json.dumps(manifest))
    else:  # a django-rclone backup has none
        manifest_path.unlink()
    connections[alias].close()
    with connections[alias].cursor() as cursor:
        cursor.execute("DELETE FROM drc_big WHERE id <= 10")
    live = snapshot(alias)
    with pytest.raises(CommandError) as caught:
        call_command("dbrestore", "-d", alias, "--noinput")
    assert "incomplete" in str(caught.value) or "cut short" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert snapshot(alias) == live
    assert exact_counts(alias)["drc_big"] == 2990
    assert staging_leftovers(alias) == []
    with pytest.raises(InvalidBackup):
        restore_database(alias)


@pytest.mark.parametrize("alias", db_params("default", "maria", "pg"))
def test_verify_refuses_a_manifest_whose_counts_the_stream_does_not_hold(
    alias: str, remote_dir: Path
) -> None:
    populate(alias, authors=2, books=2)
    backup = backup_database(alias)
    manifest_path = remote_dir / "db" / (backup.name + ".manifest.json")
    manifest = json.loads(manifest_path.read_text())
    key = next(k for k in manifest["row_counts"] if k.endswith("testapp_book"))
    manifest["row_counts"][key] += 1
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(CommandError) as caught:
        call_command("verifybackup", "-d", alias)
    assert "row counts differ from its manifest's" in str(caught.value)
    assert f"{key}: 4 (manifest: 5)" in str(caught.value)


@pytest.mark.django_db(transaction=True, databases=["default"])
def test_a_remote_that_fills_up_mid_stream_publishes_nothing(
    remote_dir: Path, drc_config: Any
) -> None:
    populate("default", authors=2, books=1)
    first = backup_database("default")
    before = remote_files(remote_dir)
    big_table("default", 20_000)  # ~1 MB of dump, ~0.5 MB compressed
    # rclone's hard transfer cap fails the upload part-way, as a full remote does.
    drc_config(RCLONE_FLAGS=["--max-transfer", "100k", "--cutoff-mode", "hard"])
    with pytest.raises(CommandError) as caught:
        call_command("dbbackup", "-d", "default")
    assert "max transfer limit reached" in str(caught.value)
    drc_config(RCLONE_FLAGS=[])
    assert remote_files(remote_dir) == before
    assert list_backups("default")[0].name == first.name
