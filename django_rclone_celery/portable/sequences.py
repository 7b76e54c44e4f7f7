"""After a load, make sure the next row the database numbers is a fresh key.

Rows are inserted with their own primary keys, which counters do not see on
every engine:

* PostgreSQL: sequences (serial and identity columns) ignore explicit keys. The
  sequence is moved to the table's highest key, and only ever forward:
  ``setval`` is not undone by a rollback, so lowering it could hand out keys
  of rows the rollback brings back.
* MariaDB / MySQL: InnoDB moves ``AUTO_INCREMENT`` past every explicit key it
  stores and never back. ``ALTER TABLE ... AUTO_INCREMENT`` would also commit
  the load's transaction half-way, so nothing is run.
* SQLite: Django's keys are ``AUTOINCREMENT``; SQLite records explicit keys in
  ``sqlite_sequence`` by itself. Nothing is run.

The tests insert a new row after a load on each engine to prove it.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.backends.base.base import BaseDatabaseWrapper

from .selection import ModelType


def reset_sequences(connection: BaseDatabaseWrapper, loaded: Iterable[ModelType]) -> int:
    """Move counters past the loaded keys; returns how many were moved."""
    if connection.vendor != "postgresql":
        return 0
    moved = 0
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        for model in loaded:
            pk = model._meta.pk
            if pk is None or not getattr(pk, "db_returning", False):  # not an AutoField
                continue
            table = model._meta.db_table
            cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [quote(table), pk.column])
            sequence = cursor.fetchone()[0]
            if sequence is None:
                continue
            cursor.execute(f"SELECT MAX({quote(pk.column)}) FROM {quote(table)}")
            highest = cursor.fetchone()[0]
            if highest is None:
                continue
            # pg_get_serial_sequence returns an already quoted, qualified name.
            cursor.execute(f"SELECT last_value, is_called FROM {sequence}")
            last_value, is_called = cursor.fetchone()
            next_value = last_value + 1 if is_called else last_value
            if highest >= next_value:
                cursor.execute("SELECT setval(%s, %s, true)", [sequence, highest])
                moved += 1
    return moved
