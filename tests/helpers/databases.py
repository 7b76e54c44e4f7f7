"""Test data per database alias: create, change, read, and scratch tables."""

from __future__ import annotations

import datetime as dt
import decimal
import time
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

APP_TABLES = ("testapp_author", "testapp_book")
SERVER_ALIASES = ("pg", "gis", "maria")


def populate(alias: str, *, authors: int = 4, books: int = 3) -> None:
    """Authors and books with awkward values: unicode, quotes, NULLs, binary, JSON."""
    from tests.testapp.models import Author, Book

    for a in range(authors):
        author = Author.objects.using(alias).create(
            name=f'Autor {a} — «Ünïcødé» O\'Brien "quoted" \\ back',
            born=dt.date(1900 + a, 1 + a % 12, 1 + a) if a % 2 == 0 else None,
        )
        for b in range(books):
            Book.objects.using(alias).create(
                title=f"Book {a}.{b} ✓ tab\there newline\nthere",
                author=author,
                price=decimal.Decimal(f"{a}{b}.{b}9"),
                published=dt.datetime(2020, 1 + b, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
                if b % 2 == 0
                else None,
                blob=bytes(range(256)) * (b + 1) if b != 1 else None,
                meta={"a": a, "b": [b, None, "x"], "nested": {"ok": True}},
            )


def damage(alias: str) -> None:
    """Change the data in every way a restore must undo: delete, update, insert."""
    from tests.testapp.models import Author, Book

    Book.objects.using(alias).filter(
        pk__in=list(Book.objects.using(alias).order_by("pk").values_list("pk", flat=True)[:2])
    ).delete()
    Author.objects.using(alias).update(name="damaged")
    Author.objects.using(alias).create(name="intruder")


def _normalise(value: Any) -> Any:
    if isinstance(value, (memoryview, bytearray)):
        return bytes(value)
    return value


def snapshot(alias: str, tables: tuple[str, ...] = APP_TABLES) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of ``tables``, ordered by primary key, read with raw SQL."""
    connection = connections[alias]
    rows = {}
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)} ORDER BY 1")
            rows[table] = [tuple(_normalise(v) for v in row) for row in cursor.fetchall()]
    return rows


def drops_finished(alias: str, timeout: float = 60) -> None:
    """Wait while the server is still dropping a copy a PostgreSQL swap replaced.

    The swap sends ``DROP DATABASE ... WITH (FORCE)`` and returns without
    waiting for it; the server goes on with it. A drop still running after
    ``timeout`` seconds fails the test.
    """
    if connections[alias].vendor != "postgresql":
        return
    deadline = time.monotonic() + timeout
    live = connections[alias].settings_dict["NAME"]
    with connections[alias].cursor() as cursor:
        while True:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                "AND state = 'active' AND starts_with(query, %s)",
                [f'DROP DATABASE IF EXISTS "{live}__'],
            )
            if not cursor.fetchone()[0]:
                return
            if time.monotonic() > deadline:
                pytest.fail(f"a swap's DROP DATABASE still runs after {timeout} s")
            time.sleep(0.02)


def staging_leftovers(alias: str) -> list[str]:
    """Databases or files a restore stages beside the live one (must be none afterwards)."""
    settings_dict = connections[alias].settings_dict
    name = settings_dict["NAME"]
    vendor = connections[alias].vendor
    if vendor == "sqlite":
        live = Path(name)
        return sorted(p.name for p in live.parent.glob(live.name + ".restore-tmp*"))
    drops_finished(alias)
    with connections[alias].cursor() as cursor:
        if vendor == "postgresql":
            cursor.execute("SELECT datname FROM pg_database")
        else:
            cursor.execute("SHOW DATABASES")
        names = [row[0] for row in cursor.fetchall()]
    return sorted(n for n in names if n in (f"{name}__temp", f"{name}__old"))


# Tables made with raw SQL are not flushed between tests like the models' are.
_SCRATCH_TABLES: set[tuple[str, str]] = set()


def make_big_table(alias: str, table: str, rows: int) -> None:
    """A table of random text (``rows`` rows of ~100 bytes) that dump tools take a while over."""
    _SCRATCH_TABLES.add((alias, table))
    connection = connections[alias]
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {table}")
        if connection.vendor == "postgresql":
            cursor.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, a text, b text, c text)")
            cursor.execute(
                f"INSERT INTO {table} SELECT g, md5(random()::text), md5(random()::text), "
                f"md5(random()::text) FROM generate_series(1, %s) g",
                [rows],
            )
        else:
            cursor.execute(
                f"CREATE TABLE {table} (id bigint PRIMARY KEY, a char(32), b char(32), c char(32))"
            )
            cursor.execute(
                f"INSERT INTO {table} SELECT seq, md5(rand()), md5(rand()), md5(rand()) "
                f"FROM seq_1_to_{int(rows)}"
            )


def drop_table(alias: str, table: str) -> None:
    with connections[alias].cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {table}")


def db_params(*aliases: str) -> list[Any]:
    """``pytest.param`` per alias, each marked to use only that alias's test database.

    Parametrising over aliases this way keeps every test from creating and
    flushing all four databases.
    """
    return [
        pytest.param(
            a, marks=pytest.mark.django_db(transaction=True, databases=sorted({"default", a})), id=a
        )
        for a in aliases
    ]
