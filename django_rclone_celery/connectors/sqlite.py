"""SQLite: ``sqlite3 .dump`` / ``sqlite3`` into a temp file, then an atomic rename.

Without the ``sqlite3`` tool on this host, :mod:`..sqlite_shell` (Python's own
``sqlite3`` module, run as a program) writes and reads the same dump.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
from pathlib import Path

from ..completeness import SqliteDump
from ..exceptions import ConfigurationError, RestoreError
from ..process import Command, find_program
from .base import Connector, Inventory, Staging

_PYTHON_SHELL = (sys.executable, "-m", "django_rclone_celery.sqlite_shell")


class SqliteConnector(Connector):
    vendor = "sqlite"
    extension = "sqlite3"
    dump_tool = "sqlite3"
    restore_tool = "sqlite3"

    def _path(self) -> str:
        name = self.name
        if not name or name == ":memory:" or name.startswith("file:"):
            raise ConfigurationError(f"database {self.alias!r} is not a SQLite file: {name!r}")
        return name

    @property
    def lock_timeout(self) -> int:
        """Seconds the dump waits for a writer's lock (``SQLITE_LOCK_TIMEOUT``)."""
        from ..conf import get_settings

        return get_settings().sqlite_lock_timeout

    def dump_command(self, *, compress: bool) -> Command:
        # -readonly: a missing file is an error, not a new empty database.
        # .timeout: wait for a writer's lock instead of dumping a failed read;
        # .dump reads in one transaction, so the dump is one consistent snapshot.
        # Past the bound sqlite3 still exits 0: SqliteDump reads its ERROR line.
        wait = self.lock_timeout * 1000
        if not self.has_shell():
            return Command(argv=(*_PYTHON_SHELL, "dump", self._path(), str(wait)))
        return Command(
            argv=(self.dump_tool, "-readonly", "-cmd", f".timeout {wait}", self._path(), ".dump")
        )

    def has_shell(self) -> bool:
        """Whether the ``sqlite3`` tool is here (else Python's module stands in for it)."""
        return find_program(self.dump_tool) is not None

    def missing_tools(self) -> list[str]:
        # Python's module stands in for the sqlite3 program, not for another tool.
        return [tool for tool in super().missing_tools() if tool != "sqlite3"]

    def stream_check(self, *, dumping: bool = False, counting: bool = False) -> SqliteDump:
        # A lock error in a stored backup says nothing about today's setting.
        return SqliteDump(lock_timeout=self.lock_timeout if dumping else None)

    def restore_command(self, target: str) -> Command:
        # -bail stops at the first error and exits non-zero.
        if not self.has_shell():
            return Command(argv=(*_PYTHON_SHELL, "restore", target))
        return Command(argv=(self.restore_tool, "-bail", target))

    def row_counts(self) -> dict[str, int]:
        with sqlite3.connect(f"file:{self._path()}?mode=ro", uri=True) as db:
            names = [
                row[0]
                for row in db.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' "
                    "AND name NOT LIKE 'sqlite_%'"
                )
            ]
            counts = {}
            for name in names:
                quoted = '"' + name.replace('"', '""') + '"'
                counts[name] = int(db.execute(f"SELECT count(*) FROM {quoted}").fetchone()[0])
        return counts

    def inventory(self, target: str | None = None) -> Inventory:
        kinds = {"table": "tables", "view": "views", "index": "indexes", "trigger": "triggers"}
        found: Inventory = {kind: [] for kind in kinds.values()}
        with contextlib.closing(self._open(target)) as db:
            rows = db.execute(
                "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
            ).fetchall()
        for kind, name in rows:
            if kind in kinds:
                found[kinds[kind]].append(name)
        return {kind: sorted(names) for kind, names in found.items()}

    def table_counts(self, target: str | None = None) -> dict[str, int]:
        with contextlib.closing(self._open(target)) as db:
            names = db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            ).fetchall()
            counts = {}
            for (name,) in names:
                quoted = '"' + name.replace('"', '""') + '"'
                counts[name] = int(db.execute(f"SELECT count(*) FROM {quoted}").fetchone()[0])
            return counts

    def _open(self, target: str | None) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{target or self._path()}?mode=ro", uri=True)

    def tool_versions(self) -> dict[str, str]:
        versions = super().tool_versions()
        versions.setdefault("sqlite3", sqlite3.sqlite_version)
        return versions

    def staging(self) -> SqliteStaging:
        return SqliteStaging(self)


class SqliteStaging(Staging):
    def __init__(self, connector: SqliteConnector) -> None:
        self.connector = connector
        self.live = Path(connector._path())
        # Same directory: the final os.replace must not cross filesystems.
        self.target = str(self.live.with_name(self.live.name + ".restore-tmp"))

    def prepare(self) -> None:
        self.discard()
        self.live.parent.mkdir(parents=True, exist_ok=True)

    def check(self) -> None:
        with sqlite3.connect(self.target) as db:
            result = db.execute("PRAGMA quick_check").fetchone()[0]
        if result != "ok":
            raise RestoreError(f"restored SQLite file failed its check: {result}")

    def swap(self) -> None:
        from django.db import connections

        connections[self.connector.alias].close()
        live = str(self.live)
        if os.path.exists(live + "-wal"):
            # Fold the write-ahead log into the old file, so no stale log is
            # replayed onto the new one.
            with sqlite3.connect(live) as db:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        fd = os.open(self.target, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(self.target, live)
        for suffix in ("-wal", "-shm", "-journal"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(live + suffix)

    def discard(self) -> None:
        for suffix in ("", "-journal", "-wal", "-shm"):
            try:
                os.remove(self.target + suffix)
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise RestoreError(f"could not remove {self.target}{suffix}: {exc}") from exc
