"""The ``db_verify`` task on a real Celery worker, against real servers and rclone.

The damage cases themselves are in ``tests/integration/test_verify.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zstandard

from django_rclone_celery import signals
from django_rclone_celery.models import BackupRun
from django_rclone_celery.operations import backup_database
from tests.helpers.databases import (
    APP_TABLES,
    populate,
    snapshot,
)


# helpers ------------------------------------------------------------------
def stored(remote_dir: Path, name: str) -> Path:
    return remote_dir / "db" / name


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
