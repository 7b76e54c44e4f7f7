"""The parallel dump: one exported snapshot, a schema archive and N data streams.

A coordinator transaction exports its snapshot, locks every table it will
stream (as pg_dump does) and stays open until every stream has ended. The
schema archive is ``pg_dump --snapshot`` without those tables' rows; each
stream is one ``psql`` that imports the snapshot and COPYs its pieces out.
Every object goes to a partial name; :meth:`StreamSet.commit` moves the
streams to their final names before the backup itself is published, and a
failure (or a kill: partial names are swept) leaves nothing listed.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from .. import naming, process, rc
from ..compression import compressor
from ..conf import Compression, Settings
from ..connectors.postgresql import PostgresConnector, dumped_row_counts
from ..exceptions import RcloneError
from ..process import Command, PipeStats
from ..rclone import Rclone
from . import LAYOUT, submit
from .streams import DUMP_SETTINGS, CopyScript, Piece, StreamEnd, end_line, sql_literal

logger = logging.getLogger("django_rclone_celery")

# A table is split when it is larger than this share of one stream's work.
SPLIT_SHARE = 0.5
MIN_PIECE = 8 << 20  # bytes: smaller ranges cost more in scans than they win

_TABLES = (
    "SELECT c.oid, n.nspname, c.relname, quote_ident(n.nspname) || '.' || quote_ident(c.relname),"
    " pg_table_size(c.oid), pg_relation_size(c.oid) FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind = 'r' AND n.nspname <> 'information_schema' "
    "AND n.nspname NOT LIKE 'pg\\_%' AND NOT EXISTS (SELECT 1 FROM pg_depend d "
    "WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e') "
    "ORDER BY 5 DESC, 2, 3"
)
_COLUMNS = (
    "SELECT attrelid, string_agg(quote_ident(attname), ', ' ORDER BY attnum) "
    "FROM pg_attribute WHERE attrelid = ANY(%s) AND attnum > 0 AND NOT attisdropped "
    "AND attgenerated = '' GROUP BY attrelid"
)


def plan(tables: list[Piece], jobs: int, block_size: int, split: bool) -> list[list[Piece]]:
    """Deal the tables, big ones cut into ``ctid`` ranges, into ``jobs`` streams.

    Largest piece first to the least loaded stream: the streams end close
    together. A stream with nothing to carry is left out.
    """
    total = sum(t.size for t in tables)
    share = max(int(total / jobs * SPLIT_SHARE), MIN_PIECE)
    pieces: list[Piece] = []
    for table in tables:
        blocks = table.size // block_size
        if not split or table.size <= share or blocks < 2:
            pieces.append(table)
            continue
        parts = min(-(-table.size // share), blocks)
        step = -(-blocks // parts)
        bounds = list(range(0, blocks, step))
        for i, first in enumerate(bounds):
            last = i == len(bounds) - 1
            pieces.append(
                replace(
                    table,
                    first=first if i else None,
                    end=None if last else first + step,  # the last range is open: it takes all
                    size=table.size // len(bounds),
                )
            )
    streams: list[list[Piece]] = [[] for _ in range(jobs)]
    loads = [0] * jobs
    for piece in sorted(pieces, key=lambda p: p.size, reverse=True):
        least = loads.index(min(loads))
        streams[least].append(piece)
        loads[least] += max(piece.size, 1)
    return [s for s in streams if s]


def stream_command(
    connector: PostgresConnector,
    snapshot: str,
    encoding: str,
    pieces: list[Piece],
    index: int,
    total: int,
) -> Command:
    """One ``psql`` writing stream ``index``: its header, a COPY block per piece, its end line.

    With plain names (:meth:`Piece.plain`), the lines are ``\\echo``'d and the
    rows copied with ``\\copy ... TO pstdout``, and the command tags go to
    stderr (``\\o``): each ``COPY n`` there is the server's count of a block,
    so no one reads every row to count them (:func:`copy_tags`). Otherwise
    the lines come from ``SELECT`` and the rows from ``COPY ... TO STDOUT``.
    """
    tagged = tags_rows(pieces)
    sql = [
        "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
        f"SET TRANSACTION SNAPSHOT {sql_literal(snapshot)}",
        f"SET client_encoding = {sql_literal(encoding)}",
        *DUMP_SETTINGS,
    ]
    header = [
        f"SET client_encoding = {sql_literal(encoding)};",
        "SET DateStyle = ISO;",
        "SET IntervalStyle = postgres;",
        "SET standard_conforming_strings = on;",
    ]
    if tagged:
        sql = ["\\o /dev/stderr", *sql, *(_echo(line) for line in header)]
        for piece in pieces:
            sql += [_echo(piece.header()), f"\\copy {piece.source()} TO pstdout", _echo("\\.")]
        sql += [_echo(end_line(index, total).decode()), "COMMIT"]
    else:
        sql.append("SELECT " + sql_literal("\n".join(header)))
        for piece in pieces:
            sql += ["SELECT " + sql_literal(piece.header()), piece.select()]
            sql.append("SELECT chr(92) || '.'")
        sql += ["SELECT " + sql_literal(end_line(index, total).decode()), "COMMIT"]
    # The dump's connection (DATABASE_OPTIONS' HOST, USER...), as the schema archive's.
    # Not quiet when tagged: quiet psql prints no command tags.
    argv = [connector.program("psql"), "-X", *(() if tagged else ("-q",))]
    argv += ["-A", "-t", "-v", "ON_ERROR_STOP=1"]
    argv += [*connector._conn_args(dump=True), f"--dbname={connector.name}"]
    for statement in sql:
        argv += ["-c", statement]
    return connector._command(argv, dump=True)


# More blocks than this in one stream and the kept tail of psql's stderr could
# lose the first tags; such a stream counts its rows as they pass instead.
MAX_TAGGED = 1000


def tags_rows(pieces: list[Piece]) -> bool:
    """Whether the stream of ``pieces`` takes its row counts from the server's tags."""
    return len(pieces) <= MAX_TAGGED and all(p.plain() for p in pieces)


def _echo(line: str) -> str:
    # psql reads \\ and '' in a quoted argument as \ and '.
    return "\\echo '" + line.replace("\\", "\\\\").replace("'", "''") + "'"


_COPY_TAG = re.compile(r"^COPY (\d+)$", re.MULTILINE)


def copy_tags(stderr: str, pieces: int) -> list[int] | None:
    """The rows of each block, from the ``COPY n`` tags a tagged stream's psql wrote.

    None unless there is one per block: the caller counts those rows in SQL.
    """
    found = [int(m.group(1)) for m in _COPY_TAG.finditer(stderr)]
    return found if len(found) == pieces else None


@dataclass
class _Coordinator:
    """The transaction whose snapshot every reader imports; open until the dump ends."""

    connector: PostgresConnector
    snapshot: str = ""
    encoding: str = ""
    block_size: int = 8192
    split: bool = True
    tables: list[Piece] = field(default_factory=list)

    def open(self, cursor: Any) -> None:
        cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        cursor.execute(
            "SELECT pg_export_snapshot(), current_setting('server_encoding'), "
            "current_setting('block_size')::int, "
            "current_setting('server_version_num')::int"
        )
        self.snapshot, self.encoding, self.block_size, version = cursor.fetchone()
        # TID range scans (PostgreSQL 14): a ctid range reads only its blocks.
        self.split = version >= 140000
        cursor.execute(_TABLES)
        rows = cursor.fetchall()
        for _, _, _, target, _, _ in rows:
            # As pg_dump: no DDL or TRUNCATE can change a table while it is read.
            cursor.execute(f"LOCK TABLE {target} IN ACCESS SHARE MODE")
        columns: dict[int, str] = {}
        if rows:
            cursor.execute(_COLUMNS, [[row[0] for row in rows]])
            columns = {int(oid): str(cols) for oid, cols in cursor.fetchall()}
        self.tables = [
            Piece(
                schema=schema,
                table=table,
                target=target,
                columns=columns.get(int(oid), ""),
                size=int(size),
            )
            for oid, schema, table, target, size, _ in rows
        ]


def _pattern(piece: Piece) -> str:
    def quoted(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    return f"{quoted(piece.schema)}.{quoted(piece.table)}"


@dataclass
class StreamSet:
    """The streams of one backup: uploaded to partial names, then committed."""

    rclone: Rclone
    calls: rc.Control | None = None  # the commit's moves (see floor.publish.Publication)
    written: list[str] = field(default_factory=list)  # every object to remove on failure
    streams: list[dict[str, Any]] = field(default_factory=list)
    partials: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        """Bytes of every stream (the schema archive not included)."""
        return sum(int(s.get("size", 0)) for s in self.streams)

    def manifest_fields(self) -> dict[str, Any]:
        if not self.streams:
            return {}
        return {"streams": self.streams, "layout": LAYOUT, "version": 2}

    def commit(self, final: str) -> None:
        """Move every stream to its name beside ``final``; the caller then publishes."""
        directory, _, base = final.rpartition("/")
        calls = self.calls or rc.Control.direct(self.rclone)
        for index, partial_path in enumerate(self.partials):
            name = naming.stream_name(base, index)
            target = f"{directory}/{name}" if directory else name
            self.written.append(target)
            calls.move_file(partial_path, target)
            self.streams[index]["name"] = name

    def _small(self, path: str) -> dict[str, Any]:
        """``process.pipe`` arguments that write a small output through the daemon."""
        if self.calls is None:
            return {}
        return {"hold": rc.SMALL_UPLOAD, "small": partial(self.calls.put_bytes, path)}

    def dump(
        self,
        connector: PostgresConnector,
        main_partial: str,
        *,
        kind: Compression,
        settings: Settings,
        jobs: int,
        progress: Callable[[int], None] | None,
    ) -> tuple[PipeStats, dict[str, int]]:
        """Write the schema archive to ``main_partial`` and the streams beside it.

        Returns the archive's stats and the row counts of the snapshot.
        """
        coordinator = _Coordinator(connector)
        counted: dict[str, int] = {}
        with connector.cursor(dump=True) as cursor:
            coordinator.open(cursor)
            layout = plan(coordinator.tables, jobs, coordinator.block_size, coordinator.split)
            total = len(layout)
            connector.snapshot = coordinator.snapshot
            try:
                schema = connector.dump_command(
                    compress=False,
                    extra=tuple(f"--exclude-table-data={_pattern(t)}" for t in coordinator.tables),
                )
            finally:
                connector.snapshot = None
            check = connector.stream_check(dumping=True)
            self.partials = [
                f"{main_partial}{naming.STREAM_MARKER}{i}{naming.PARTIAL_MARKER}{uuid.uuid4().hex}"
                for i in range(total)
            ]
            self.written += self.partials
            lock = threading.Lock()
            moved = [0]

            def tick(delta: int) -> None:
                with lock:
                    moved[0] += delta
                    if progress:
                        progress(moved[0])

            def counter() -> Callable[[int], None]:
                seen = [0]

                def on(size: int) -> None:
                    tick(size - seen[0])
                    seen[0] = size

                return on

            def pack() -> Any:
                return compressor(kind, settings.compression_level, settings.compression_threads)

            def one(index: int) -> PipeStats:
                pieces = layout[index]
                # A tagged stream's rows are counted by the server; only its end is looked at.
                script = None if tags_rows(pieces) else CopyScript(index, total, len(pieces))
                check = script or StreamEnd(index, total)
                command = stream_command(
                    connector, coordinator.snapshot, coordinator.encoding, pieces, index, total
                )
                stats = process.pipe(
                    command,
                    self.rclone.rcat(self.partials[index]),
                    transform=pack(),
                    digest="sink",
                    progress=counter(),
                    sink_error=RcloneError,
                    tap=check.feed,
                    before_end=partial(check.check, f"stream {index} of the dump"),
                    **self._small(self.partials[index]),
                )
                rows = script.rows if script else copy_tags(stats.source_stderr, len(pieces))
                self.streams[index].update(size=stats.bytes_out, sha256=stats.sha256, rows=rows)
                return stats

            self.streams = [
                {"index": i, "pieces": [p.as_dict() for p in layout[i]]} for i in range(total)
            ]
            # The streams count their own rows; SQL counts only the tables they do not carry
            # (extensions' configuration rows, in the archive): no second scan of the data.
            streamed = {t.key for t in coordinator.tables}
            with ThreadPoolExecutor(max_workers=total + 2, thread_name_prefix="drc-par") as pool:
                counts = submit(pool, _count, connector, coordinator.snapshot, streamed)
                futures = [submit(pool, one, i) for i in range(total)]
                archive = process.pipe(
                    schema,
                    self.rclone.rcat(main_partial),
                    transform=pack(),
                    digest="sink",
                    progress=counter(),
                    sink_error=RcloneError,
                    tap=check.feed if check else None,
                    before_end=partial(check.check, "the schema archive") if check else None,
                    **self._small(main_partial),
                )
                for future in futures:
                    future.result()
                counted = counts.result()
            # Tags that did not come out one per block (a secret masked in psql's
            # stderr, say): those tables are counted in SQL, in the same snapshot.
            unknown = {
                p.key
                for stream, pieces in zip(self.streams, layout, strict=True)
                if stream["rows"] is None
                for p in pieces
            }
            if unknown:
                again = _count(connector, coordinator.snapshot, streamed - unknown)
                counted.update({key: again[key] for key in unknown})
            for stream, pieces in zip(self.streams, layout, strict=True):
                if stream["rows"] is None:
                    del stream["rows"]
                    continue
                for piece, rows in zip(pieces, stream["rows"], strict=True):
                    if piece.key not in unknown:
                        counted[piece.key] = counted.get(piece.key, 0) + rows
            cursor.execute("COMMIT")
        return archive, counted

    def discard(self) -> None:
        from ..floor.publish import discard

        discard(self.rclone, *self.written)


def _count(connector: PostgresConnector, snapshot: str, skip: set[str]) -> dict[str, int]:
    """Rows of the tables not in ``skip``, in the snapshot the streams read."""
    with connector.cursor(dump=True) as cursor:
        cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        cursor.execute(f"SET TRANSACTION SNAPSHOT {sql_literal(snapshot)}")
        counts = dumped_row_counts(cursor, connector.quote, skip=skip)
        cursor.execute("COMMIT")
        return counts


@contextmanager
def stream_set(rclone: Rclone, *, calls: rc.Control | None = None) -> Iterator[StreamSet]:
    """Yield a :class:`StreamSet`; if the block fails, remove every object it wrote."""
    streams = StreamSet(rclone, calls)
    try:
        yield streams
    except BaseException:
        streams.discard()
        raise
