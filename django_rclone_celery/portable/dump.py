"""Dump tables through the models into the portable format, in bounded memory.

Rows are read by primary key ranges (``WHERE pk > last ORDER BY pk LIMIT n``,
see ``read.py``): memory stays flat on every engine, including PyMySQL, whose
plain cursors would fetch a whole result set at once. All tables are read in one
transaction, repeatable-read on PostgreSQL, so the dump is one snapshot.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from django.db import connections, models, transaction

from ..exceptions import ConfigurationError
from . import format as fmt
from . import read
from .errors import PortableFormatError, database_errors
from .selection import ModelType, select_models

CHUNK_ROWS = 2000


@dataclass(frozen=True, kw_only=True)
class TableDump:
    table: str
    model: str
    rows: int
    path: str | None = None


@dataclass(frozen=True, kw_only=True)
class DumpResult:
    database: str
    tables: list[TableDump] = field(default_factory=list)
    directory: str | None = None
    duration: float = 0.0

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)


TableCallback = Callable[[TableDump], None]


def dump_fields(model: ModelType) -> list[models.Field[Any, Any]]:
    """Stored columns: generated columns are computed by the database, never written."""
    return [f for f in model._meta.concrete_fields if not getattr(f, "generated", False)]


def iter_table(model: ModelType, using: str, counter: list[int]) -> Iterator[str]:
    """One section, as text pieces of about ``CHUNK_ROWS`` lines; rows counted into ``counter``."""
    meta = model._meta
    fields = dump_fields(model)
    codes = [fmt.type_code(f) for f in fields]
    yield fmt.header_line(
        table=meta.db_table,
        model=meta.label,
        fields=[str(f.column) for f in fields],
        types={str(f.column): code for f, code in zip(fields, codes, strict=True) if code},
    )
    connection = connections[using]
    readers = read.column_readers(fields, meta.db_table, connection)
    coded = [(i, reader) for i, reader in enumerate(readers) if reader is not None]
    dumps = fmt.dumps
    for batch in read.raw_batches(model, fields, connection, CHUNK_ROWS):
        lines = []
        for row in batch:
            if coded:
                values = list(row)
                for i, reader in coded:
                    value = values[i]
                    if value is not None:  # NULL stays null, whatever the type
                        values[i] = reader(value)
                lines.append(dumps(values))
            else:
                lines.append(dumps(row))
        counter[0] += len(lines)
        lines.append("")
        yield "\n".join(lines)
    yield fmt.footer_line(meta.db_table)


@contextmanager
def snapshot(using: str) -> Iterator[None]:
    """One read transaction for the whole dump: every table as of one moment.

    PostgreSQL: repeatable read. MariaDB/MySQL (InnoDB): a repeatable-read
    consistent snapshot. SQLite: the read lock held by the transaction.
    """
    connection = connections[using]
    outermost = not connection.in_atomic_block
    with transaction.atomic(using=using):
        # Take the snapshot now, not at the first table's query.
        with connection.cursor() as cursor:
            if outermost and connection.vendor == "postgresql":
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                cursor.execute("SELECT 1")
            elif outermost and connection.vendor == "mysql":
                # Django's MySQL sessions default to READ COMMITTED: ask for more.
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
            elif connection.vendor == "sqlite":
                cursor.execute("SELECT count(*) FROM sqlite_master")
        yield


def iter_dump(
    app_labels: Sequence[str] = (),
    *,
    models: Sequence[ModelType] | None = None,
    using: str = "default",
    on_table: TableCallback | None = None,
) -> Iterator[bytes]:
    """The whole dump as one stream of UTF-8 bytes (sections one after another).

    This is what ``dumpdb --stdout`` prints and what a portable backup uploads.
    """
    selected = select_models(app_labels, models_=models, using=using)
    with database_errors(using), snapshot(using):
        for model in selected:
            counter = [0]
            for piece in iter_table(model, using, counter):
                yield piece.encode("utf-8")
            if on_table:
                meta = model._meta
                on_table(TableDump(table=meta.db_table, model=meta.label, rows=counter[0]))


@contextmanager
def _writable(target: Path) -> Iterator[None]:
    """Create ``target`` (0700) if missing; an unusable directory is one clear error."""
    try:
        if not target.is_dir():
            target.mkdir(parents=True)
            target.chmod(0o700)
        yield
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigurationError(f"cannot write the dump into {target}: {reason}") from exc


def _private_file(path: Path) -> IO[str]:
    """A new file readable by its owner only, whatever the umask: tables hold password hashes."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    return open(fd, "w", encoding="utf-8", newline="\n")


def table_path(directory: Path, table: str) -> Path:
    """The file of ``table``; a table name can never point outside ``directory``."""
    if not table or "/" in table or os.sep in table or table.startswith("."):
        raise PortableFormatError(f"table name {table!r} cannot be used as a file name")
    return directory / f"{table}{fmt.SUFFIX}"


def dump_portable(
    app_labels: Sequence[str] = (),
    *,
    models: Sequence[ModelType] | None = None,
    using: str = "default",
    directory: str | os.PathLike[str] | None = "datadir",
    stream: IO[bytes] | None = None,
    on_table: TableCallback | None = None,
) -> DumpResult:
    """Dump the models of ``app_labels`` (every app if empty), one file per table.

    Args:
        app_labels: apps to dump; empty means all installed apps.
        models: an explicit model list instead of ``app_labels``.
        using: the database alias to read.
        directory: where ``<table>.jsonl`` files go; created if missing.
        stream: write the single-stream form here instead of files.
        on_table: called after each table with its row count.

    Returns:
        A :class:`DumpResult` listing each table, its row count and file.
    """
    started = time.monotonic()
    tables: list[TableDump] = []

    def record(table: TableDump) -> None:
        tables.append(table)
        if on_table:
            on_table(table)

    if stream is not None:
        for chunk in iter_dump(app_labels, models=models, using=using, on_table=record):
            stream.write(chunk)
        stream.flush()
        return DumpResult(database=using, tables=tables, duration=time.monotonic() - started)

    target = Path(directory or "datadir")
    selected = select_models(app_labels, models_=models, using=using)
    # The database first: a refused login leaves no new directory behind.
    with database_errors(using), snapshot(using), _writable(target):
        for model in selected:
            path = table_path(target, model._meta.db_table)
            partial = path.with_name(path.name + ".partial")
            counter = [0]
            try:
                with _private_file(partial) as handle:
                    for piece in iter_table(model, using, counter):
                        handle.write(piece)
                os.replace(partial, path)  # a reader never sees half a file
            except BaseException:
                partial.unlink(missing_ok=True)
                raise
            record(
                TableDump(
                    table=model._meta.db_table,
                    model=model._meta.label,
                    rows=counter[0],
                    path=str(path),
                )
            )
    return DumpResult(
        database=using,
        tables=tables,
        directory=str(target),
        duration=time.monotonic() - started,
    )
