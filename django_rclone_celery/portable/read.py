"""Read a table's raw rows in primary-key batches and turn each value into its file form.

Raw cursor rows, not ``values_list``: the dump applies each column's database
converters itself, fused with the file encoding, and skips them where the
stored value already is close to the file form (SQLite's UTC datetimes,
UUIDs as hex), and skips NULLs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

from django.conf import settings
from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper

from . import format as fmt
from .selection import ModelType

Reader = Callable[[Any], Any]


def _sqlite_datetime(slow: Reader) -> Reader:
    # Django's sqlite3 converters already parsed the text; it holds UTC when USE_TZ is on.
    def read(value: Any) -> Any:
        if type(value) is dt.datetime and value.tzinfo is None:
            return value.isoformat() + "+00:00"
        return slow(value)

    return read


def _sqlite_uuid(slow: Reader) -> Reader:
    def read(value: Any) -> Any:
        if isinstance(value, str) and len(value) == 32:
            return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"
        return slow(value)

    return read


def _converted(
    field: models.Field[Any, Any], table: str, connection: BaseDatabaseWrapper, code: str
) -> Reader | None:
    """Django's converters for this column, then the file encoder; None if both are identity."""
    column = field.get_col(table)
    converters = [
        *connection.ops.get_db_converters(column),
        *column.get_db_converters(connection),
    ]
    encode = fmt.encoder(code)
    if code in ("", "text"):
        encode = _plain(field) or encode
    if not converters and encode is None:
        return None

    def read(value: Any) -> Any:
        for convert in converters:
            value = convert(value, column, connection)
        if value is None or encode is None:
            return value
        return encode(value)

    return read


_JSON_NATIVE = (str, int, float, bool)


def _plain(field: models.Field[Any, Any]) -> Reader | None:
    """For a field stored as text or a number whose Python value is an object
    (a time zone, a custom type): its database form, which ``loaddb`` parses back."""
    if type(field).__module__.startswith("django."):
        return None  # Django's own fields read back as str, int, float or bool

    def encode(value: Any) -> Any:
        if isinstance(value, _JSON_NATIVE):
            return value
        prepared = field.get_prep_value(value)
        return prepared if isinstance(prepared, _JSON_NATIVE) else str(prepared)

    return encode


def column_readers(
    fields: list[models.Field[Any, Any]], table: str, connection: BaseDatabaseWrapper
) -> list[Reader | None]:
    """One reader per column (None: the raw value is already the file value)."""
    readers: list[Reader | None] = []
    utc_sqlite = (
        connection.vendor == "sqlite"
        and settings.USE_TZ
        and not connection.settings_dict.get("TIME_ZONE")
    )
    for field in fields:
        code = fmt.type_code(field)
        slow = _converted(field, table, connection, code)
        if connection.vendor == "sqlite" and slow is not None:
            if code == "datetime" and utc_sqlite:
                readers.append(_sqlite_datetime(slow))
                continue
            if code == "uuid":
                readers.append(_sqlite_uuid(slow))
                continue
        readers.append(slow)
    return readers


def raw_batches(
    model: ModelType,
    fields: list[models.Field[Any, Any]],
    connection: BaseDatabaseWrapper,
    size: int,
) -> Iterator[list[tuple[Any, ...]]]:
    """Raw rows in batches of ``size``: ``WHERE pk > last ORDER BY pk LIMIT size``.

    Memory stays at one batch on every engine. A model whose key is not one
    column is read by ``fetchmany`` from a single query instead.
    """
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    columns = ", ".join(quote(str(f.column)) for f in fields)
    pk = model._meta.pk
    with connection.cursor() as cursor:
        if pk is None or pk not in fields:
            cursor.execute(f"SELECT {columns} FROM {table}")
            while batch := cursor.fetchmany(size):
                yield batch
            return
        key = quote(str(pk.column))
        index = fields.index(pk)
        cursor.execute(f"SELECT {columns} FROM {table} ORDER BY {key} LIMIT %s", [size])
        batch = cursor.fetchall()
        while batch:
            yield batch
            if len(batch) < size:
                return
            cursor.execute(
                f"SELECT {columns} FROM {table} WHERE {key} > %s ORDER BY {key} LIMIT %s",
                [batch[-1][index], size],
            )
            batch = cursor.fetchall()
