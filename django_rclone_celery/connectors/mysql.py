"""MySQL / MariaDB: ``mysqldump --single-transaction`` / ``mysql`` into a scratch schema.

The swap is one ``RENAME TABLE`` statement moving every live table to an
``__old`` schema and every restored table into the live schema, which the
server applies atomically. Views and triggers cannot move between schemas
this way, so a restore involving them is refused before anything changes.
"""

from __future__ import annotations

import logging

from ..exceptions import ConfigurationError, RestoreError
from ..process import Command
from .base import Connector, Staging

logger = logging.getLogger(__name__)

_SECRET_TOKEN = "@@DRC_MYSQL_DEFAULTS@@"  # noqa: S105 - a placeholder, not a secret
_IDENTIFIER_MAX = 64


# Inside double quotes the client's option-file reader turns these escapes
# back into the characters; a raw newline would end the value mid-password.
_OPTION_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _option_value(value: str) -> str:
    if "\0" in value:
        raise ConfigurationError("a MariaDB/MySQL password cannot contain a NUL character")
    escaped = "".join(_OPTION_ESCAPES.get(char, char) for char in value)
    return f'"{escaped}"'


class MysqlConnector(Connector):
    vendor = "mysql"
    extension = "sql"
    dump_tool = "mysqldump"
    restore_tool = "mysql"

    def _args(self) -> list[str]:
        # The password lives in a 0600 option file; it must be the first option.
        args = [f"--defaults-extra-file={_SECRET_TOKEN}"]
        if self.host:
            if self.host.startswith("/"):
                args.append(f"--socket={self.host}")
            else:
                args.append(f"--host={self.host}")
        if self.port:
            args.append(f"--port={self.port}")
        if self.user:
            args.append(f"--user={self.user}")
        charset = self.options.get("charset")
        args.append(f"--default-character-set={charset or 'utf8mb4'}")
        return args

    def _command(self, argv: list[str]) -> Command:
        content = "[client]\n"
        if self.password:
            content += f"password={_option_value(self.password)}\n"
        return Command(
            argv=tuple(argv),
            secret_files={_SECRET_TOKEN: content},
            redact=(self.password,) if self.password else (),
        )

    def dump_command(self, *, compress: bool) -> Command:
        return self._command(
            [
                self.dump_tool,
                *self._args(),
                "--single-transaction",
                "--quick",
                "--skip-lock-tables",
                "--hex-blob",
                "--routines",
                self.name,
            ]
        )

    def restore_command(self, target: str) -> Command:
        return self._command([self.restore_tool, *self._args(), f"--database={target}"])

    def row_counts(self) -> dict[str, int]:
        with self.cursor() as cursor:
            cursor.execute(
                "SELECT table_name, table_rows FROM information_schema.tables "
                "WHERE table_schema = %s AND table_type = 'BASE TABLE'",
                [self.name],
            )
            return {name: int(rows or 0) for name, rows in cursor.fetchall()}

    def staging(self) -> MysqlStaging:
        return MysqlStaging(self)


class MysqlStaging(Staging):
    def __init__(self, connector: MysqlConnector) -> None:
        self.connector = connector
        self.live = connector.name
        self.target = f"{self.live}__temp"
        self.old = f"{self.live}__old"
        if len(self.old) > _IDENTIFIER_MAX or len(self.target) > _IDENTIFIER_MAX:
            raise ConfigurationError(
                f"database name {self.live!r} is too long to stage a restore beside it"
            )

    def _q(self, name: str) -> str:
        return self.connector.quote(name)

    def prepare(self) -> None:
        with self.connector.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {self._q(self.target)}")
            cursor.execute(f"DROP DATABASE IF EXISTS {self._q(self.old)}")
            cursor.execute(
                "SELECT default_character_set_name, default_collation_name "
                "FROM information_schema.schemata WHERE schema_name = %s",
                [self.live],
            )
            row = cursor.fetchone()
            sql = f"CREATE DATABASE {self._q(self.target)}"
            if row:
                sql += f" CHARACTER SET {row[0]} COLLATE {row[1]}"
            cursor.execute(sql)

    def _objects(self, cursor: object, schema: str) -> tuple[list[str], list[str]]:
        cursor.execute(  # type: ignore[attr-defined]
            "SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = %s",
            [schema],
        )
        rows = cursor.fetchall()  # type: ignore[attr-defined]
        tables = sorted(name for name, kind in rows if kind == "BASE TABLE")
        others = sorted(name for name, kind in rows if kind != "BASE TABLE")
        cursor.execute(  # type: ignore[attr-defined]
            "SELECT trigger_name FROM information_schema.triggers WHERE trigger_schema = %s",
            [schema],
        )
        others += [f"trigger {name}" for (name,) in cursor.fetchall()]  # type: ignore[attr-defined]
        return tables, others

    def check(self) -> None:
        with self.connector.cursor() as cursor:
            for schema in (self.live, self.target):
                _, others = self._objects(cursor, schema)
                if others:
                    raise RestoreError(
                        f"schema {schema!r} has views or triggers ({', '.join(others[:5])}), "
                        "which cannot be swapped atomically; nothing was changed"
                    )

    def swap(self) -> None:
        from django.db import connections

        connections[self.connector.alias].close()
        with self.connector.cursor() as cursor:
            live_tables, _ = self._objects(cursor, self.live)
            new_tables, _ = self._objects(cursor, self.target)
            cursor.execute(f"CREATE DATABASE {self._q(self.old)}")
            pairs = [
                f"{self._q(self.live)}.{self._q(t)} TO {self._q(self.old)}.{self._q(t)}"
                for t in live_tables
            ] + [
                f"{self._q(self.target)}.{self._q(t)} TO {self._q(self.live)}.{self._q(t)}"
                for t in new_tables
            ]
            if pairs:
                # One statement: the server applies every rename or none.
                cursor.execute("RENAME TABLE " + ", ".join(pairs))
            for name in (self.old, self.target):
                try:
                    cursor.execute(f"DROP DATABASE IF EXISTS {self._q(name)}")
                except Exception:  # swapped already; the next run drops it
                    logger.warning("could not drop %s after the swap", name, exc_info=True)

    def discard(self) -> None:
        with self.connector.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {self._q(self.target)}")
            cursor.execute(f"DROP DATABASE IF EXISTS {self._q(self.old)}")
