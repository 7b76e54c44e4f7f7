"""Restoring one alias's backups into another database (``--from-database``).

"Restore production's backup into staging": the backups of alias ``pg`` go
into alias ``gis`` (also PostgreSQL, with PostGIS). Real PostgreSQL, MariaDB
and SQLite databases, the real rclone binary on a local-directory remote, and
real Celery workers for the task; nothing is mocked.
"""

from __future__ import annotations

from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections

from django_rclone_celery import process, signals
from django_rclone_celery.exceptions import ConfigurationError, InvalidBackup
from django_rclone_celery.operations import backup_database, list_backups, restore_database
from django_rclone_celery.process import Command
from tests.helpers.databases import damage, populate, snapshot, staging_leftovers
from tests.helpers.legacy import legacy_dump_argv
from tests.helpers.prompts import Prompts

PG_AND_GIS = pytest.mark.django_db(transaction=True, databases=["default", "pg", "gis"])


def call(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def read(alias: str) -> dict[str, list[tuple[Any, ...]]]:
    """The rows of ``alias`` as a new session sees them (a restore may have swapped it)."""
    connections[alias].close()
    return snapshot(alias)


def staging_data(alias: str) -> dict[str, list[tuple[Any, ...]]]:
    """Rows for the target that differ from whatever ``populate`` gives the source."""
    populate(alias, authors=2, books=1)
    damage(alias)
    return snapshot(alias)


def postgis_version(alias: str) -> str:
    connections[alias].close()
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT postgis_lib_version()")
        return str(cursor.fetchone()[0])


@PG_AND_GIS
def test_dbrestore_from_database_puts_the_source_rows_into_the_target(remote_dir: Path) -> None:
    populate("pg")
    production = snapshot("pg")
    backup = backup_database("pg")
    staging = staging_data("gis")
    assert staging != production

    text = call("dbrestore", "-d", "gis", "--from-database", "pg", "--noinput")

    assert f"Restored gis from {backup.name} (a backup of 'pg')" in text
    assert read("gis") == production
    assert read("pg") == production  # the source is only read
    assert staging_leftovers("gis") == []
    # The target keeps what its own engine needs: a plain PostgreSQL dump
    # restored into PostGIS still has the extension.
    assert postgis_version("gis")
    assert [b.name for b in list_backups()] == [backup.name]  # nothing new was written


@PG_AND_GIS
def test_the_result_names_whose_backup_was_restored(remote_dir: Path) -> None:
    populate("pg")
    backup_database("pg")
    staging_data("gis")
    result = restore_database("gis", from_database="pg")
    assert (result.database, result.from_database) == ("gis", "pg")
    assert result.as_dict()["from_database"] == "pg"
    # Restoring an alias's own backup names the alias itself.
    own = restore_database("pg")
    assert (own.database, own.from_database) == ("pg", "pg")
    assert "a backup of" not in call("dbrestore", "-d", "pg", "--noinput")


@PG_AND_GIS
def test_the_restore_signals_name_the_source_alias(remote_dir: Path) -> None:
    populate("pg")
    backup_database("pg")
    staging_data("gis")
    seen: list[tuple[Any, str, str]] = []

    def record(sender: str, signal: Any, **kwargs: Any) -> None:
        seen.append((signal, kwargs["database"], kwargs["from_database"]))

    pre, post = signals.pre_db_restore, signals.post_db_restore
    pre.connect(record)
    post.connect(record)
    try:
        restore_database("gis", from_database="pg")
        restore_database("pg")
    finally:
        pre.disconnect(record)
        post.disconnect(record)
    assert seen == [(pre, "gis", "pg"), (post, "gis", "pg"), (pre, "pg", "pg"), (post, "pg", "pg")]


@PG_AND_GIS
def test_input_path_with_from_database_picks_that_exact_backup(remote_dir: Path) -> None:
    populate("pg", authors=1, books=1)
    older_rows = snapshot("pg")
    older = backup_database("pg")
    populate("pg", authors=2, books=2)
    newer = backup_database("pg")
    assert [b.name for b in list_backups("pg")] == [newer.name, older.name]
    staging_data("gis")

    text = call("dbrestore", "-d", "gis", "--from-database", "pg", "-i", older.name, "--noinput")

    assert f"Restored gis from {older.name}" in text
    assert read("gis") == older_rows  # not the newest backup's rows

    # A name must belong to the source alias: a backup of gis is not one of pg's.
    own = backup_database("gis")
    with pytest.raises(CommandError, match="is not a backup of database 'pg'"):
        call("dbrestore", "-d", "gis", "--from-database", "pg", "-i", own.name, "--noinput")
    assert read("gis") == older_rows


@PG_AND_GIS
def test_the_prompt_names_the_backup_the_source_and_the_target(
    remote_dir: Path, prompts: Prompts
) -> None:
    populate("pg")
    production = snapshot("pg")
    backup = backup_database("pg")
    staging = staging_data("gis")

    prompts.reply("n")
    assert "Restore cancelled." in call("dbrestore", "-d", "gis", "--from-database", "pg")
    assert read("gis") == staging
    question = prompts.questions[0]
    assert backup.name in question
    assert "a backup of database 'pg'" in question
    assert "Restore database 'gis'" in question
    assert question.endswith("[y/N] ")

    prompts.reply("y")
    call("dbrestore", "-d", "gis", "--from-database", "pg")
    assert read("gis") == production


@pytest.mark.parametrize(
    ("target", "vendor"),
    [
        pytest.param(
            "maria",
            "mysql",
            marks=pytest.mark.django_db(transaction=True, databases=["default", "pg", "maria"]),
            id="maria",
        ),
        pytest.param(
            "default",
            "sqlite",
            marks=pytest.mark.django_db(transaction=True, databases=["default", "pg", "default"]),
            id="sqlite",
        ),
    ],
)
def test_a_native_backup_is_refused_by_another_engine_and_the_target_is_unchanged(
    target: str, vendor: str, remote_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    populate("pg")
    backup = backup_database("pg")
    populate(target, authors=2, books=1)
    before = snapshot(target)
    expected = (
        rf"'{backup.name}' is a postgresql backup; database '{target}' is {vendor}: "
        "refusing to restore across engines"
    )

    with pytest.raises(CommandError, match=expected):
        call("dbrestore", "-d", target, "--from-database", "pg", "--noinput")
    # Asked interactively, the refusal comes before the question.
    monkeypatch.setattr("builtins.input", lambda prompt: pytest.fail(f"asked: {prompt}"))
    with pytest.raises(CommandError, match=expected):
        call("dbrestore", "-d", target, "--from-database", "pg")

    assert read(target) == before
    assert staging_leftovers(target) == []


@pytest.mark.django_db(transaction=True, databases=["default", "pg", "gis", "maria"])
def test_a_django_rclone_backup_is_read_as_the_source_engines(
    remote_dir: Path, rclone_bin: str
) -> None:
    """No manifest: what made the backup is inferred from the SOURCE alias's connector."""
    populate("pg")
    production = snapshot("pg")
    name = "pg-2024-01-15-120000.dump"
    target = str(remote_dir / "db" / name)
    process.pipe(Command(argv=legacy_dump_argv("pg")), Command(argv=(rclone_bin, "rcat", target)))
    [listed] = list_backups("pg")
    assert (listed.name, listed.has_manifest) == (name, False)
    staging_data("gis")
    populate("maria", authors=1, books=1)
    maria = snapshot("maria")

    restored = restore_database("gis", from_database="pg")

    assert (restored.database, restored.name, restored.verified) == ("gis", name, False)
    assert read("gis") == production
    # Read as a PostgreSQL backup (the source's engine), it is refused by
    # MariaDB as such, not for its file extension.
    with pytest.raises(InvalidBackup, match="is a postgresql backup; database 'maria' is mysql"):
        restore_database("maria", from_database="pg")
    assert read("maria") == maria


@PG_AND_GIS
def test_an_unknown_source_alias_fails_clearly_and_changes_nothing(remote_dir: Path) -> None:
    populate("pg")
    backup_database("pg")
    staging = staging_data("gis")

    with pytest.raises(CommandError, match=r"unknown database alias 'nope' for --from-database"):
        call("dbrestore", "-d", "gis", "--from-database", "nope", "--noinput")
    with pytest.raises(CommandError, match=r"unknown database alias 'nope'"):
        call("dbrestore", "-d", "gis", "--from-database", "nope", "--noinput", "--enqueue")
    with pytest.raises(ConfigurationError, match=r"unknown database alias 'nope'"):
        restore_database("gis", from_database="nope")

    assert read("gis") == staging
    assert staging_leftovers("gis") == []
