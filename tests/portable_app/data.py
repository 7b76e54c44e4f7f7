"""Test data for the portable tests: awkward values of every type, and a graph."""

from __future__ import annotations

import datetime as dt
import io
import uuid
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.core.management.base import OutputWrapper
from django.db import connections, models

from .models import Every, Item, Label, Person, Stamped, Tag, Team

UTC = dt.timezone.utc
CODE = "__import__('os').system('touch /tmp/pwned-by-portable')"


def run_command(name: str, *argv: str) -> tuple[str, str]:
    """Run a command as ``manage.py`` would; returns (stdout, stderr).

    Not ``call_command``: it maps its own ``stdout=`` to dumpdb's ``--stdout``.
    """
    from django.core.management import load_command_class

    out, err = io.StringIO(), io.StringIO()
    command = load_command_class("django_rclone_celery", name)
    command.stdout = OutputWrapper(out)
    command.stderr = OutputWrapper(err)
    command.run_from_argv(["manage.py", name, *argv])
    return out.getvalue(), err.getvalue()


def big_decimal(alias: str) -> Decimal:
    # SQLite keeps 15 significant digits of a NUMERIC column; servers keep them all.
    if connections[alias].vendor == "sqlite":
        return Decimal("12345.6789012345")
    return Decimal("12345678901234567890.0123456789")


def populate_every(alias: str, *, nul: bool | None = None) -> None:
    """Three rows of awkward values; ``nul`` puts a NUL character in a text (not on PostgreSQL)."""
    if nul is None:
        nul = connections[alias].vendor != "postgresql"
    Every.objects.using(alias).create(
        char="Ünïcødé — «quotes» \"double\" 'single' \\ back\u2028line-sep",
        text="line one\nline two\r\n\ttabbed" + ("\x00nul" if nul else ""),
        integer=-2147483648,
        big=9223372036854775807,
        small=-32768,
        positive=2147483647,
        flag=True,
        maybe=None,
        price=big_decimal(alias),
        ratio=0.1,
        day=dt.date(1, 1, 1),
        moment=dt.datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC),
        clock=dt.time(23, 59, 59, 123456),
        span=dt.timedelta(days=-3, seconds=5, microseconds=7),
        uid=uuid.UUID("12345678-1234-5678-1234-567812345678"),
        blob=bytes(range(256)),
        data={"n": 1, "f": 1.5, "s": "ü", "l": [1, None, True], "d": {"x": {"y": []}}},
        email="a@example.com",
        slug="a-slug",
        ip="2001:db8::1",
        zone=ZoneInfo("Europe/Paris"),
        label=Label("a label"),
    )
    Every.objects.using(alias).create(
        char=CODE,
        text="",
        integer=0,
        price=Decimal("0.1"),
        ratio=-1e-300,
        day=dt.date(9999, 12, 31),
        moment=dt.datetime(1970, 1, 1, tzinfo=UTC),
        clock=dt.time(0, 0),
        span=dt.timedelta(0),
        blob=b"",
        data=[1, "two", {"three": 3}],
    )
    Every.objects.using(alias).create(char="nulls", integer=1)


def populate_graph(alias: str) -> None:
    """Two teams whose captains are their members (a cycle), mentors, tags."""
    db = alias
    red = Team.objects.using(db).create(name="red")
    blue = Team.objects.using(db).create(name="blue")
    ann = Person.objects.using(db).create(name="ann", team=red)
    bob = Person.objects.using(db).create(name="bob", team=blue, mentor=ann)
    Person.objects.using(db).create(name="cy", team=red, mentor=bob)
    red.captain = ann
    red.save(using=db)
    blue.captain = bob
    blue.save(using=db)
    tags = [Tag.objects.using(db).create(label=f"t{i}") for i in range(3)]
    ann.tags.add(*tags)
    bob.tags.add(tags[0])
    Stamped.objects.using(db).create(name="old")
    Stamped.objects.using(db).filter(name="old").update(
        created=dt.datetime(2001, 1, 1, tzinfo=UTC), updated=dt.datetime(2002, 2, 2, tzinfo=UTC)
    )
    for i in range(5):
        Item.objects.using(db).create(code=f"c{i}", qty=i)


def rows(alias: str, model: type[models.Model]) -> list[tuple[Any, ...]]:
    """Every stored value of ``model`` as Django reads it, sorted by primary key.

    Sorted here, not by the database: MariaDB's UUID type orders differently.
    """
    names = [f.attname for f in model._meta.concrete_fields]
    found = [
        tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
        for row in model._base_manager.using(alias).values_list(*names)
    ]
    return sorted(found, key=lambda row: (str(type(row[0])), row[0]))


def through_rows(alias: str) -> list[tuple[Any, ...]]:
    through = Person.tags.through
    return list(
        through.objects.using(alias).order_by("pk").values_list("id", "person_id", "tag_id")
    )


def everything(alias: str) -> dict[str, list[tuple[Any, ...]]]:
    found = {m.__name__: rows(alias, m) for m in (Every, Stamped, Team, Tag, Person, Item)}
    found["Person_tags"] = through_rows(alias)
    return found
