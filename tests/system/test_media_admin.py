"""Media runs through a worker (issue #12): the admin keeps the guards, the command asks here."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.urls import reverse

from django_rclone_celery.models import BackupRun
from django_rclone_celery.operations import backup_media
from tests.celery_redis import (  # noqa: F401
    celery_config,
    celery_includes,
    no_project_app,
)
from tests.helpers.admin import START, queued, staff
from tests.helpers.prompts import Prompts, Terminal

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


def test_mediarestore_asks_here_and_the_worker_restores_what_was_confirmed(
    celery_app: Any,
    celery_worker: Any,
    remote_dir: Path,
    media_root: Path,
    prompts: Prompts,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (media_root / "a.txt").write_bytes(b"first")
    first = backup_media().point
    (media_root / "a.txt").write_bytes(b"second, longer")
    (media_root / "b.txt").write_bytes(b"added")
    backup_media()
    monkeypatch.setattr("sys.stdin", Terminal())
    prompts.reply("y")
    out = StringIO()

    call_command(
        "mediarestore", "--at", str(first), "--wait", "--json", stdout=out, stderr=StringIO()
    )

    assert f"as at point {first}?" in prompts.questions[0]
    assert (
        "0 files will be copied, 1 local files replaced and 1 local files deleted"
        in (prompts.questions[0])
    )
    result = json.loads(out.getvalue().split("[y/N] ")[-1])
    assert (result["point"], result["replaced"], result["deleted"]) == (first, 1, 1)
    assert sorted(p.name for p in media_root.iterdir()) == ["a.txt"]
    assert (media_root / "a.txt").read_bytes() == b"first"
