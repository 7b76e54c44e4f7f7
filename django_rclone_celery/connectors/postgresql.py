"""PostgreSQL and PostGIS: ``pg_dump -Fc`` / ``pg_restore`` into a temp database, then a swap."""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any

from django.db import DatabaseError
from django.db.backends.utils import CursorWrapper

from .. import tools
from ..exceptions import ConfigurationError, RestoreError
from ..process import Command
from .base import Connector, Inventory, Staging

logger = logging.getLogger(__name__)

# libpq reads these from the environment; Django's OPTIONS spell them in lower case.
_OPTION_ENV = {
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "passfile": "PGPASSFILE",
    "service": "PGSERVICE",
    "application_name": "PGAPPNAME",
}
_IDENTIFIER_MAX = 63
SWAP_ATTEMPTS = 10

# Objects of the database's own schemas: not the system's, not an extension's members
# (PostGIS alone has a thousand functions; CREATE EXTENSION brings them back).
_OWN = (
    "{ns}.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND left({ns}.nspname, 8) <> 'pg_toast' AND left({ns}.nspname, 7) <> 'pg_temp' "
    "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = {catalog}::regclass "
    "AND d.objid = {obj}.oid AND d.deptype = 'e')"
)
_RELATIONS = (
    "SELECT n.nspname || '.' || c.relname FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = ANY(%s) AND "
    + _OWN.format(ns="n", catalog="'pg_class'", obj="c")
)
_INVENTORY = {
    "schemas": "SELECT n.nspname FROM pg_namespace n WHERE "
    + _OWN.format(ns="n", catalog="'pg_namespace'", obj="n"),
    "tables": (_RELATIONS, [["r", "p"]]),
    "views": (_RELATIONS, [["v"]]),
    "materialized views": (_RELATIONS, [["m"]]),
    "sequences": (_RELATIONS, [["S"]]),
    "indexes": (_RELATIONS, [["i", "I"]]),
    "functions": "SELECT n.nspname || '.' || p.proname || '(' "
    "|| pg_get_function_identity_arguments(p.oid) || ')' FROM pg_proc p "
    "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.prokind <> 'p' AND "
    + _OWN.format(ns="n", catalog="'pg_proc'", obj="p"),
    "procedures": "SELECT n.nspname || '.' || p.proname || '(' "
    "|| pg_get_function_identity_arguments(p.oid) || ')' FROM pg_proc p "
    "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.prokind = 'p' AND "
    + _OWN.format(ns="n", catalog="'pg_proc'", obj="p"),
    "triggers": "SELECT n.nspname || '.' || c.relname || '.' || t.tgname FROM pg_trigger t "
    "JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE NOT t.tgisinternal AND " + _OWN.format(ns="n", catalog="'pg_class'", obj="c"),
    "constraints": "SELECT n.nspname || '.' || c.relname || '.' || k.conname "
    "|| ' ' || k.contype::text "
    "FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE "
    + _OWN.format(ns="n", catalog="'pg_class'", obj="c"),
    "extensions": "SELECT extname FROM pg_extension",
}


class PostgresConnector(Connector):
    vendor = "postgresql"
    extension = "dump"
    dump_tool = "pg_dump"
    restore_tool = "pg_restore"
    native_compression = True
    # Set per instance by callers such as pgclone: the maintenance database
    # (PGCLONE_CONN_DB) and server settings (statement_timeout...) for its SQL sessions.
    conn_db: str | None = None
    session_settings: Mapping[str, str] = MappingProxyType({})
    # Set while counted_snapshot() holds an exported snapshot open for pg_dump.
    snapshot: str | None = None

    def _conn_args(self, *, dump: bool = False) -> list[str]:
        conn = self.dump_settings if dump else self.settings_dict
        args = ["--no-password"]
        for flag, key in (("--host", "HOST"), ("--port", "PORT"), ("--username", "USER")):
            if conn.get(key):
                args += [flag, str(conn[key])]
        return args

    def _env(self) -> dict[str, str]:
        found = {
            env: str(self.options[key]) for key, env in _OPTION_ENV.items() if self.options.get(key)
        }
        return {**found, **self.db_options.env}

    def _command(self, argv: list[str], *, dump: bool = False) -> Command:
        password = str((self.dump_settings if dump else self.settings_dict).get("PASSWORD") or "")
        secret = {"PGPASSWORD": password} if password else {}
        return Command(argv=tuple(argv), env=self._env(), secret_env=secret)

    def dump_command(self, *, compress: bool, extra: tuple[str, ...] = ()) -> Command:
        argv = [self.program(self.dump_tool), "--format=custom", *self._conn_args(dump=True)]
        if not compress:
            argv.append("--compress=0")
        if self.snapshot:
            argv.append(f"--snapshot={self.snapshot}")
        argv += [*self.db_options.dump_args, *extra, f"--dbname={self.name}"]
        return self._command(argv, dump=True)

    def server_version(self, *, dump: bool = False) -> tuple[int, ...]:
        with self.cursor(self.maintenance_db() if not dump else None, dump=dump) as cursor:
            cursor.execute("SELECT current_setting('server_version_num')::int")
            version = tools.pg_server_version(int(cursor.fetchone()[0]))
            if dump and self.db_options.user:
                self._check_dump_role(cursor)
        return version

    def _check_dump_role(self, cursor: Any) -> None:
        """A dump role that cannot read every table fails here, in one line, not
        in pg_dump's several (it takes a lock on each table it dumps)."""
        cursor.execute(
            "SELECT n.nspname || '.' || c.relname FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'S') "
            "AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%' "
            "AND NOT has_table_privilege(c.oid, 'SELECT') ORDER BY 1"
        )
        unreadable = [str(row[0]) for row in cursor.fetchall()]
        if unreadable:
            role = self.db_options.user
            more = f" and {len(unreadable) - 3} more" if len(unreadable) > 3 else ""
            raise ConfigurationError(
                f"database {self.alias!r}: the dump role {role!r} cannot read "
                f"{', '.join(unreadable[:3])}{more}: GRANT pg_read_all_data TO {role}; "
                "(PostgreSQL 14+) or GRANT SELECT on them"
            )

    def prepare_tools(self, *, restore: bool = False) -> None:
        """Compare the server's major with the tool's; use or refuse (see tools.py)."""
        tool = self.restore_tool if restore else self.dump_tool
        # The tool's --version (a process start) runs beside the server query.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="drc-tools") as pool:
            pool.submit(tools.warm, tool, self.db_options.tool_dir)
            try:
                server = self.server_version(dump=not restore)
            except DatabaseError:
                # Unreachable, or no such database: the tool says so, in its own words.
                logger.debug("no server version for %r", self.alias, exc_info=True)
                return
        choice = tools.choose_pg_tool(self.alias, tool, server, self.db_options.tool_dir)
        if choice.path != tool:  # a plain name stays a plain name in argv
            self.tool_paths[tool] = choice.path
            # The parallel streams' psql: the same client's, not PATH's (or its wrapper).
            psql = os.path.join(os.path.dirname(choice.path), "psql")
            if not self.db_options.tool_dir and os.access(psql, os.X_OK):
                self.tool_paths.setdefault("psql", psql)

    @contextmanager
    def counted_snapshot(self) -> Iterator[Callable[[], dict[str, int] | None]]:
        """Export a snapshot for ``pg_dump --snapshot`` and count every table in it.

        The counts run beside the dump, in the exporting transaction, so they
        are exactly the rows the archive holds (pg_dump writes one chunk per
        row: counting them from the stream would cost more than the dump's
        check). If no snapshot can be exported, the dump reads its own and
        the manifest gets no counts rather than another moment's.
        """
        counter = _SnapshotCounter(self)
        self.snapshot = counter.start()
        try:
            yield counter.result
        finally:
            self.snapshot = None
            counter.finish()

    def restore_command(self, target: str, *, exit_on_error: bool = True) -> Command:
        # pgclone passes exit_on_error=False: it reads every error from stderr and
        # fails the restore unless all of them are on its allow-list.
        stop = ["--exit-on-error"] if exit_on_error else []
        return self._command(
            [
                self.program(self.restore_tool),
                "--no-owner",
                "--no-acl",
                *stop,
                *self._conn_args(),
                *self.db_options.restore_args,
                f"--dbname={target}",
            ]
        )

    def row_counts(self) -> dict[str, int]:
        with self.cursor() as cursor:
            cursor.execute(
                "SELECT schemaname || '.' || relname, n_live_tup FROM pg_stat_user_tables"
            )
            return {name: int(count) for name, count in cursor.fetchall()}

    def inventory(self, target: str | None = None) -> Inventory:
        found: Inventory = {}
        with self.cursor(target) as cursor:
            for kind, query in _INVENTORY.items():
                sql, params = query if isinstance(query, tuple) else (query, None)
                cursor.execute(sql, params)
                found[kind] = sorted(str(row[0]) for row in cursor.fetchall())
        return found

    def table_counts(self, target: str | None = None) -> dict[str, int]:
        # The rows a dump of it would hold, counted as the dump's own counts are.
        with self.cursor(target) as cursor:
            return dumped_row_counts(cursor, self.quote)

    def foreign_keys_to(self, tables: list[str]) -> list[tuple[str, str]]:
        """(referencing table, constraint) of every foreign key into ``tables``
        (names on the search path, as Django's ``db_table``)."""
        with self.cursor() as cursor:
            cursor.execute(
                "SELECT src.relname, con.conname FROM pg_constraint con "
                "JOIN pg_class src ON src.oid = con.conrelid "
                "JOIN pg_class dst ON dst.oid = con.confrelid "
                "JOIN pg_namespace n ON n.oid = dst.relnamespace "
                "WHERE con.contype = 'f' AND dst.relname = ANY(%s) "
                "AND n.nspname = ANY(current_schemas(false)) "
                "ORDER BY 1, 2",
                [tables],
            )
            return [(str(table), str(name)) for table, name in cursor.fetchall()]

    def quote(self, identifier: str) -> str:
        # Django's quote_name leaves a double quote inside a name as it is.
        return '"' + identifier.replace('"', '""') + '"'

    def maintenance_db(self) -> str:
        return str(self.conn_db or self.settings_dict.get("PGCLONE_CONN_DB") or "postgres")

    @contextmanager
    def cursor(self, dbname: str | None = None, *, dump: bool = False) -> Iterator[CursorWrapper]:
        with super().cursor(dbname, dump=dump) as cursor:
            for key, value in self.session_settings.items():
                # set_config takes values as parameters: nothing is spliced into SQL.
                cursor.execute("SELECT set_config(%s, %s, false)", [key, value])
            yield cursor

    def staging(self) -> PostgresStaging:
        return PostgresStaging(self)

    # SQL helpers shared by restore and pgclone ------------------------
    def terminate(self, cursor: Any, *names: str) -> None:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = ANY(%s) AND pid <> pg_backend_pid()",
            [list(names)],
        )

    def exists(self, cursor: Any, name: str) -> bool:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        return cursor.fetchone() is not None

    def drop(self, cursor: Any, name: str) -> None:
        self.terminate(cursor, name)
        cursor.execute(f"DROP DATABASE IF EXISTS {self.quote(name)}")

    def drop_unawaited(self, name: str) -> bool:
        """Send ``DROP DATABASE name`` and return without waiting; whether it was sent.

        A drop forces a checkpoint and waits for it: on a copy just restored,
        most of a swap (0.7-0.8 s of a 1 GB restore, docs/many-databases.md).
        The server goes on with the statement after this connection has gone,
        and commits it; a copy it could not drop keeps its scratch name, which
        the next restore drops first. Needs psycopg 3, for a query sent without
        reading its answer, and PostgreSQL 13, for ``WITH (FORCE)``: no session
        can hold the drop up. Otherwise nothing is sent; the caller drops.
        """
        wrapper = self.wrapper(self.maintenance_db())
        driver: Any = wrapper.Database  # type: ignore[attr-defined]
        connection = driver.connect(**wrapper.get_connection_params())
        try:
            pgconn = getattr(connection, "pgconn", None)
            if pgconn is None or connection.info.server_version < 130000:
                return False
            # Sent as is, outside psycopg's transaction handling: no BEGIN before it.
            pgconn.send_query(f"DROP DATABASE IF EXISTS {self.quote(name)} WITH (FORCE)".encode())
            return True
        finally:
            connection.close()

    def copy_database(self, cursor: Any, source: str, target: str) -> None:
        """``CREATE DATABASE target TEMPLATE source``, after closing sessions on ``source``.

        The copy needs ``source`` to have no other session; one that reconnects
        in between makes it fail, so it is retried like a swap.
        """
        cursor.execute("SHOW server_version_num")
        # FILE_COPY (PostgreSQL 15+; the only way before) copies files instead of
        # WAL-logging every page: measured 2-3x faster on a 1 GB database, and
        # the copy leaves no dirty buffers for a later DROP DATABASE to flush.
        strategy = " STRATEGY FILE_COPY" if int(cursor.fetchone()[0]) >= 150000 else ""
        for attempt in range(1, SWAP_ATTEMPTS + 1):
            self.terminate(cursor, source)
            try:
                cursor.execute(
                    f"CREATE DATABASE {self.quote(target)} TEMPLATE {self.quote(source)}{strategy}"
                )
                return
            except Exception as exc:
                if attempt == SWAP_ATTEMPTS or "being accessed" not in str(exc):
                    raise
                time.sleep(0.2 * attempt)

    def rename_all(self, cursor: Any, renames: list[tuple[str, str]]) -> None:
        """Apply every rename in one transaction, retrying while sessions reconnect.

        PostgreSQL allows ALTER DATABASE RENAME inside a transaction block, so
        the swap is all or nothing: no crash can leave it half-renamed.
        """
        names = [name for pair in renames for name in pair]
        for attempt in range(1, SWAP_ATTEMPTS + 1):
            self.terminate(cursor, *names)
            try:
                cursor.execute("BEGIN")
                for old, new in renames:
                    cursor.execute(f"ALTER DATABASE {self.quote(old)} RENAME TO {self.quote(new)}")
                cursor.execute("COMMIT")
                return
            except Exception as exc:
                cursor.execute("ROLLBACK")
                if attempt == SWAP_ATTEMPTS or "being accessed" not in str(exc):
                    raise
                time.sleep(0.2 * attempt)


class _SnapshotCounter:
    """A thread holding a REPEATABLE READ transaction: it exports its snapshot,
    counts the rows of every table in it, and stays open until the dump ends."""

    def __init__(self, connector: PostgresConnector) -> None:
        self.connector = connector
        self.exported: queue.Queue[str | None] = queue.Queue()
        self.done = threading.Event()  # the dump ended (or failed): commit, close
        self.counted = threading.Event()
        self.counts: dict[str, int] | None = None
        self.thread = threading.Thread(target=self._run, name="drc-snapshot", daemon=True)

    def start(self) -> str | None:
        self.thread.start()
        try:
            return self.exported.get(timeout=60)
        except queue.Empty:
            return None

    def result(self) -> dict[str, int] | None:
        """The counts, once the dump has ended well (they may still be running)."""
        self.counted.wait()
        self.finish()
        return self.counts

    def finish(self) -> None:
        self.done.set()
        self.thread.join()

    def _run(self) -> None:
        exported = False
        try:
            # On the dump's own connection: pg_dump imports the snapshot there.
            with self.connector.cursor(dump=True) as cursor:
                cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                cursor.execute("SELECT pg_export_snapshot()")
                self.exported.put(cursor.fetchone()[0])
                exported = True
                cursor.execute("SAVEPOINT drc_count")
                try:
                    # Extra dump arguments may leave rows out: no counts rather than wrong ones.
                    if not self.connector.db_options.dump_args:
                        self.counts = self._count(cursor)
                except Exception:
                    # A failed count aborts the transaction, which would take the
                    # snapshot pg_dump imports with it: roll back to before it.
                    cursor.execute("ROLLBACK TO SAVEPOINT drc_count")
                    logger.debug("row counts in the dump's snapshot failed", exc_info=True)
                finally:
                    self.counted.set()
                # pg_dump imports the snapshot when it starts: keep it until the dump ends.
                self.done.wait()
                cursor.execute("COMMIT")
        except Exception:
            logger.debug("no snapshot exported for pg_dump", exc_info=True)
        finally:
            self.counted.set()
            if not exported:
                self.exported.put(None)

    def _count(self, cursor: Any) -> dict[str, int]:
        return dumped_row_counts(cursor, self.connector.quote, stop=self.done)


def dumped_row_counts(
    cursor: Any,
    quote: Callable[[str], str],
    stop: threading.Event | None = None,
    skip: Collection[str] = (),
) -> dict[str, int]:
    """``schema.table`` -> the rows ``pg_dump`` writes of it, read through ``cursor``.

    An extension's own tables are not dumped, except its configuration tables
    (PostGIS's spatial_ref_sys), whose rows pg_dump filters with the condition
    the extension registered: those are counted under that condition.
    Tables named in ``skip`` (counted another way) are left out.
    """
    cursor.execute(
        "SELECT n.nspname, c.relname, coalesce(cfg.condition, '') FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "LEFT JOIN (SELECT unnest(extconfig) AS oid, unnest(extcondition) AS condition "
        "FROM pg_extension) cfg ON cfg.oid = c.oid "
        "WHERE c.relkind = 'r' AND n.nspname <> 'information_schema' "
        "AND n.nspname NOT LIKE 'pg\\_%' AND (cfg.oid IS NOT NULL OR NOT EXISTS ("
        "SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass "
        "AND d.objid = c.oid AND d.deptype = 'e'))"
    )
    counts = {}
    for schema, table, condition in cursor.fetchall():
        if f"{schema}.{table}" in skip:
            continue
        if stop is not None and stop.is_set():  # the dump failed: nobody waits for these
            raise RuntimeError("the dump ended before its rows were counted")
        # The condition is the extension's own SQL, as pg_dump runs it.
        cursor.execute(f"SELECT count(*) FROM ONLY {quote(schema)}.{quote(table)} {condition}")
        counts[f"{schema}.{table}"] = int(cursor.fetchone()[0])
    return counts


class PostgisConnector(PostgresConnector):
    """PostGIS: as PostgreSQL, with the extension created before the restore.

    Creating ``postgis`` needs a superuser; ``ADMIN_USER`` (django-rclone's
    key in the database settings) names one if the app's role is not.
    """

    vendor = "postgresql"

    def create_extension(self, dbname: str) -> None:
        admin = self.settings_dict.get("ADMIN_USER")
        wrapper = self.wrapper(dbname)
        if admin:
            wrapper.settings_dict["USER"] = admin
            wrapper.settings_dict["PASSWORD"] = self.settings_dict.get("ADMIN_PASSWORD", "")
        try:
            with wrapper.cursor() as cursor:
                cursor.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        finally:
            wrapper.close()


class PostgresStaging(Staging):
    """Restore into ``<name>__temp``; swap by renames in one transaction.

    ``template`` fills the staged copy from a local database (``CREATE DATABASE
    ... TEMPLATE``) instead of leaving it empty for a restore tool.
    ``reversible`` keeps the replaced live database as ``<name>__pre`` and a
    copy of the staged one as ``<name>__post``; ``drop_restore_points`` removes
    both after a swap instead. Every rename of a swap, including the restore
    points', commits in one transaction, so a crash leaves either the old
    state or the new one, plus scratch databases the next ``prepare`` drops.
    """

    def __init__(
        self,
        connector: PostgresConnector,
        *,
        suffix: str = "__temp",
        template: str | None = None,
        reversible: bool = False,
        drop_restore_points: bool = False,
    ) -> None:
        self.connector = connector
        self.live = connector.name
        self.target = f"{self.live}{suffix}"
        self.old = f"{self.live}__old"
        self.pre = f"{self.live}__pre"
        self.post = f"{self.live}__post"
        # Scratch names of a reversible swap: the next __post, the previous __post.
        self.next_post = f"{self.live}__temp_post"
        self.old_post = f"{self.live}__old_post"
        self.template = template
        self.reversible = reversible
        self.drop_restore_points = drop_restore_points
        needed = [self.target, self.old]
        if reversible:
            needed += [self.pre, self.post, self.next_post, self.old_post]
        for name in needed:
            if len(name.encode()) > _IDENTIFIER_MAX:
                raise ConfigurationError(
                    f"database name {self.live!r} is too long to stage a restore beside it"
                )

    def scratch(self) -> list[str]:
        """The scratch databases a restore may leave behind (``check --deploy`` reports them).

        Never the live database or a restore point. Names PostgreSQL would
        truncate are skipped: truncated, they could name another database.
        """
        names = [self.target, self.old, self.next_post, self.old_post]
        return [n for n in names if len(n.encode()) <= _IDENTIFIER_MAX]

    def prepare(self) -> None:
        c = self.connector
        with c.cursor(c.maintenance_db()) as cursor:
            # Leftovers of a crashed run: none of them is ever the live database.
            for name in self.scratch():
                c.drop(cursor, name)
            cursor.execute(
                "SELECT pg_encoding_to_char(encoding), datcollate, datctype "
                "FROM pg_database WHERE datname = %s",
                [self.live],
            )
            row = cursor.fetchone()
            if self.template:
                c.copy_database(cursor, self.template, self.target)
            else:
                sql = f"CREATE DATABASE {c.quote(self.target)} TEMPLATE template0"
                params: list[str] = []
                if row:
                    sql += " ENCODING %s LC_COLLATE %s LC_CTYPE %s"
                    params = [row[0], row[1], row[2]]
                cursor.execute(sql, params)
            # Database-level settings (search_path, timezone...) are not in a dump.
            cursor.execute(
                "SELECT unnest(s.setconfig) FROM pg_db_role_setting s "
                "JOIN pg_database d ON d.oid = s.setdatabase "
                "WHERE d.datname = %s AND s.setrole = 0",
                [self.live],
            )
            for (entry,) in cursor.fetchall():
                key, _, value = entry.partition("=")
                target = f"ALTER DATABASE {c.quote(self.target)} SET {c.quote(key)} TO"
                if key == "search_path":
                    # A list setting, stored already quoted the way SET expects it.
                    cursor.execute(f"{target} {value}")
                else:
                    cursor.execute(f"{target} %s", [value])
        if isinstance(c, PostgisConnector) and not self.template:
            c.create_extension(self.target)

    def swap(self) -> None:
        c = self.connector
        from django.db import connections

        connections[c.alias].close()
        with c.cursor(c.maintenance_db()) as cursor:
            live_exists = c.exists(cursor, self.live)
            renames: list[tuple[str, str]] = []
            doomed = [self.old]
            if self.reversible:
                c.copy_database(cursor, self.target, self.next_post)
                if c.exists(cursor, self.pre):
                    renames.append((self.pre, self.old))
                if c.exists(cursor, self.post):
                    renames.append((self.post, self.old_post))
                    doomed.append(self.old_post)
                if live_exists:
                    renames.append((self.live, self.pre))
                renames.append((self.next_post, self.post))
            elif live_exists:
                renames.append((self.live, self.old))
            renames.append((self.target, self.live))
            c.rename_all(cursor, renames)
            if self.drop_restore_points and not self.reversible:
                doomed += [self.pre, self.post]
            for name in doomed:
                try:
                    if c.exists(cursor, name) and not c.drop_unawaited(name):
                        c.drop(cursor, name)
                except Exception:  # the swap is done; the next run drops scratch names
                    logger.warning("could not drop %s after the swap", name, exc_info=True)

    def discard(self) -> None:
        c = self.connector
        try:
            with c.cursor(c.maintenance_db()) as cursor:
                for name in (self.target, self.next_post):
                    if len(name.encode()) <= _IDENTIFIER_MAX:
                        c.drop(cursor, name)
        except Exception as exc:
            raise RestoreError(f"could not drop {self.target}: {exc}") from exc
