"""Portable dump → load round trips on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.db import connections

from django_rclone_celery.portable import dump_portable, load_portable, load_portable_stream
from tests.portable_app import data
from tests.portable_app.models import Every, Item, Person, Stamped, Tag, Team

ALIASES = ["default", "pg", "maria"]
pytestmark = pytest.mark.django_db(transaction=True, databases=ALIASES)


def _clear(alias: str) -> None:
    Person.tags.through.objects.using(alias).all().delete()
    Team.objects.using(alias).update(captain=None)
    for model in (Person, Team, Tag, Every, Stamped, Item):
        model.objects.using(alias).all().delete()


@pytest.mark.parametrize("alias", ALIASES)
def test_every_field_type_round_trips_exactly(alias: str, tmp_path: Path) -> None:
    data.populate_every(alias)
    data.populate_graph(alias)
    before = data.everything(alias)

    dumped = dump_portable(["portable_app"], using=alias, directory=tmp_path)
    _clear(alias)
    assert Every.objects.using(alias).count() == 0
    loaded = load_portable(["portable_app"], using=alias, directory=tmp_path)

    assert data.everything(alias) == before
    assert dumped.rows == loaded.rows == sum(len(v) for v in before.values())
    # Decimals are written as their exact digits, never through a float.
    lines = (tmp_path / "portable_app_every.jsonl").read_text("utf-8").split("\n")[:-1]
    header = json.loads(lines[0])
    assert header["types"]["price"] == "decimal"
    assert json.loads(lines[2])[header["fields"].index("price")] == "0.1000000000"
    assert json.loads(lines[-1]) == {"end": "portable_app_every"}
    # Field types the format does not know travel as their database text.
    assert header["types"]["label"] == "text"
    assert json.loads(lines[1])[header["fields"].index("label")] == "a label"
    assert json.loads(lines[1])[header["fields"].index("zone")] == "Europe/Paris"


@pytest.mark.parametrize("alias", ALIASES)
def test_stream_round_trip_through_stdout(alias: str) -> None:
    data.populate_every(alias)
    data.populate_graph(alias)
    before = data.everything(alias)
    out, err = data.run_command("dumpdb", "portable_app", "-s", "--database", alias, "-v", "2")
    # The data owns stdout; the per-table report went to stderr.
    assert "portable_app_person: 3 rows" in err
    assert out.startswith('{"portable":1,')
    _clear(alias)
    lines = out.encode("utf-8").split(b"\n")
    load_portable_stream(lines, app_labels=["portable_app"], using=alias)
    assert data.everything(alias) == before


@pytest.mark.parametrize("alias", ALIASES)
def test_a_new_row_gets_a_fresh_key_after_a_load(alias: str, tmp_path: Path) -> None:
    data.populate_graph(alias)
    for i in range(5, 40):
        Item.objects.using(alias).create(code=f"c{i}", qty=i)
    dump_portable(["portable_app"], using=alias, directory=tmp_path)
    highest = max(Item.objects.using(alias).values_list("pk", flat=True))
    # Empty the table, and on PostgreSQL rewind its sequence, so only the
    # loaded keys can tell the database what is taken.
    Item.objects.using(alias).all().delete()
    if connections[alias].vendor == "postgresql":
        with connections[alias].cursor() as cursor:
            cursor.execute(
                "SELECT setval(pg_get_serial_sequence('portable_app_item', 'id'), 1, false)"
            )
    load_portable(["portable_app"], using=alias, directory=tmp_path)
    fresh = Item.objects.using(alias).create(code="new", qty=0)
    assert fresh.pk > highest
    team = Team.objects.using(alias).create(name="green")
    assert team.pk > max(Team.objects.using(alias).exclude(pk=team.pk).values_list("pk", flat=True))


@pytest.mark.parametrize("alias", ALIASES)
def test_auto_now_values_are_kept_not_reset(alias: str, tmp_path: Path) -> None:
    data.populate_graph(alias)
    before = data.rows(alias, Stamped)
    dump_portable(["portable_app"], using=alias, directory=tmp_path)
    load_portable(["portable_app"], using=alias, directory=tmp_path)
    assert data.rows(alias, Stamped) == before
    assert before[0][2].year == 2001


@pytest.mark.parametrize(
    ("source", "target"), [("default", "pg"), ("pg", "maria"), ("maria", "default")]
)
def test_data_moves_between_engines(source: str, target: str, tmp_path: Path) -> None:
    data.populate_graph(source)
    Every.objects.using(source).create(char="x", integer=1, price=data.big_decimal("default"))
    before = data.everything(source)
    dump_portable(["portable_app"], using=source, directory=tmp_path)
    load_portable(["portable_app"], using=target, directory=tmp_path)
    assert data.everything(target) == before
