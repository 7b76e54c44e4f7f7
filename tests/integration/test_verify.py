"""Backup verification on real servers: good backups pass, every kind of damage fails.

Real PostgreSQL, MariaDB and SQLite and the real rclone binary on a
local-directory remote (the ``db_verify`` task on a worker is in
``tests/system/test_verify_tasks.py``). Damaged backups are made by editing
the stored object (and, where the point is that the checksum alone would not
notice, its manifest too).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zstandard
from django.core.management import call_command, load_command_class
from django.core.management.base import CommandError
from django.db import connections

from django_rclone_celery import signals
from django_rclone_celery.connectors import get_connector
from django_rclone_celery.exceptions import BackupNotFound, InvalidBackup
from django_rclone_celery.operations import backup_database, verify_backup
from tests.helpers.databases import (
    damage,
    db_params,
    drops_finished,
    make_big_table,
    populate,
    snapshot,
    staging_leftovers,
)

STRUCTURE = {"default": "end marker", "pg": "pg_restore", "maria": "end marker"}


# helpers ------------------------------------------------------------------
def stored(remote_dir: Path, name: str) -> Path:
    return remote_dir / "db" / name


def manifest_of(remote_dir: Path, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(stored(remote_dir, name + ".manifest.json").read_text())
    return data


def write_manifest(remote_dir: Path, name: str, manifest: dict[str, Any]) -> None:
    stored(remote_dir, name + ".manifest.json").write_text(json.dumps(manifest))


def replace_object(remote_dir: Path, name: str, data: bytes) -> None:
    """Store ``data`` as the backup, with a manifest that agrees: a backup that was
    already bad when it was uploaded, which no checksum can catch."""
    stored(remote_dir, name).write_bytes(data)
    manifest = manifest_of(remote_dir, name)
    manifest.update(size=len(data), sha256=hashlib.sha256(data).hexdigest())
    write_manifest(remote_dir, name, manifest)


def decoded(remote_dir: Path, name: str) -> bytes:
    return (
        zstandard.ZstdDecompressor()
        .decompressobj()
        .decompress(stored(remote_dir, name).read_bytes())
    )


def zstd(data: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(data)


@pytest.fixture
def stages() -> Iterator[list[str]]:
    """The stages ``db_verify`` runs, in order (from its ``pre_stage`` signals)."""
    seen: list[str] = []

    def receiver(sender: Any, operation: str, stage: str, **kwargs: Any) -> None:
        if operation == "db_verify":
            seen.append(stage)

    signals.pre_stage.connect(receiver, weak=False)
    try:
        yield seen
    finally:
        signals.pre_stage.disconnect(receiver)


def databases_on_server(alias: str) -> list[str]:
    """The databases named after this test database (for SQLite: files beside it).

    Only those: other test runs share the servers and come and go meanwhile.
    """
    vendor = connections[alias].vendor
    live = str(connections[alias].settings_dict["NAME"])
    if vendor == "sqlite":
        path = Path(live)
        return sorted(n for n in os.listdir(path.parent) if n.startswith(path.name))
    drops_finished(alias)
    with connections[alias].cursor() as cursor:
        cursor.execute(
            "SELECT datname FROM pg_database" if vendor == "postgresql" else "SHOW DATABASES"
        )
        return sorted(row[0] for row in cursor.fetchall() if row[0].startswith(live))


def tables(alias: str) -> list[str]:
    with connections[alias].cursor() as cursor:
        return sorted(connections[alias].introspection.table_names(cursor))


def identity(alias: str) -> object:
    """What a swap would change: the live database's oid, or the SQLite file's inode."""
    settings_dict = connections[alias].settings_dict
    vendor = connections[alias].vendor
    if vendor == "sqlite":
        return os.stat(settings_dict["NAME"]).st_ino
    with connections[alias].cursor() as cursor:
        if vendor == "postgresql":
            cursor.execute(
                "SELECT oid FROM pg_database WHERE datname = %s", [settings_dict["NAME"]]
            )
        else:
            cursor.execute(
                "SELECT table_name, create_time FROM information_schema.tables "
                "WHERE table_schema = %s ORDER BY 1",
                [settings_dict["NAME"]],
            )
        return cursor.fetchall()


# good backups ---------------------------------------------------------------
@pytest.mark.parametrize("compression", ["zstd", "native"])
@pytest.mark.parametrize("alias", db_params("default", "pg", "maria"))
def test_a_good_backup_verifies(
    alias: str, compression: str, remote_dir: Path, drc_config: Any, stages: list[str]
) -> None:
    drc_config(COMPRESSION=compression)
    populate(alias)
    backup = backup_database(alias)
    before = snapshot(alias)

    result = verify_backup(alias)

    zstd_check = ["zstd"] if compression == "zstd" else []
    assert result.checks == ["size", "sha256", *zstd_check, STRUCTURE[alias]]
    assert result.notes == []
    assert (result.name, result.verified, result.restored) == (backup.name, True, False)
    assert result.size == stored(remote_dir, backup.name).stat().st_size == backup.size
    assert result.sha256 == backup.sha256 == manifest_of(remote_dir, backup.name)["sha256"]
    assert result.as_dict()["operation"] == "db_verify"
    assert stages == ["select", "verify"]
    assert snapshot(alias) == before
    assert staging_leftovers(alias) == []


@pytest.mark.parametrize("alias", db_params("pg"))
def test_a_portable_backup_verifies_and_its_row_counts_must_match(
    alias: str, remote_dir: Path
) -> None:
    populate(alias, authors=3, books=2)
    backup = backup_database(alias, format="portable")

    result = verify_backup(alias)
    assert result.checks == ["size", "sha256", "zstd", "portable"]
    assert result.format == "portable"

    # The manifest counts every row the dump wrote; the reader must find as many.
    manifest = manifest_of(remote_dir, backup.name)
    assert manifest["row_counts"]["testapp_book"] == 6
    manifest["row_counts"]["testapp_book"] = 7
    write_manifest(remote_dir, backup.name, manifest)
    with pytest.raises(InvalidBackup, match=r"row counts differ.*testapp_book: 6 \(manifest: 7\)"):
        verify_backup(alias)


@pytest.mark.parametrize("alias", db_params("default"))
def test_a_backup_without_manifest_verifies_with_a_note(alias: str, remote_dir: Path) -> None:
    populate(alias)
    backup = backup_database(alias)
    stored(remote_dir, backup.name + ".manifest.json").unlink()

    result = verify_backup(alias)

    assert result.verified is False
    assert result.checks == ["zstd", "end marker"]
    assert result.notes == [
        "no manifest (a django-rclone backup): its size and sha256 could not be checked"
    ]


@pytest.mark.parametrize("alias", db_params("default"))
def test_no_backup_is_backup_not_found(alias: str, remote_dir: Path) -> None:
    with pytest.raises(BackupNotFound, match="no backups of database 'default'"):
        verify_backup(alias)
    with pytest.raises(BackupNotFound, match="does not exist"):
        verify_backup(alias, input_path="default-2026-01-01-000000.sqlite3.zst")


# damaged backups ------------------------------------------------------------
@pytest.mark.parametrize(
    ("alias", "compression"),
    [
        pytest.param(
            "pg",
            "zstd",
            marks=pytest.mark.django_db(transaction=True, databases=["default", "pg"]),
            id="pg",
        ),
        pytest.param(
            "default",
            "none",
            marks=pytest.mark.django_db(transaction=True, databases=["default"]),
            id="sqlite-uncompressed",
        ),
    ],
)
def test_one_flipped_byte_fails_the_checksum(
    alias: str, compression: str, remote_dir: Path, drc_config: Any, stages: list[str]
) -> None:
    drc_config(COMPRESSION=compression)
    populate(alias)
    backup = backup_database(alias)
    path = stored(remote_dir, backup.name)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))

    with pytest.raises(InvalidBackup, match="its checksum does not match its manifest"):
        verify_backup(alias, restore=True)
    # Refused before any staged copy was made.
    assert stages == ["select", "verify"]
    assert staging_leftovers(alias) == []


@pytest.mark.parametrize("alias", db_params("pg"))
def test_a_truncated_zstd_object_fails_even_with_a_matching_manifest(
    alias: str, remote_dir: Path
) -> None:
    populate(alias)
    backup = backup_database(alias)
    whole = stored(remote_dir, backup.name).read_bytes()

    stored(remote_dir, backup.name).write_bytes(whole[: len(whole) - 50])
    with pytest.raises(InvalidBackup) as caught:
        verify_backup(alias)
    message = str(caught.value)
    assert "its size is" in message
    assert "checksum does not match" in message
    assert "truncated" in message

    # Uploaded truncated (the manifest agrees): the zstd frame still tells.
    replace_object(remote_dir, backup.name, whole[: len(whole) - 50])
    with pytest.raises(InvalidBackup, match="ends before the end of its frame") as caught:
        verify_backup(alias)
    assert "checksum" not in str(caught.value)


@pytest.mark.parametrize(
    ("alias", "content", "message"),
    [
        pytest.param(
            "pg",
            "garbage",
            "pg_restore cannot read it as a custom-format archive",
            marks=pytest.mark.django_db(transaction=True, databases=["default", "pg"]),
            id="pg-garbage",
        ),
        pytest.param(
            "pg",
            "half",
            "pg_restore cannot read it as a custom-format archive",
            marks=pytest.mark.django_db(transaction=True, databases=["default", "pg"]),
            id="pg-half-archive",
        ),
        pytest.param(
            "maria",
            "no-last-line",
            "does not end with mysqldump's '-- Dump completed' line",
            marks=pytest.mark.django_db(transaction=True, databases=["default", "maria"]),
            id="maria-cut",
        ),
        pytest.param(
            "default",
            "no-last-line",
            "does not end with sqlite3's final 'COMMIT;'",
            marks=pytest.mark.django_db(transaction=True, databases=["default"]),
            id="sqlite-cut",
        ),
    ],
)
def test_the_engine_check_fails_what_checksum_and_zstd_pass(
    alias: str, content: str, message: str, remote_dir: Path
) -> None:
    """Valid zstd and a manifest that matches: only the engine's own reader can tell."""
    populate(alias)
    if content == "half":
        # Data enough that half the archive keeps its whole table of contents.
        make_big_table(alias, "verify_big", 20_000)
    backup = backup_database(alias)
    dump = decoded(remote_dir, backup.name)
    if content == "garbage":
        bad = os.urandom(200_000)
    elif content == "half":
        # The table of contents survives: `pg_restore --list` would pass this.
        bad = dump[: len(dump) // 2]
    else:
        bad = dump.rstrip(b"\n").rsplit(b"\n", 1)[0] + b"\n"
    replace_object(remote_dir, backup.name, zstd(bad))

    with pytest.raises(InvalidBackup, match=message) as caught:
        verify_backup(alias)
    assert "checksum" not in str(caught.value)
    assert staging_leftovers(alias) == []


# the trial restore ----------------------------------------------------------
@pytest.mark.parametrize("alias", db_params("default", "pg", "maria"))
def test_restore_checks_a_staged_copy_and_never_touches_the_live_database(
    alias: str, remote_dir: Path, stages: list[str]
) -> None:
    populate(alias)
    backup = backup_database(alias)
    books_in_backup = len(snapshot(alias)["testapp_book"])
    damage(alias)  # the live data now differs from the backup: a swap would show
    before = snapshot(alias)
    assert len(before["testapp_book"]) != books_in_backup
    before_databases = databases_on_server(alias)
    before_tables = tables(alias)
    before_identity = identity(alias)
    connector = get_connector(alias)
    staged: list[int] = []

    def count_staged_rows(sender: Any, operation: str, stage: str, **kwargs: Any) -> None:
        if operation == "db_verify" and stage == "restore":
            with connector.cursor(connector.staging().target) as cursor:
                cursor.execute("SELECT count(*) FROM testapp_book")
                staged.append(cursor.fetchone()[0])

    signals.post_stage.connect(count_staged_rows, weak=False)
    try:
        result = verify_backup(alias, restore=True)
    finally:
        signals.post_stage.disconnect(count_staged_rows)

    assert result.restored
    assert result.checks[-1] == "restore"
    assert result.name == backup.name
    assert stages == ["select", "verify", "prepare", "restore", "check", "discard"]
    assert staged == [books_in_backup]  # the backup really was restored, beside the live one
    connections[alias].close()
    assert snapshot(alias) == before
    assert databases_on_server(alias) == before_databases
    assert tables(alias) == before_tables
    assert identity(alias) == before_identity
    assert staging_leftovers(alias) == []


@pytest.mark.parametrize("alias", db_params("pg"))
def test_restore_of_a_portable_backup_is_skipped_with_a_note(alias: str, remote_dir: Path) -> None:
    populate(alias)
    backup_database(alias, format="portable")
    result = verify_backup(alias, restore=True)
    assert result.restored is False
    assert "restore" not in result.checks
    assert result.notes == [
        "trial restore skipped: a portable backup loads through the models into a "
        "migrated database; use dbrestore"
    ]


# the command ----------------------------------------------------------------
@pytest.mark.parametrize("alias", db_params("default"))
def test_command_reports_and_exits_non_zero_on_a_corrupt_backup(
    alias: str, remote_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from io import StringIO

    populate(alias)
    backup = backup_database(alias)
    out = StringIO()
    call_command("verifybackup", "-d", alias, "--restore", stdout=out)
    assert f"Verified {backup.name}" in out.getvalue()
    assert "sha256, zstd, end marker, restore" in out.getvalue()
    out = StringIO()
    call_command("verifybackup", "-d", alias, "-i", backup.name, "--json", stdout=out)
    payload = json.loads(out.getvalue())
    assert (payload["status"], payload["name"], payload["verified"]) == (
        "succeeded",
        backup.name,
        True,
    )

    path = stored(remote_dir, backup.name)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(CommandError, match="failed verification: its size is"):
        call_command("verifybackup", "-d", alias, stdout=StringIO())
    # As manage.py runs it: exit status 1 and the reason on stderr.
    command = load_command_class("django_rclone_celery", "verifybackup")
    with pytest.raises(SystemExit) as exited:
        command.run_from_argv(["manage.py", "verifybackup", "-d", alias])
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert f"CommandError: '{backup.name}' failed verification" in err
    assert "Traceback" not in err


def test_db_verify_can_be_scheduled(drc_config: Any) -> None:
    from django_rclone_celery.schedules import beat_schedule, schedule_problems

    spec = {
        "task": "django_rclone_celery.db_verify",
        "crontab": "30 4 * * *",
        "kwargs": {"database": "default", "restore": True},
    }
    assert schedule_problems({"verify-nightly": spec}) == []
    typo = {"verify-nightly": {**spec, "task": "django_rclone_celery.db_verfy"}}
    assert [p.id for p in schedule_problems(typo)] == ["django_rclone_celery.E022"]
    drc_config(SCHEDULES={"verify-nightly": spec})
    [entry] = beat_schedule().values()
    assert (entry["task"], entry["kwargs"]) == (spec["task"], spec["kwargs"])


def test_no_trial_restore_where_the_restore_tool_writes_in_place() -> None:
    """MongoDB has no staged copy: a trial restore would write into the live database."""
    from django_rclone_celery.connectors.mongodb import MongoConnector
    from django_rclone_celery.connectors.postgresql import PostgresConnector
    from django_rclone_celery.floor.manifest import Manifest
    from django_rclone_celery.operations.verify import _why_no_trial

    def native(connector: Any) -> Manifest:
        return Manifest(
            database="x",
            engine=connector.engine,
            vendor=connector.vendor,
            connector=connector.dotted_path(),
            compression="zstd",
        )

    mongo = MongoConnector("x", {"ENGINE": "djongo", "NAME": "shop"})
    assert _why_no_trial(mongo, native(mongo)) == (
        "mongodb restores in place, which would change the live database"
    )
    postgres = PostgresConnector("x", {"ENGINE": "django.db.backends.postgresql", "NAME": "shop"})
    assert _why_no_trial(postgres, native(postgres)) == ""
