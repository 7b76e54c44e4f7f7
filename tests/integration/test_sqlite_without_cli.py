"""SQLite backups on a host without the ``sqlite3`` tool (#14): Python's module stands in.

The stand-in (``django_rclone_celery.sqlite_shell``) must write what the
tool writes, byte for byte, and pass the same completeness, restore and
verification paths. Every test here runs with a PATH that has no sqlite3.
"""

from __future__ import annotations

import shutil
import sqlite3
import sys
import time
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core import checks
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections

from django_rclone_celery.connectors import get_connector
from django_rclone_celery.operations import backup_database, list_backups
from django_rclone_celery.process import Command, find_program, run
from tests.helpers.databases import damage, populate, snapshot
from tests.helpers.remotes import remote_files

SHELL = (sys.executable, "-m", "django_rclone_celery.sqlite_shell")
AWKWARD = """
CREATE TABLE "order" (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, v REAL, b BLOB, n);
CREATE TABLE plain (a, b);
CREATE TABLE "it's" ("sp ace" TEXT);
CREATE INDEX plain_a ON plain(a);
CREATE VIEW vv AS SELECT * FROM plain;
CREATE TRIGGER tr AFTER INSERT ON plain BEGIN UPDATE plain SET b = 1 WHERE a = new.a; END;
INSERT INTO "order"(name, v, b, n) VALUES
  ('it''s', 1.5, x'00ff', NULL), ('two
lines', 0.1, NULL, 3), ('ünï', 1e300, NULL, -2), ('a\\n
b', 2.0, x'', 9223372036854775807), ('INSERT INTO x VALUES(1);', -0.0, NULL, 1e999);
INSERT INTO plain VALUES (1, 'x'), (NULL, 'carriage' || char(13) || char(10) || 'return');
INSERT INTO "it's" VALUES ('"q"');
"""


@pytest.fixture
def no_sqlite3(monkeypatch: pytest.MonkeyPatch) -> str:
    """A PATH without sqlite3 (only this interpreter's directory); returns the real tool."""
    tool = shutil.which("sqlite3")
    assert tool is not None, "the comparison needs the real sqlite3 tool on this host"
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    assert find_program("sqlite3") is None
    return tool


def test_the_stand_in_writes_the_tools_dump_and_reads_it_back(
    tmp_path: Path, no_sqlite3: str
) -> None:
    source = tmp_path / "source.sqlite3"
    with sqlite3.connect(source) as db:
        db.executescript(AWKWARD)
    db.close()
    ours = run(Command(argv=(*SHELL, "dump", str(source), "1000"))).stdout
    tools = run(Command(argv=(no_sqlite3, "-readonly", str(source), ".dump"))).stdout
    assert ours == tools
    assert ours.endswith(b"COMMIT;\n")

    restored = tmp_path / "restored.sqlite3"
    run(Command(argv=(*SHELL, "restore", str(restored))), input=ours)
    assert run(Command(argv=(no_sqlite3, str(restored), ".dump"))).stdout == tools

    # -bail: the first bad statement stops it, non-zero, saying where.
    broken = ours.replace(b"INSERT INTO plain", b"INSERT INTO nowhere", 1)
    failed = run(
        Command(argv=(*SHELL, "restore", str(tmp_path / "x.sqlite3"))), input=broken, check=False
    )
    assert failed.returncode != 0
    assert "no such table: nowhere" in failed.stderr


@pytest.mark.django_db(transaction=True, databases=["default"])
def test_backup_restore_and_verify_without_sqlite3(
    no_sqlite3: str, remote_dir: Path, drc_config: Any
) -> None:
    connector = get_connector("default")
    assert connector.dump_command(compress=False).argv[:3] == SHELL
    assert connector.restore_command("x").argv[:3] == SHELL
    missing = [m.msg for m in checks.run_checks() if m.id == "django_rclone_celery.W003"]
    assert missing  # the other engines' tools are off this PATH too
    assert [m for m in missing if "'default'" in m] == []

    populate("default")
    before = snapshot("default")
    call_command("dbbackup", "-d", "default", stdout=StringIO())
    damage("default")
    assert snapshot("default") != before
    call_command("dbrestore", "-d", "default", "--noinput", stdout=StringIO())
    assert snapshot("default") == before
    out = StringIO()
    call_command("verifybackup", "-d", "default", "--restore", stdout=out)
    assert "verified" in out.getvalue().lower()


class LedgerOnPg:
    """Keeps the run ledger off the SQLite file the test locks."""

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        from django_rclone_celery.models import BackupRun

        return "pg" if model is BackupRun else None

    db_for_write = db_for_read


@pytest.mark.django_db(transaction=True, databases=["default", "pg"])
def test_a_lock_past_the_bound_fails_in_one_line_without_sqlite3(
    no_sqlite3: str, remote_dir: Path, drc_config: Any, settings: Any
) -> None:
    settings.DATABASE_ROUTERS = [f"{__name__}.LedgerOnPg"]
    path = str(connections["default"].settings_dict["NAME"])
    populate("default", authors=2, books=1)
    first = backup_database("default")
    before = remote_files(remote_dir)
    drc_config(SQLITE_LOCK_TIMEOUT=1)
    connections["default"].close()
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("BEGIN EXCLUSIVE")
    writer.execute("INSERT INTO testapp_author (name) VALUES ('uncommitted')")
    try:
        started = time.monotonic()
        with pytest.raises(CommandError) as caught:
            call_command("dbbackup", "-d", "default")
        waited = time.monotonic() - started
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert "database is locked for more than 1 s" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert waited >= 1
    assert remote_files(remote_dir) == before
    assert list_backups("default")[0].name == first.name
