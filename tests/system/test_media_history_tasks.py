"""Media backups that never destroy media (issue #12): guards, history, point-in-time restore.

Through a real Celery worker, with the real rclone against a local-directory remote.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from django_rclone_celery.operations import (
    backup_media,
    list_media_points,
)
from tests.helpers.media import FIRST, hashes, write

# The commands record their runs in the ledger (on "default") like any entry point.
pytestmark = pytest.mark.django_db(transaction=True, databases=["default"])


@pytest.mark.django_db(transaction=True, databases=["default"])
def test_counts_in_the_task_result_and_run_history(
    task_app: Any, workers: Any, remote_dir: Path, media_root: Path, drc_config: Any
) -> None:
    from django_rclone_celery.models import BackupRun

    write(media_root, FIRST)
    backup_media()
    (media_root / "a.txt").unlink()
    (media_root / "docs" / "b.txt").unlink()
    drc_config(MEDIA_MAX_DELETE=1)
    workers.start(concurrency=1)
    with pytest.raises(Exception, match="would delete 2 of the 5 files"):
        task_app.send_task("django_rclone_celery.media_backup").get(timeout=120)
    assert (remote_dir / "media" / "a.txt").exists()

    write(media_root, {"n.txt": b"new"})

    result = task_app.send_task(
        "django_rclone_celery.media_backup", kwargs={"max_delete": "40%"}
    ).get(timeout=120)
    assert {k: result[k] for k in ("copied", "replaced", "deleted", "bytes")} == {
        "copied": 1,
        "replaced": 0,
        "deleted": 2,
        "bytes": 3,
    }
    row = BackupRun.objects.get(pk=result["run"])
    assert row.status == "succeeded"
    assert {k: row.result[k] for k in ("copied", "replaced", "deleted", "bytes")} == {
        "copied": 1,
        "replaced": 0,
        "deleted": 2,
        "bytes": 3,
    }
    failed = BackupRun.objects.filter(operation="media_backup", status="failed").get()
    assert "would delete 2 of the 5 files" in failed.error

    # The task restores a point, with the guards and without a prompt.
    first = list_media_points()[-1].name
    restored = task_app.send_task(
        "django_rclone_celery.media_restore", kwargs={"at": first, "max_delete": 1}
    ).get(timeout=120)
    assert (restored["copied"], restored["deleted"], restored["point"]) == (2, 1, first)
    assert hashes(media_root) == {
        k: hashlib.sha256(v).hexdigest() for k, v in sorted(FIRST.items())
    }
