"""Backup verification on real servers: good backups pass, every kind of damage fails.

Real PostgreSQL, MariaDB and SQLite, the real rclone binary on a
local-directory remote, and a real Celery worker for the task. Damaged
backups are made by editing the stored object (and, where the point is that
the checksum alone would not notice, its manifest too).
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
from django.db import connections

from django_rclone_celery import signals
from django_rclone_celery.models import BackupRun
from django_rclone_celery.operations import backup_database
from tests.helpers.databases import (
    APP_TABLES,
    populate,
    snapshot,
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


# the task -------------------------------------------------------------------
@pytest.mark.django_db(transaction=True, databases=["default", "pg"])
def test_db_verify_task_on_a_worker(task_app: Any, workers: Any, remote_dir: Path) -> None:
    populate("pg")
    backup = backup_database("pg")
    before = snapshot("pg", APP_TABLES)
    workers.start()

    result = task_app.send_task(
        "django_rclone_celery.db_verify", kwargs={"database": "pg", "restore": True}
    )
    value = result.get(timeout=120)
    assert (value["status"], value["operation"], value["name"], value["restored"]) == (
        "succeeded",
        "db_verify",
        backup.name,
        True,
    )
    assert value["checks"] == ["size", "sha256", "zstd", "pg_restore", "restore"]
    run = BackupRun.objects.get(task_id=result.id)
    assert (run.operation, run.database, run.status, run.size) == (
        "db_verify",
        "pg",
        "succeeded",
        backup.size,
    )
    assert snapshot("pg", APP_TABLES) == before

    path = stored(remote_dir, backup.name)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    failed = task_app.send_task("django_rclone_celery.db_verify", kwargs={"database": "pg"})
    with pytest.raises(Exception, match="checksum does not match its manifest") as caught:
        failed.get(timeout=120)
    assert type(caught.value).__name__ == "InvalidBackup"
    run = BackupRun.objects.get(task_id=failed.id)
    assert run.status == "failed"
    assert run.error.startswith("InvalidBackup: ")


