"""Load portable data into today's models: all of it, or nothing.

The whole load is one transaction. Foreign keys are checked once, after every
table is in, so any order and any cycle loads (Django's own ``loaddata`` does
the same):

* PostgreSQL and SQLite: Django creates foreign keys ``DEFERRABLE INITIALLY
  DEFERRED``; they are checked before commit (``SET CONSTRAINTS ALL
  IMMEDIATE`` / ``PRAGMA foreign_key_check``).
* MariaDB / MySQL: foreign keys cannot be deferred, so ``foreign_key_checks``
  is switched off for this session during the load and every loaded table,
  and every table pointing into one, is checked by a join before commit.

Rows go in by batched ``INSERT`` statements, each batch in a savepoint. A
batch the database refuses is retried row by row to name the bad rows. Every
error is reported with its table and line (``errorquit`` stops at the first);
if there was any, the transaction is rolled back.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.db import DatabaseError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from . import format as fmt
from .dump import table_path
from .errors import PortableFormatError, PortableLoadError, RowError, database_errors
from .fill import TablePlan, plan_table
from .selection import ModelType, referencing_tables, select_models
from .sequences import reset_sequences

BATCH_ROWS = 1000
KEEP_ERRORS = 1000  # all are passed to on_error; only this many are kept in memory


@dataclass(frozen=True, kw_only=True)
class TableLoad:
    table: str
    model: str
    rows: int = 0
    skipped: str = ""  # why the table was not loaded, if it was not
    ignored_fields: list[str] = field(default_factory=list)
    filled_fields: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class LoadResult:
    database: str
    tables: list[TableLoad] = field(default_factory=list)
    sequences_reset: int = 0
    duration: float = 0.0

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)


TableCallback = Callable[[TableLoad], None]
ErrorCallback = Callable[[RowError], None]


class _Stop(Exception):
    """``errorquit``: leave at the first error."""


class _Loader:
    def __init__(
        self,
        using: str,
        *,
        remain: bool,
        errorquit: bool,
        on_table: TableCallback | None,
        on_error: ErrorCallback | None,
    ) -> None:
        self.using = using
        self.connection: BaseDatabaseWrapper = connections[using]
        self.remain = remain
        self.errorquit = errorquit
        self.on_table = on_table
        self.on_error = on_error
        self.now = timezone.now()
        self.errors: list[RowError] = []
        self.error_count = 0
        self.tables: list[TableLoad] = []
        self.loaded: list[ModelType] = []
        with self.connection.cursor() as cursor:
            self.existing = set(self.connection.introspection.table_names(cursor))

    # errors -------------------------------------------------------------
    def error(self, table: str, line: int, message: str) -> None:
        error = RowError(table, line, message)
        self.error_count += 1
        if len(self.errors) < KEEP_ERRORS:
            self.errors.append(error)
        if self.on_error:
            self.on_error(error)
        if self.errorquit:
            raise _Stop

    def note(self, table: TableLoad) -> None:
        self.tables.append(table)
        if self.on_table:
            self.on_table(table)

    # one table ----------------------------------------------------------
    def load(
        self, model: ModelType, header: fmt.Header, records: Iterator[tuple[int, list[Any]]]
    ) -> None:
        table = model._meta.db_table
        plan = plan_table(model, header, self.connection, self.now)
        if table not in self.existing:
            plan.problems.insert(0, "the table does not exist in this database (run migrate)")
        for problem in plan.problems:
            self.error(table, 0, problem)
        if plan.problems:
            self.note(TableLoad(table=table, model=model._meta.label, skipped="errors"))
            return
        quote = self.connection.ops.quote_name
        if not self.remain:
            with self.connection.cursor() as cursor:
                cursor.execute(f"DELETE FROM {quote(table)}")
        sql = "INSERT INTO {} ({}) VALUES ({})".format(
            quote(table),
            ", ".join(quote(c) for c in plan.columns),
            ", ".join(["%s"] * len(plan.columns)),
        )
        rows = 0
        batch: list[list[Any]] = []
        lines: list[int] = []
        for number, record in records:
            params = self._params(plan, number, record)
            if params is None:
                continue
            batch.append(params)
            lines.append(number)
            if len(batch) >= BATCH_ROWS:
                rows += self._insert(table, sql, batch, lines)
                batch, lines = [], []
        if batch:
            rows += self._insert(table, sql, batch, lines)
        self.loaded.append(model)
        self.note(
            TableLoad(
                table=table,
                model=model._meta.label,
                rows=rows,
                ignored_fields=plan.ignored,
                filled_fields=plan.sources,
            )
        )

    def _params(self, plan: TablePlan, number: int, record: list[Any]) -> list[Any] | None:
        if len(record) != plan.width:
            self.error(
                plan.table,
                number,
                f"the record has {len(record)} values for {plan.width} fields: {_short(record)}",
            )
            return None
        try:
            return [prep(get(record)) for get, prep in zip(plan.getters, plan.preps, strict=True)]
        except (ValueError, TypeError, ValidationError, ArithmeticError) as exc:
            message = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
            self.error(plan.table, number, f"{message}: {_short(record)}")
            return None

    def _insert(self, table: str, sql: str, batch: list[list[Any]], lines: list[int]) -> int:
        try:
            with transaction.atomic(using=self.using), self.connection.cursor() as cursor:
                # psycopg pipelines executemany; PyMySQL rewrites it into one INSERT.
                cursor.executemany(sql, batch)
            return len(batch)
        except DatabaseError:
            pass
        done = 0  # find the bad rows, one savepoint each
        for params, number in zip(batch, lines, strict=True):
            try:
                with transaction.atomic(using=self.using), self.connection.cursor() as cursor:
                    cursor.execute(sql, params)
                done += 1
            except DatabaseError as exc:
                self.error(table, number, " ".join(str(exc).split()))
        return done

    # the end ------------------------------------------------------------
    def finish(self) -> int:
        """Check foreign keys, then move the counters; returns sequences moved."""
        if self.error_count:
            raise PortableLoadError(self.errors, self.error_count)
        tables = {m._meta.db_table for m in self.loaded}
        if not tables:
            return 0
        tables |= referencing_tables(self.loaded, self.using)
        try:
            self.connection.check_constraints(table_names=sorted(tables))
        except DatabaseError as exc:
            error = RowError("foreign keys", 0, " ".join(str(exc).split()))
            if self.on_error:
                self.on_error(error)
            raise PortableLoadError([error]) from exc
        return reset_sequences(self.connection, self.loaded)


def _short(record: list[Any]) -> str:
    text = fmt.dumps(record)
    return text if len(text) <= 200 else text[:197] + "..."


def _run(
    using: str,
    body: Callable[[_Loader], None],
    *,
    remain: bool,
    errorquit: bool,
    on_table: TableCallback | None,
    on_error: ErrorCallback | None,
) -> LoadResult:
    with database_errors(using):
        return _run_atomic(
            using, body, remain=remain, errorquit=errorquit, on_table=on_table, on_error=on_error
        )


def _run_atomic(
    using: str,
    body: Callable[[_Loader], None],
    *,
    remain: bool,
    errorquit: bool,
    on_table: TableCallback | None,
    on_error: ErrorCallback | None,
) -> LoadResult:
    started = time.monotonic()
    loader = _Loader(
        using, remain=remain, errorquit=errorquit, on_table=on_table, on_error=on_error
    )
    connection = loader.connection
    try:
        with transaction.atomic(using=using):
            with connection.constraint_checks_disabled():
                body(loader)
            moved = loader.finish()
    except _Stop:
        raise PortableLoadError(loader.errors, loader.error_count) from None
    return LoadResult(
        database=using,
        tables=loader.tables,
        sequences_reset=moved,
        duration=time.monotonic() - started,
    )


def _file_lines(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        yield from handle


def load_portable(
    app_labels: Sequence[str] = (),
    *,
    models: Sequence[ModelType] | None = None,
    using: str = "default",
    directory: str | os.PathLike[str] = "datadir",
    remain: bool = False,
    errorquit: bool = False,
    on_table: TableCallback | None = None,
    on_error: ErrorCallback | None = None,
) -> LoadResult:
    """Load ``<table>.jsonl`` files from ``directory`` into the models of ``app_labels``.

    Args:
        app_labels: apps to load; empty means all installed apps.
        models: an explicit model list instead of ``app_labels``.
        using: the database alias to write.
        directory: where the files are. A table without a file is skipped, untouched.
        remain: keep the rows already in the tables (default: empty each loaded table).
        errorquit: stop at the first error instead of collecting them all.
        on_table: called after each table (loaded or skipped).
        on_error: called with each error as it is found.

    Returns:
        A :class:`LoadResult`.

    Raises:
        PortableLoadError: something failed; nothing was changed.
        PortableFormatError: a file is not in the portable format.
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise PortableFormatError(f"{folder} is not a directory")
    selected = select_models(app_labels, models_=models, using=using)
    if selected and not any(table_path(folder, m._meta.db_table).is_file() for m in selected):
        # Loading nothing is not a success: the wrong directory, or a dump never made.
        raise PortableFormatError(
            f"{folder} holds no file of the selected tables (<table>{fmt.SUFFIX}); "
            "nothing was loaded"
        )

    def body(loader: _Loader) -> None:
        for model in selected:
            table = model._meta.db_table
            path = table_path(folder, table)
            if not path.is_file():
                loader.note(
                    TableLoad(table=table, model=model._meta.label, skipped=f"no file {path}")
                )
                continue
            found = False
            for header, records in fmt.sections(_file_lines(path), str(path)):
                if found:
                    raise PortableFormatError(f"{path}: holds more than one table")
                found = True
                if header.table != table:
                    raise PortableFormatError(
                        f"{path}: holds table {header.table!r}, expected {table!r}"
                    )
                loader.load(model, header, records)
            if not found:
                raise PortableFormatError(f"{path}: empty (no table header); nothing was loaded")

    return _run(
        using, body, remain=remain, errorquit=errorquit, on_table=on_table, on_error=on_error
    )


def load_portable_stream(
    lines: Iterable[bytes],
    *,
    app_labels: Sequence[str] = (),
    models: Sequence[ModelType] | None = None,
    using: str = "default",
    remain: bool = False,
    errorquit: bool = False,
    on_table: TableCallback | None = None,
    on_error: ErrorCallback | None = None,
    name: str = "stream",
) -> LoadResult:
    """Load the single-stream form (``dumpdb --stdout``, a portable backup).

    Sections load in the order they come. A section whose table no selected
    model has is skipped with a note, as is a selected model with no section.
    Other arguments are as for :func:`load_portable`.
    """
    selected = select_models(app_labels, models_=models, using=using)
    by_table = {m._meta.db_table: m for m in selected}

    def body(loader: _Loader) -> None:
        seen = set()
        for header, records in fmt.sections(lines, name):
            model = by_table.get(header.table)
            if model is None or header.table in seen:
                why = "already loaded" if header.table in seen else "no model has this table"
                loader.note(TableLoad(table=header.table, model=header.model, skipped=why))
                continue
            seen.add(header.table)
            loader.load(model, header, records)
        for table, model in by_table.items():
            if table not in seen:
                loader.note(
                    TableLoad(table=table, model=model._meta.label, skipped=f"not in the {name}")
                )

    return _run(
        using, body, remain=remain, errorquit=errorquit, on_table=on_table, on_error=on_error
    )
