"""Portable backups through rclone: one object, a manifest, any engine back."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command

from django_rclone_celery.exceptions import InvalidBackup
from django_rclone_celery.operations import backup_database, restore_database
from tests.portable_app import data
from tests.portable_app.models import Every, Item

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "pg", "maria"])


def _manifest(remote: Path, name: str) -> dict[str, object]:
    loaded: dict[str, object] = json.loads((remote / "db" / f"{name}.manifest.json").read_text())
    return loaded


def test_sqlite_backup_restores_into_postgresql(remote_dir: Path) -> None:
    data.populate_every("default", nul=False)  # PostgreSQL text cannot hold NUL
    data.populate_graph("default")
    Item.objects.using("pg").create(code="only-in-pg", qty=1)  # replaced by the restore
    expected = data.everything("default")

    backup = backup_database("default", format="portable")

    assert backup.format == "portable"
    assert backup.name.endswith(".portable.jsonl.zst")
    assert sorted(p.name for p in (remote_dir / "db").iterdir()) == [
        backup.name,
        f"{backup.name}.manifest.json",
    ]
    manifest = _manifest(remote_dir, backup.name)
    assert manifest["format"] == "portable"
    assert manifest["vendor"] == "sqlite"
    assert manifest["sha256"] == backup.sha256
    assert manifest["row_counts"]["portable_app_every"] == 3  # type: ignore[index]

    restored = restore_database("pg", from_database="default")

    assert restored.format == "portable"
    assert restored.verified
    assert data.everything("pg") == expected


def test_a_corrupt_portable_backup_changes_nothing(remote_dir: Path) -> None:
    data.populate_graph("default")
    backup = backup_database("default", format="portable", compression="none")
    stored = remote_dir / "db" / backup.name
    raw = stored.read_bytes()
    # Same length, one record changed: only the checksum can tell.
    stored.write_bytes(raw.replace(b'"c4",4', b'"c4",5'))
    Item.objects.using("maria").create(code="kept", qty=7)
    before = data.everything("maria")

    with pytest.raises(InvalidBackup, match="checksum does not match"):
        restore_database("maria", input_path=backup.name, from_database="default")

    assert data.everything("maria") == before


def test_a_truncated_compressed_backup_changes_nothing(remote_dir: Path) -> None:
    data.populate_graph("default")
    backup = backup_database("default", format="portable")
    stored = remote_dir / "db" / backup.name
    stored.write_bytes(stored.read_bytes()[:-20])
    (remote_dir / "db" / f"{backup.name}.manifest.json").write_text(
        json.dumps({**_manifest(remote_dir, backup.name), "sha256": ""})
    )
    Item.objects.using("pg").create(code="kept", qty=7)
    before = data.everything("pg")

    with pytest.raises(InvalidBackup, match=r"cut short|corrupt"):
        restore_database("pg", from_database="default")

    assert data.everything("pg") == before


def test_dbbackup_format_option(remote_dir: Path) -> None:
    Every.objects.using("pg").create(char="from pg", integer=5, price=data.big_decimal("pg"))
    out = io.StringIO()
    # "native" compression means zstd for a portable backup: no tool compresses it.
    call_command(
        "dbbackup", "-d", "pg", "--format", "portable", "--compression", "native", stdout=out
    )
    (name,) = [p.name for p in (remote_dir / "db").iterdir() if p.name.endswith(".zst")]
    assert name in out.getvalue()
    assert name.endswith(".portable.jsonl.zst")
    manifest = _manifest(remote_dir, name)
    assert (manifest["format"], manifest["compression"]) == ("portable", "zstd")
    before = data.everything("pg")
    Every.objects.using("pg").all().delete()
    restore_database("pg")
    assert data.everything("pg") == before


def test_the_run_history_is_not_part_of_a_portable_dump_of_all_apps() -> None:
    """Loading it back would roll the ledger back (the dumping run "running")."""
    from django_rclone_celery.models import BackupRun
    from django_rclone_celery.portable.selection import select_models

    everything = select_models(using="default")
    assert BackupRun not in everything
    assert any(m._meta.app_label == "testapp" for m in everything)
