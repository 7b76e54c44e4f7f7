"""MySQL / MariaDB: ``mysqldump --single-transaction`` / ``mysql`` into a scratch schema.

The dump holds tables, views, triggers, stored functions and procedures and
events, without their ``DEFINER`` clauses (:class:`DefinerFilter`), so a user
without SUPER can load it; the objects are then owned by the restoring user.

The swap is one ``RENAME TABLE`` statement moving every live table to an
``__old`` schema and every restored table into the live schema, which the
server applies atomically. Views, triggers, routines and events cannot move
between schemas: they are read from the staged schema and recreated in the
live one straight after the rename, in the same run (see docs/connectors.md
for that window).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError

from .. import process, tools
from ..exceptions import ConfigurationError, RestoreError
from ..process import Command, Transform
from .base import Connector, Inventory, Staging

logger = logging.getLogger(__name__)

_SECRET_TOKEN = "@@DRC_MYSQL_DEFAULTS@@"  # noqa: S105 - a placeholder, not a secret
_IDENTIFIER_MAX = 64


# Inside double quotes the client's option-file reader turns these escapes
# back into the characters; a raw newline would end the value mid-password.
_OPTION_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}

# DEFINER=`user`@`host` (or a role: DEFINER=`role`), backticks doubled inside names.
_DEFINER = re.compile(rb"DEFINER=`(?:[^`]|``)*`(?:@`(?:[^`]|``)*`)?\s*")
# The lines of a mysqldump script that carry a definer: trigger, event, routine, view.
_DEFINER_LINES = (
    b"/*!50003 CREATE*/ /*!50017 DEFINER=",
    b"/*!50106 CREATE*/ /*!50117 DEFINER=",
    b"CREATE DEFINER=",
    b"/*!50013 DEFINER=",
)


class DefinerFilter:
    """Drops the ``DEFINER=`` clause from the lines of a mysqldump script that create objects.

    Setting another account as definer needs SUPER (SET USER on MySQL 8);
    without the clause the object belongs to whoever loads it. Only lines
    starting the way mysqldump starts a CREATE are touched: data lines
    (``INSERT INTO``) never do, whatever the rows hold.
    """

    def __init__(self) -> None:
        self._carry: list[bytes] = []  # the start of a line not yet ended

    def _fix(self, block: bytes | memoryview) -> bytes | memoryview:
        if _find(block, b"DEFINER=") < 0:
            return block  # the common case: data lines, passed on without a copy
        lines = bytes(block).split(b"\n")
        for i, line in enumerate(lines):
            if line.startswith(_DEFINER_LINES):
                lines[i] = _DEFINER.sub(b"", line, count=1)
        return b"\n".join(lines)

    def feed(self, data: memoryview) -> bytes | memoryview:
        chunk = bytes(data)  # data is a reused buffer: copy what is kept
        end = chunk.rfind(b"\n") + 1
        if not end:
            self._carry.append(chunk)
            return b""
        if self._carry:
            block: bytes | memoryview = b"".join([*self._carry, chunk[:end]])
        else:
            block = memoryview(chunk)[:end]
        self._carry = [chunk[end:]] if end < len(chunk) else []
        return self._fix(block)

    def finish(self) -> bytes:
        rest, self._carry = b"".join(self._carry), []
        return bytes(self._fix(rest))


def _find(block: bytes | memoryview, needle: bytes) -> int:
    if isinstance(block, memoryview):
        obj = block.obj
        if isinstance(obj, bytes):  # a view of a whole bytes object, from its start
            return obj.find(needle, 0, block.nbytes)
        return bytes(block).find(needle)
    return block.find(needle)


def _mysql8(version_line: str) -> bool:
    """MySQL's own mysqldump 8+, which reads column statistics MariaDB lacks."""
    version = tools.mysql_version(version_line) or (0,)
    return tools.mysql_flavour(version_line) == "MySQL" and version >= (8,)


def strip_definer(sql: str | None) -> str:
    """``SHOW CREATE ...`` text without its definer: the first clause is in the header.

    The server shows no text (NULL) of another definer's routine or trigger to
    an account without the privilege to read it: that is "" here.
    """
    return _DEFINER.sub(b"", sql.encode(), count=1).decode() if sql else ""


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

    # Flags a tool of the other flavour needs (set by prepare_tools).
    flavour_args: tuple[str, ...] = ()

    def quote(self, identifier: str) -> str:
        # Django's quote_name leaves a backtick inside a name as it is.
        return "`" + identifier.replace("`", "``") + "`"

    def _args(self, *, dump: bool = False) -> list[str]:
        conn = self.dump_settings if dump else self.settings_dict
        host, port, user = (str(conn.get(key) or "") for key in ("HOST", "PORT", "USER"))
        # The password lives in a 0600 option file; it must be the first option.
        args = [f"--defaults-extra-file={_SECRET_TOKEN}"]
        if host:
            if host.startswith("/"):
                args.append(f"--socket={host}")
            else:
                args.append(f"--host={host}")
        if port:
            args.append(f"--port={port}")
        if user:
            args.append(f"--user={user}")
        charset = self.options.get("charset")
        args.append(f"--default-character-set={charset or 'utf8mb4'}")
        return args

    def _command(self, argv: list[str], *, dump: bool = False) -> Command:
        password = str((self.dump_settings if dump else self.settings_dict).get("PASSWORD") or "")
        content = "[client]\n"
        if password:
            content += f"password={_option_value(password)}\n"
        return Command(
            argv=tuple(argv),
            env=dict(self.db_options.env),
            secret_files={_SECRET_TOKEN: content},
            redact=(password,) if password else (),
        )

    def prepare_tools(self, *, restore: bool = False) -> None:
        """Say when tool and server are of different flavours (see tools.py); a MySQL
        8 mysqldump reads column statistics MariaDB does not have: turn that off."""
        super().prepare_tools(restore=restore)
        tool = self.restore_tool if restore else self.dump_tool
        try:
            with self.cursor(dump=not restore) as cursor:
                cursor.execute("SELECT VERSION()")
                server = str(cursor.fetchone()[0])
        except DatabaseError:
            return  # unreachable: the tool says so, in its own words
        line = tools.version_line(process.find_program(self.program(tool)) or tool)
        problem = tools.mysql_mismatch(self.alias, tool, line, server)
        if problem:
            logger.warning("%s", problem)
        if not restore and tools.mysql_flavour(server) == "MariaDB" and _mysql8(line):
            self.flavour_args = ("--column-statistics=0",)

    def dump_command(self, *, compress: bool) -> Command:
        return self._command(
            [
                self.program(self.dump_tool),
                *self._args(dump=True),
                *self.flavour_args,
                "--single-transaction",
                "--quick",
                "--skip-lock-tables",
                "--hex-blob",
                # Every object, not only tables (triggers are mysqldump's default).
                "--routines",
                "--events",
                "--triggers",
                *self.db_options.dump_args,
                self.name,
            ],
            dump=True,
        )

    def restore_command(self, target: str) -> Command:
        return self._command(
            [
                self.program(self.restore_tool),
                *self._args(),
                *self.db_options.restore_args,
                f"--database={target}",
            ]
        )

    def row_counts(self) -> dict[str, int]:
        with self.cursor() as cursor:
            cursor.execute(
                "SELECT table_name, table_rows FROM information_schema.tables "
                "WHERE table_schema = %s AND table_type = 'BASE TABLE'",
                [self.name],
            )
            return {name: int(rows or 0) for name, rows in cursor.fetchall()}

    def script_filter(self) -> Transform:
        return DefinerFilter()

    def inventory(self, target: str | None = None) -> Inventory:
        schema = target or self.name
        with self.cursor() as cursor:
            return _inventory(cursor, schema)

    def table_counts(self, target: str | None = None) -> dict[str, int]:
        schema = target or self.name
        with self.cursor() as cursor:
            cursor.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = %s AND table_type = 'BASE TABLE'",
                [schema],
            )
            names = sorted(name for (name,) in cursor.fetchall())
            counts = {}
            for name in names:
                cursor.execute(f"SELECT COUNT(*) FROM {self.quote(schema)}.{self.quote(name)}")
                counts[name] = int(cursor.fetchone()[0])
        return counts

    def staging(self) -> MysqlStaging:
        return MysqlStaging(self)


def _names(cursor: Any, sql: str, schema: str) -> list[str]:
    cursor.execute(sql, [schema])
    return sorted(str(row[0]) for row in cursor.fetchall())


def _inventory(cursor: Any, schema: str) -> Inventory:
    tables = "SELECT table_name FROM information_schema.tables WHERE table_schema = %s"
    routines = (
        "SELECT routine_name FROM information_schema.routines "
        "WHERE routine_schema = %s AND routine_type = "
    )
    return {
        "tables": _names(cursor, tables + " AND table_type = 'BASE TABLE'", schema),
        "views": _names(cursor, tables + " AND table_type = 'VIEW'", schema),
        "sequences": _names(cursor, tables + " AND table_type = 'SEQUENCE'", schema),
        "functions": _names(cursor, routines + "'FUNCTION'", schema),
        "procedures": _names(cursor, routines + "'PROCEDURE'", schema),
        "triggers": _names(
            cursor,
            "SELECT CONCAT(event_object_table, '.', trigger_name) "
            "FROM information_schema.triggers WHERE trigger_schema = %s",
            schema,
        ),
        "events": _names(
            cursor,
            "SELECT event_name FROM information_schema.events WHERE event_schema = %s",
            schema,
        ),
        "indexes": _names(
            cursor,
            "SELECT DISTINCT CONCAT(table_name, '.', index_name) "
            "FROM information_schema.statistics WHERE table_schema = %s",
            schema,
        ),
        "constraints": _names(
            cursor,
            "SELECT CONCAT(table_name, '.', constraint_name, ' ', constraint_type) "
            "FROM information_schema.table_constraints WHERE constraint_schema = %s",
            schema,
        ),
    }


@dataclass(frozen=True)
class SchemaObject:
    """A view, trigger, routine or event, as its schema's ``SHOW CREATE`` prints it."""

    kind: str  # "function", "procedure", "view", "trigger", "event"
    name: str
    sql: str  # without a definer; "" if this account may not read it
    sql_mode: str | None  # the one it was created under (views have none)
    time_zone: str | None = None  # an event's schedule is read in it

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


# Routines first (views and triggers may call them), then views, triggers, events.
_ORDER = ("function", "procedure", "view", "trigger", "event")


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

    def _objects(self, cursor: Any, schema: str) -> list[str]:
        """The schema's tables (and sequences): what ``RENAME TABLE`` can move."""
        cursor.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = %s AND table_type <> 'VIEW'",
            [schema],
        )
        return sorted(name for (name,) in cursor.fetchall())

    def definitions(self, schema: str) -> list[SchemaObject]:
        """Every view, trigger, routine and event of ``schema``, in the order to create them.

        Read on a connection whose current database is ``schema``, so that
        ``SHOW CREATE VIEW`` leaves table names unqualified and the text
        creates the same view in another schema.
        """
        found: list[SchemaObject] = []
        with self.connector.cursor(schema) as cursor:
            queries = {
                "function": "SELECT routine_name FROM information_schema.routines "
                "WHERE routine_schema = %s AND routine_type = 'FUNCTION' ORDER BY 1",
                "procedure": "SELECT routine_name FROM information_schema.routines "
                "WHERE routine_schema = %s AND routine_type = 'PROCEDURE' ORDER BY 1",
                "view": "SELECT table_name FROM information_schema.views "
                "WHERE table_schema = %s ORDER BY 1",
                # Several triggers of one table and timing fire in action_order.
                "trigger": "SELECT trigger_name FROM information_schema.triggers "
                "WHERE trigger_schema = %s "
                "ORDER BY event_object_table, action_timing, event_manipulation, action_order",
                "event": "SELECT event_name FROM information_schema.events "
                "WHERE event_schema = %s ORDER BY 1",
            }
            for kind in _ORDER:
                cursor.execute(queries[kind], [schema])
                for (name,) in cursor.fetchall():
                    cursor.execute(f"SHOW CREATE {kind.upper()} {self._q(name)}")
                    row = cursor.fetchone()
                    # Views: (name, sql, ...); events: (name, sql_mode, time_zone, sql, ...);
                    # the others: (name, sql_mode, sql, ...).
                    if kind == "view":
                        obj = SchemaObject(kind, name, strip_definer(row[1]), None)
                    elif kind == "event":
                        obj = SchemaObject(kind, name, strip_definer(row[3]), row[1], row[2])
                    else:
                        obj = SchemaObject(kind, name, strip_definer(row[2]), row[1])
                    found.append(obj)
        return found

    def recreate(self, schema: str, objects: list[SchemaObject]) -> list[str]:
        """Create ``objects`` in ``schema``; returns what could not be created, and why."""
        failed: list[str] = []
        pending = [o for o in objects if o.kind == "view"]
        with self.connector.cursor(schema) as cursor:
            for obj in objects:
                if obj.kind == "view":
                    continue
                if obj.kind == "trigger" and pending:
                    # A trigger may read a view: create the views first.
                    failed += self._create_views(cursor, pending)
                    pending = []
                if not obj.sql:
                    failed.append(f"{obj} (its definition is not readable by this account)")
                    continue
                try:
                    cursor.execute("SET SESSION sql_mode = %s", [obj.sql_mode or ""])
                    if obj.time_zone:
                        cursor.execute("SET SESSION time_zone = %s", [obj.time_zone])
                    cursor.execute(obj.sql)
                except Exception as exc:
                    failed.append(f"{obj} ({exc})")
            failed += self._create_views(cursor, pending)
        return failed

    def _create_views(self, cursor: Any, views: list[SchemaObject]) -> list[str]:
        # A view may select from another: retry until a round creates nothing.
        errors: dict[str, str] = {}
        while views:
            left = []
            for view in views:
                try:
                    cursor.execute(view.sql)
                except Exception as exc:
                    errors[str(view)] = str(exc)
                    left.append(view)
            if len(left) == len(views):
                break
            views = left
        return [f"{v} ({errors[str(v)]})" for v in views]

    def _drop(self, cursor: Any, schema: str, objects: list[SchemaObject]) -> None:
        for obj in objects:
            target = f"{self._q(schema)}.{self._q(obj.name)}"
            cursor.execute(f"DROP {obj.kind.upper()} IF EXISTS {target}")

    def swap(self) -> None:
        from django.db import connections

        connections[self.connector.alias].close()
        staged = self.definitions(self.target)
        live = self.definitions(self.live)
        with self.connector.cursor() as cursor:
            live_tables = self._objects(cursor, self.live)
            new_tables = self._objects(cursor, self.target)
            # A table cannot change schema with a trigger on it.
            self._drop(cursor, self.target, [o for o in staged if o.kind == "trigger"])
            self._drop(cursor, self.live, [o for o in live if o.kind == "trigger"])
            cursor.execute(f"CREATE DATABASE {self._q(self.old)}")
            pairs = [
                f"{self._q(self.live)}.{self._q(t)} TO {self._q(self.old)}.{self._q(t)}"
                for t in live_tables
            ] + [
                f"{self._q(self.target)}.{self._q(t)} TO {self._q(self.live)}.{self._q(t)}"
                for t in new_tables
            ]
            try:
                if pairs:
                    # One statement: the server applies every rename or none.
                    cursor.execute("RENAME TABLE " + ", ".join(pairs))
            except Exception as exc:
                # Nothing moved: give the live tables their triggers back.
                lost = self.recreate(self.live, [o for o in live if o.kind == "trigger"])
                if lost:
                    raise RestoreError(
                        f"the swap of {self.live!r} failed ({exc}); its tables are unchanged "
                        f"but these triggers could not be put back: {'; '.join(lost)}"
                    ) from exc
                raise
            # The live tables are the restored ones now; their objects follow.
            self._drop(cursor, self.live, [o for o in live if o.kind != "trigger"])
        missing = self.recreate(self.live, staged)
        with self.connector.cursor() as cursor:
            for name in (self.old, self.target):
                try:
                    cursor.execute(f"DROP DATABASE IF EXISTS {self._q(name)}")
                except Exception:  # swapped already; the next run drops it
                    logger.warning("could not drop %s after the swap", name, exc_info=True)
        if missing:
            raise RestoreError(
                f"the tables of {self.live!r} were restored, but {len(missing)} object(s) "
                f"of the backup could not be recreated: {'; '.join(missing)}"
            )

    def discard(self) -> None:
        with self.connector.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {self._q(self.target)}")
            cursor.execute(f"DROP DATABASE IF EXISTS {self._q(self.old)}")
