"""Loading against today's models, and what happens when a load goes wrong."""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections, models
from django.utils import timezone

from django_rclone_celery.exceptions import DjangoRcloneCeleryError, RestoreError
from django_rclone_celery.portable import (
    PortableFormatError,
    PortableLoadError,
    dump_portable,
    load_portable,
)
from tests.portable_app import data
from tests.portable_app.models import Every, Item, Person, Team
from tests.portable_versions import ArticleV1, ArticleV2, ArticleV2Strict

ALIASES = ["default", "pg", "maria"]
pytestmark = pytest.mark.django_db(transaction=True, databases=ALIASES)


def _edit_header(path: Path, **changes: Any) -> None:
    lines = path.read_bytes().split(b"\n")
    header = json.loads(lines[0])
    header.update(changes)
    lines[0] = json.dumps(header).encode()
    path.write_bytes(b"\n".join(lines))


def _append_records(path: Path, *records: list[Any]) -> None:
    lines = path.read_bytes().split(b"\n")
    end = lines[-2]  # the file ends with the end line and a newline
    body = lines[:-2] + [json.dumps(r).encode() for r in records] + [end, b""]
    path.write_bytes(b"\n".join(body))


@pytest.fixture
def article_table(request: pytest.FixtureRequest) -> Iterator[str]:
    """The v1 article table on the test's alias; dropped afterwards, whatever model made it."""
    alias: str = request.node.callspec.params["alias"]
    connection = connections[alias]
    with connection.schema_editor() as editor:
        editor.create_model(ArticleV1)
    yield alias
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {connection.ops.quote_name('portable_article')}")


def _recreate(alias: str, old: type[models.Model], new: type[models.Model]) -> None:
    """Today's schema: the migration that turned v1 into v2, done bluntly."""
    with connections[alias].schema_editor() as editor:
        editor.delete_model(old)
        editor.create_model(new)


@pytest.mark.parametrize("alias", ALIASES)
def test_v1_data_loads_into_v2_model(alias: str, article_table: str, tmp_path: Path) -> None:
    for i in range(3):
        ArticleV1.objects.using(alias).create(title=f"title {i}", body=f"body {i}", legacy="x")
    dump_portable(models=[ArticleV1], using=alias, directory=tmp_path)
    _recreate(alias, ArticleV1, ArticleV2)
    # The rename is told to the load by hand, in the file's header.
    _edit_header(tmp_path / "portable_article.jsonl", default={"headline": ["reference", "title"]})
    started = timezone.now()

    result = load_portable(models=[ArticleV2], using=alias, directory=tmp_path)

    got = list(ArticleV2.objects.using(alias).order_by("pk"))
    assert [(a.pk, a.headline, a.body, a.rating) for a in got] == [
        (1, "title 0", "body 0", 3),
        (2, "title 1", "body 1", 3),
        (3, "title 2", "body 2", 3),
    ]
    assert all(a.created >= started.replace(microsecond=0) for a in got)
    (table,) = result.tables
    assert table.ignored_fields == ["title", "legacy"]
    assert table.filled_fields == {
        "headline": "reference to 'title'",
        "rating": "model default",
        "created": "now (auto_now_add)",
    }


@pytest.mark.parametrize("alias", ALIASES)
def test_overrides_of_every_kind(alias: str, article_table: str, tmp_path: Path) -> None:
    ArticleV1.objects.using(alias).create(title="t", body="b", legacy="x")
    dump_portable(models=[ArticleV1], using=alias, directory=tmp_path)
    _recreate(alias, ArticleV1, ArticleV2)
    default = {
        "headline": ["value", "fixed"],
        "rating": ["value", "9"],  # converted by the field
        "created": ["datetime", "2020-05-06 07:08:09"],
    }
    _edit_header(tmp_path / "portable_article.jsonl", default=default)
    load_portable(models=[ArticleV2], using=alias, directory=tmp_path)
    article = ArticleV2.objects.using(alias).get()
    assert (article.headline, article.rating) == ("fixed", 9)
    assert article.created == dt.datetime(2020, 5, 6, 7, 8, 9, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize("alias", ALIASES)
def test_missing_required_field_fails_and_changes_nothing(
    alias: str, article_table: str, tmp_path: Path
) -> None:
    ArticleV1.objects.using(alias).create(title="t", body="b", legacy="x")
    dump_portable(models=[ArticleV1], using=alias, directory=tmp_path)
    _recreate(alias, ArticleV1, ArticleV2Strict)
    ArticleV2Strict.objects.using(alias).create(headline="kept", body="kept", owner="me")
    _edit_header(tmp_path / "portable_article.jsonl", default={"headline": ["reference", "title"]})

    with pytest.raises(PortableLoadError) as caught:
        load_portable(models=[ArticleV2Strict], using=alias, directory=tmp_path)

    message = str(caught.value)
    assert "portable_article" in message
    assert "field 'owner' is required" in message
    assert "rolled back" in message
    assert list(ArticleV2Strict.objects.using(alias).values_list("headline", "owner")) == [
        ("kept", "me")
    ]


@pytest.mark.parametrize("alias", ALIASES)
def test_remain_keeps_rows_and_default_empties(alias: str, tmp_path: Path) -> None:
    for i in range(3):
        Item.objects.using(alias).create(code=f"c{i}", qty=i)
    dump_portable(["portable_app"], using=alias, directory=tmp_path)
    Item.objects.using(alias).all().delete()
    Item.objects.using(alias).create(code="local", qty=99)

    load_portable(["portable_app"], using=alias, directory=tmp_path, remain=True)
    assert sorted(Item.objects.using(alias).values_list("code", flat=True)) == [
        "c0",
        "c1",
        "c2",
        "local",
    ]

    load_portable(["portable_app"], using=alias, directory=tmp_path)
    assert sorted(Item.objects.using(alias).values_list("code", flat=True)) == ["c0", "c1", "c2"]


@pytest.mark.parametrize("alias", ALIASES)
def test_every_error_is_reported_then_rolled_back(alias: str, tmp_path: Path) -> None:
    data.populate_graph(alias)
    dump_portable(["portable_app"], using=alias, directory=tmp_path)
    path = tmp_path / "portable_app_item.jsonl"
    # Line 7: a duplicate unique code; line 8: not a number; line 9: a short record.
    _append_records(path, [100, "c0", 1], [101, "ok", "many"], [102])
    before = data.everything(alias)
    Item.objects.using(alias).create(code="local", qty=1)
    before["Item"] = data.rows(alias, Item)
    seen = []

    with pytest.raises(PortableLoadError) as caught:
        load_portable(["portable_app"], using=alias, directory=tmp_path, on_error=seen.append)

    assert [(e.table, e.line) for e in seen] == [
        ("portable_app_item", 8),
        ("portable_app_item", 9),
        ("portable_app_item", 7),
    ]
    assert caught.value.total == 3
    assert data.everything(alias) == before


@pytest.mark.parametrize("alias", ALIASES)
def test_errorquit_stops_at_the_first_error_and_rolls_back(alias: str, tmp_path: Path) -> None:
    data.populate_graph(alias)
    dump_portable(["portable_app"], using=alias, directory=tmp_path)
    _append_records(tmp_path / "portable_app_item.jsonl", [101, "ok", "many"], [102])
    Item.objects.using(alias).create(code="local", qty=1)
    before = data.everything(alias)
    err = io.StringIO()

    with pytest.raises(CommandError, match="1 error; the load was rolled back"):
        call_command(
            "loaddb", "portable_app", "-d", str(tmp_path), "-e", "--database", alias, stderr=err
        )

    assert err.getvalue().count("error:") == 1
    assert "portable_app_item, line 7" in err.getvalue()
    assert data.everything(alias) == before


@pytest.mark.parametrize("alias", ALIASES)
def test_a_dangling_foreign_key_rolls_back(alias: str, tmp_path: Path) -> None:
    data.populate_graph(alias)
    dump_portable(["portable_app"], using=alias, directory=tmp_path)
    team = Person._meta.get_field("team").column
    path = tmp_path / "portable_app_person.jsonl"
    fields = json.loads(path.read_bytes().split(b"\n")[0])["fields"]
    record = {"id": 500, "name": "ghost", team: 999, "mentor_id": None}
    _append_records(path, [record[f] for f in fields])
    before = data.everything(alias)

    with pytest.raises(PortableLoadError) as caught:
        load_portable(["portable_app"], using=alias, directory=tmp_path)

    assert "999" in str(caught.value)
    assert data.everything(alias) == before


@pytest.mark.parametrize("alias", ALIASES)
def test_python_code_in_a_file_is_only_data(alias: str, tmp_path: Path) -> None:
    marker = Path("/tmp/pwned-by-portable")
    marker.unlink(missing_ok=True)
    data.populate_every(alias)
    dump_portable(["portable_app"], using=alias, directory=tmp_path)
    path = tmp_path / "portable_app_every.jsonl"
    assert data.CODE in path.read_text("utf-8").replace('\\"', '"')
    load_portable(["portable_app"], using=alias, directory=tmp_path)
    assert Every.objects.using(alias).filter(char=data.CODE).count() == 1
    assert not marker.exists()

    # A line that is Python, not JSON, is refused as malformed, not run.
    lines = path.read_bytes().split(b"\n")
    lines.insert(1, f"[{data.CODE}]".encode())
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(PortableFormatError, match="line 2: not a JSON line"):
        load_portable(["portable_app"], using=alias, directory=tmp_path)
    assert not marker.exists()
    assert Every.objects.using(alias).filter(char=data.CODE).count() == 1


@pytest.mark.parametrize("alias", ["default"])
def test_a_missing_file_is_skipped_with_a_note(alias: str, tmp_path: Path) -> None:
    data.populate_graph(alias)
    dump_portable(["portable_app"], using=alias, directory=tmp_path)
    (tmp_path / "portable_app_tag.jsonl").unlink()
    tags = data.rows(alias, Person.tags.field.related_model)
    out = io.StringIO()
    call_command("loaddb", "portable_app", "-d", str(tmp_path), stdout=out)
    assert f"portable_app_tag: skipped (no file {tmp_path / 'portable_app_tag.jsonl'})" in (
        out.getvalue()
    )
    assert data.rows(alias, Person.tags.field.related_model) == tags  # untouched


@pytest.mark.parametrize("alias", ["default"])
def test_a_cut_short_file_is_refused(alias: str, tmp_path: Path) -> None:
    data.populate_graph(alias)
    dump_portable(["portable_app"], using=alias, directory=tmp_path)
    path = tmp_path / "portable_app_item.jsonl"
    path.write_bytes(b"\n".join(path.read_bytes().split(b"\n")[:-2]) + b"\n")
    before = data.everything(alias)
    with pytest.raises(PortableFormatError, match="no end line"):
        load_portable(["portable_app"], using=alias, directory=tmp_path)
    assert data.everything(alias) == before


@pytest.mark.parametrize("alias", ["default"])
def test_commands_report_tables_at_verbosity_two(alias: str, tmp_path: Path) -> None:
    data.populate_graph(alias)
    target = tmp_path / "new" / "dir"
    text, _ = data.run_command("dumpdb", "portable_app", "-d", str(target), "-v", "2")
    for line in ("portable_app_team: 2 rows", "portable_app_person_tags: 4 rows", "5 rows"):
        assert line in text
    assert sorted(p.name for p in target.iterdir()) == [
        "portable_app_every.jsonl",
        "portable_app_item.jsonl",
        "portable_app_person.jsonl",
        "portable_app_person_tags.jsonl",
        "portable_app_stamped.jsonl",
        "portable_app_tag.jsonl",
        "portable_app_team.jsonl",
    ]
    _edit_header(target / "portable_app_item.jsonl", fields=["id", "code", "qty_old"])
    _edit_header(target / "portable_app_item.jsonl", default={"qty": ["reference", "qty_old"]})
    out = io.StringIO()
    call_command("loaddb", "portable_app", "-d", str(target), "-v", "2", stdout=out)
    assert "ignored fields not in the model: qty_old" in out.getvalue()
    assert "qty: reference to 'qty_old'" in out.getvalue()
    assert "Loaded 18 rows into 7 tables" in out.getvalue()


def test_bad_app_label_is_a_clear_command_error(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="no installed app with label 'nope'"):
        call_command("dumpdb", "nope", "-d", str(tmp_path))
    with pytest.raises(CommandError, match="no installed app with label 'nope'"):
        call_command("loaddb", "nope", "-d", str(tmp_path))


def test_load_errors_belong_to_the_error_tree() -> None:
    assert issubclass(PortableLoadError, RestoreError)
    assert issubclass(PortableFormatError, DjangoRcloneCeleryError)
    assert Team._meta.db_table == "portable_app_team"


@pytest.mark.parametrize("alias", ALIASES)
def test_emptying_a_table_others_point_into_rolls_back(alias: str, tmp_path: Path) -> None:
    data.populate_graph(alias)
    dump_portable(models=[Team], using=alias, directory=tmp_path)
    path = tmp_path / "portable_app_team.jsonl"
    lines = path.read_bytes().split(b"\n")
    path.write_bytes(b"\n".join(line for line in lines if b'"blue"' not in line))
    before = data.everything(alias)

    # Only Team is loaded; Person rows still point at the team the file lost.
    with pytest.raises(PortableLoadError, match="portable_app_person"):
        load_portable(models=[Team], using=alias, directory=tmp_path)

    assert data.everything(alias) == before


def test_nul_text_into_postgresql_is_a_reported_row_error(tmp_path: Path) -> None:
    data.populate_every("default", nul=True)
    dump_portable(["portable_app"], using="default", directory=tmp_path)
    seen = []
    with pytest.raises(PortableLoadError):
        load_portable(["portable_app"], using="pg", directory=tmp_path, on_error=seen.append)
    assert [(e.table, e.line) for e in seen] == [("portable_app_every", 2)]
    assert "NUL" in seen[0].message
    assert Every.objects.using("pg").count() == 0


@pytest.mark.parametrize("alias", ["default"])
def test_a_table_missing_from_the_database_is_a_clear_error(alias: str, tmp_path: Path) -> None:
    # The v1 article table is never created in this test.
    header = {"portable": 1, "table": "portable_article", "fields": ["id"], "default": {}}
    (tmp_path / "portable_article.jsonl").write_text(
        json.dumps(header) + "\n[1]\n" + json.dumps({"end": "portable_article"}) + "\n"
    )
    with pytest.raises(PortableLoadError, match="does not exist in this database"):
        load_portable(models=[ArticleV1], using=alias, directory=tmp_path)


def _insert_elsewhere(alias: str, sql: str) -> None:
    """Run ``sql`` on a connection of its own, committed at once."""
    settings = connections[alias].settings_dict
    if connections[alias].vendor == "postgresql":
        import psycopg

        with psycopg.connect(
            host=settings["HOST"], user=settings["USER"], dbname=settings["NAME"], autocommit=True
        ) as other:
            other.execute(sql)
    else:
        import pymysql

        other = pymysql.connect(
            host=settings["HOST"], user=settings["USER"], database=settings["NAME"], autocommit=True
        )
        with other.cursor() as cursor:
            cursor.execute(sql)
        other.close()


@pytest.mark.parametrize("alias", ["pg", "maria"])
def test_a_dump_is_one_snapshot(alias: str) -> None:
    from django_rclone_celery.portable import iter_dump

    data.populate_graph(alias)
    stream = iter_dump(models=[Item, Team], using=alias)
    first = next(stream)  # the dump has started: Item's header is out
    _insert_elsewhere(alias, "INSERT INTO portable_app_team (name) VALUES ('late')")
    text = (first + b"".join(stream)).decode()
    assert '"red"' in text
    assert "late" not in text
    assert Team.objects.using(alias).filter(name="late").exists()
