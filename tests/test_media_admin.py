"""The admin's "Media backup" keeps the media guards (issue #12): no prompt, same refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse

from django_rclone_celery.models import BackupRun
from django_rclone_celery.operations import backup_media
from tests.celery_redis import (  # noqa: F401
    celery_config,
    celery_includes,
    no_project_app,
)
from tests.test_admin import START, queued, staff

pytestmark = pytest.mark.django_db(transaction=True, databases=["default"])


def test_admin_media_backup_refuses_an_empty_media_root(
    celery_app: Any, celery_worker: Any, remote_dir: Path, media_root: Path, settings: Any
) -> None:
    (media_root / "logo.png").write_bytes(b"png")
    backup_media()
    empty = media_root.parent / "unmounted"
    empty.mkdir()
    settings.MEDIA_ROOT = str(empty)
    operator = staff("operator", "view_backuprun", "run_backup", "run_restore")

    response = operator.post(
        reverse(START), {"database": "default", "keep": "", "run": "media_backup"}, follow=True
    )
    [(what, task_id)] = queued(response)
    assert what == "media backup"
    with pytest.raises(Exception, match="holds no files"):
        celery_app.AsyncResult(task_id).get(timeout=60)
    run = BackupRun.objects.get(task_id=task_id)
    assert (run.operation, run.status) == ("media_backup", "failed")
    assert "holds no files" in run.error
    assert (remote_dir / "media" / "logo.png").read_bytes() == b"png"
