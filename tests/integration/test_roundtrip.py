"""Round trips through a local-directory remote: back up, damage, restore, compare rows.

Real databases (SQLite, PostgreSQL, PostGIS, MariaDB), the real rclone binary,
every compression mode, django-rclone's manifest-less backups, and the signals
each operation sends.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

from django_rclone_celery import process, signals
from django_rclone_celery.operations import backup_database, list_backups, restore_database
from django_rclone_celery.process import Command
from tests.helpers.databases import (
    APP_TABLES,
    damage,
    db_params,
    populate,
    snapshot,
    staging_leftovers,
)
from tests.helpers.legacy import legacy_dump_argv
from tests.helpers.remotes import remote_files

ALL = ("default", "pg", "gis", "maria")
GEO_TABLE = "geo_place"


def prepare(alias: str) -> tuple[str, ...]:
    """Populate ``alias``; on PostGIS add a table with a geometry column. Returns its tables."""
    populate(alias)
    if alias != "gis":
        return APP_TABLES
    with connections[alias].cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {GEO_TABLE}")
        cursor.execute(
            f"CREATE TABLE {GEO_TABLE} (id serial PRIMARY KEY, name text, "
            "geom geometry(Point, 4326), area geometry(Polygon, 4326))"
        )
        cursor.execute(
            f"INSERT INTO {GEO_TABLE} (name, geom, area) VALUES "
            "('zurich', ST_SetSRID(ST_MakePoint(8.5417, 47.3769), 4326), "
            " ST_GeomFromText('POLYGON((0 0, 1 0, 1 1, 0 1, 0 0))', 4326)), "
            "('nowhere', NULL, NULL)"
        )
    return (*APP_TABLES, GEO_TABLE)


def damage_geo(alias: str) -> None:
    if alias == "gis":
        with connections[alias].cursor() as cursor:
            cursor.execute(f"UPDATE {GEO_TABLE} SET geom = ST_SetSRID(ST_MakePoint(0, 0), 4326)")


@pytest.mark.parametrize("compression", ["zstd", "native", "none"])
@pytest.mark.parametrize("alias", db_params(*ALL))
def test_round_trip_local_remote(
    alias: str, compression: str, remote_dir: Path, drc_config: Any
) -> None:
    drc_config(COMPRESSION=compression)
    tables = prepare(alias)
    before = snapshot(alias, tables)
    assert before["testapp_book"], "test data missing"

    result = backup_database(alias)
    damage(alias)
    damage_geo(alias)
    assert snapshot(alias, tables) != before

    restored = restore_database(alias)

    assert snapshot(alias, tables) == before
    assert staging_leftovers(alias) == []
    assert restored.name == result.name
    assert restored.compression == compression
    assert restored.verified
    assert result.name.endswith(".zst") == (compression == "zstd")
    assert remote_files(remote_dir) == [f"db/{result.name}", f"db/{result.name}.manifest.json"]
    manifest = json.loads((remote_dir / "db" / f"{result.name}.manifest.json").read_text())
    assert manifest["compression"] == compression
    assert manifest["database"] == alias
    assert manifest["size"] == (remote_dir / "db" / result.name).stat().st_size == result.size


@pytest.mark.django_db(transaction=True, databases=["default", "gis"])
def test_postgis_geometry_survives(remote_dir: Path) -> None:
    prepare("gis")
    backup_database("gis")
    with connections["gis"].cursor() as cursor:
        cursor.execute(f"DELETE FROM {GEO_TABLE}")
    restore_database("gis")
    with connections["gis"].cursor() as cursor:
        cursor.execute(
            f"SELECT name, ST_AsText(geom), ST_Area(area), ST_SRID(geom) FROM {GEO_TABLE} "
            "ORDER BY id"
        )
        rows = cursor.fetchall()
    assert rows == [("zurich", "POINT(8.5417 47.3769)", 1.0, 4326), ("nowhere", None, None, None)]


@pytest.mark.django_db(transaction=True, databases=["default", "pg"])
def test_native_postgres_backup_is_a_plain_custom_dump(
    remote_dir: Path, drc_config: Any, tmp_path: Path
) -> None:
    """COMPRESSION="native" stores exactly what ``pg_dump -Fc`` writes: pg_restore reads it."""
    drc_config(COMPRESSION="native")
    populate("pg")
    result = backup_database("pg")
    stored = remote_dir / "db" / result.name
    assert stored.read_bytes()[:5] == b"PGDMP"
    listing = process.run(Command(argv=("pg_restore", "--list", str(stored)))).stdout.decode()
    assert "TABLE public testapp_book" in listing
    assert "TABLE DATA public testapp_author" in listing


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        pytest.param(*p.values, "default-2024-01-15-120000.sqlite3", marks=p.marks, id="sqlite")
        for p in db_params("default")
    ]
    + [
        pytest.param(*p.values, "pg-2024-01-15-120000.dump", marks=p.marks, id="pg")
        for p in db_params("pg")
    ]
    + [
        pytest.param(*p.values, "maria-2024-01-15-120000.sql", marks=p.marks, id="maria")
        for p in db_params("maria")
    ],
)
def test_django_rclone_backup_without_manifest_restores(
    alias: str, name: str, remote_dir: Path, rclone_bin: str
) -> None:
    populate(alias)
    before = snapshot(alias)
    target = str(remote_dir / "db" / name)
    process.pipe(Command(argv=legacy_dump_argv(alias)), Command(argv=(rclone_bin, "rcat", target)))
    damage(alias)

    [listed] = list_backups(alias)
    assert (listed.name, listed.has_manifest) == (name, False)
    restored = restore_database(alias)

    assert restored.name == name
    assert not restored.verified  # no manifest, so no checksum to verify against
    assert snapshot(alias) == before
    assert staging_leftovers(alias) == []


@pytest.mark.django_db(transaction=True, databases=["default"])
def test_restore_of_a_chosen_older_backup(remote_dir: Path) -> None:
    populate("default", authors=1)
    first = snapshot("default")
    older = backup_database("default")
    populate("default", authors=2)
    newer = backup_database("default")
    assert [b.name for b in list_backups("default")] == [newer.name, older.name]

    restore_database("default", input_path=older.name)

    assert snapshot("default") == first


@pytest.mark.django_db(transaction=True, databases=["default"])
def test_round_trip_under_a_non_utc_local_timezone(
    remote_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rclone reports local-time stamps with an offset; listing and sweeping must cope."""
    monkeypatch.setenv("TZ", "Europe/Zurich")
    populate("default")
    before = snapshot("default")
    first = backup_database("default")
    second = backup_database("default")  # its prepare stage lists and sweeps the first
    damage("default")
    assert [b.name for b in list_backups("default")] == [second.name, first.name]
    restore_database("default")
    assert snapshot("default") == before


# Signals -----------------------------------------------------------------
class Recorder:
    """Connects to signals and records (signal name, kwargs) in the order they fire."""

    def __init__(self, *names: str) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._receivers = []
        for name in names:

            def receiver(sender: Any, _name: str = name, **kwargs: Any) -> None:
                kwargs.pop("signal")
                self.events.append((_name, {"sender": sender, **kwargs}))

            getattr(signals, name).connect(receiver, weak=False)
            self._receivers.append((name, receiver))

    def disconnect(self) -> None:
        for name, receiver in self._receivers:
            getattr(signals, name).disconnect(receiver)

    def names(self) -> list[str]:
        return [name for name, _ in self.events]


@pytest.fixture
def recorder() -> Any:
    made: list[Recorder] = []

    def make(*names: str) -> Recorder:
        rec = Recorder(*names)
        made.append(rec)
        return rec

    yield make
    for rec in made:
        rec.disconnect()


STAGE_SIGNALS = ("pre_stage", "post_stage", "stage_failed")


@pytest.mark.django_db(transaction=True, databases=["default"])
def test_backup_and_restore_signals_fire_with_documented_kwargs(
    remote_dir: Path, recorder: Any
) -> None:
    populate("default")
    rec = recorder(
        "pre_db_backup", "post_db_backup", "pre_db_restore", "post_db_restore", *STAGE_SIGNALS
    )

    backup = backup_database("default", run_id="run-b")
    restored = restore_database("default", run_id="run-r")

    assert rec.names() == [
        "pre_db_backup",
        *["pre_stage", "post_stage"] * 3,  # prepare, dump, publish
        "post_db_backup",
        "pre_stage",
        "post_stage",  # select
        "pre_db_restore",
        *["pre_stage", "post_stage"] * 4,  # prepare, restore, check, swap
        "post_db_restore",
    ]
    assert rec.events[0][1] == {"sender": "db_backup", "database": "default", "run_id": "run-b"}
    post_backup = next(kw for n, kw in rec.events if n == "post_db_backup")
    assert post_backup == {
        "sender": "db_backup",
        "database": "default",
        "path": backup.path,
        "size": backup.size,
        "run_id": "run-b",
    }
    for name in ("pre_db_restore", "post_db_restore"):
        kwargs = next(kw for n, kw in rec.events if n == name)
        assert kwargs == {
            "sender": "db_restore",
            "database": "default",
            "from_database": "default",
            "path": restored.path,
            "run_id": "run-r",
        }
    stages = [(n, kw["operation"], kw["stage"]) for n, kw in rec.events if n in STAGE_SIGNALS]
    assert [s for n, _, s in stages if n == "pre_stage"] == [
        "prepare",
        "dump",
        "publish",
        "select",
        "prepare",
        "restore",
        "check",
        "swap",
    ]
    for name, kwargs in rec.events:
        if name in STAGE_SIGNALS:
            assert set(kwargs) == {"sender", "operation", "stage", "database", "run_id"}
            assert kwargs["sender"] == kwargs["operation"]
            assert kwargs["database"] == "default"
            assert (
                kwargs["run_id"]
                == {"db_backup": "run-b", "db_restore": "run-r"}[kwargs["operation"]]
            )


@pytest.mark.parametrize("alias", db_params("default", "pg", "maria"))
def test_manifest_describes_the_backup(alias: str, remote_dir: Path) -> None:
    import hashlib

    from django_rclone_celery.connectors import get_connector

    populate(alias, authors=3, books=2)
    result = backup_database(alias)
    stored = (remote_dir / "db" / result.name).read_bytes()
    manifest = json.loads((remote_dir / "db" / (result.name + ".manifest.json")).read_bytes())
    connector = get_connector(alias)
    assert manifest["database"] == alias
    assert manifest["engine"] == connections[alias].settings_dict["ENGINE"]
    assert manifest["vendor"] == connector.vendor
    assert manifest["connector"] == connector.dotted_path()
    assert (manifest["compression"], manifest["format"]) == ("zstd", "native")
    assert manifest["size"] == len(stored) == result.size
    assert manifest["sha256"] == hashlib.sha256(stored).hexdigest() == result.sha256
    assert connector.dump_tool in manifest["tool_versions"]
    counts = manifest["row_counts"]
    if alias == "default":  # exact on SQLite; the server engines keep estimates
        assert counts["testapp_author"] == 3
        assert counts["testapp_book"] == 6
    else:
        assert {"testapp_author", "testapp_book"} <= {k.split(".")[-1] for k in counts}
