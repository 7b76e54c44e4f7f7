"""A faster flush after each transactional test, to the same end state.

Django empties every table after a transactional test (on PostgreSQL one
``TRUNCATE`` of all 26) and then re-creates content types and permissions
through ``post_migrate``: about 0.18 s per database, over a thousand times a
run, more than half of it ``post_migrate``. Here only the tables that hold rows
are emptied, and content types and permissions are kept while their row counts
are those the last full flush of that database left, so the signal has nothing
to do. Any other change to them, a first flush, ``available_apps`` or
``serialized_rollback`` get Django's own flush.
"""

from __future__ import annotations

from typing import Any

from django.core.management.color import no_style
from django.core.management.sql import emit_post_migrate_signal
from django.db import connections
from django.test import TransactionTestCase

# What post_migrate writes; kept between tests while unchanged.
MADE_BY_MIGRATE = ("django_content_type", "auth_permission")

# (alias, database name) -> row counts of MADE_BY_MIGRATE after a full flush.
# By name too: a test may point an alias at another database.
_baselines: dict[tuple[str, str], tuple[int, ...]] = {}
_django_teardown = TransactionTestCase._fixture_teardown


def _row_counts(alias: str, tables: list[str]) -> dict[str, int]:
    connection = connections[alias]
    quote = connection.ops.quote_name
    columns = ", ".join(f"(SELECT COUNT(*) FROM {quote(table)})" for table in tables)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns}")
        row = cursor.fetchone()
    return dict(zip(tables, (int(n) for n in row)))


def flush(alias: str) -> None:
    connection = connections[alias]
    tables = sorted(
        connection.introspection.django_table_names(only_existing=True, include_views=False)
    )
    if not tables:
        return
    counts = _row_counts(alias, tables)
    kept = [table for table in MADE_BY_MIGRATE if table in counts]
    key = (alias, str(connection.settings_dict["NAME"]))
    full = _baselines.get(key) != tuple(counts[table] for table in kept)
    doomed = [table for table in tables if counts[table] and (full or table not in kept)]
    if doomed:
        # CASCADE: a table left out (it was empty) may still reference one emptied.
        sql = connection.ops.sql_flush(
            no_style(), doomed, reset_sequences=False, allow_cascade=True
        )
        connection.ops.execute_sql_flush(sql)
    if full:
        emit_post_migrate_signal(0, False, alias)
        after = _row_counts(alias, kept) if kept else {}
        _baselines[key] = tuple(after[table] for table in kept)


def _fixture_teardown(self: Any) -> None:
    if self.available_apps is not None or self.serialized_rollback:
        _django_teardown(self)
        return
    for alias in self._databases_names(include_mirrors=False):
        flush(alias)


def install() -> None:
    """Flush this way after every transactional test of the session."""
    TransactionTestCase._fixture_teardown = _fixture_teardown  # type: ignore[method-assign]
