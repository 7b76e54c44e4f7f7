"""``cleanupbackups --media`` runs through the run guard: a ledger row and the media lease (#12)."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from django_rclone_celery import registry
from django_rclone_celery.guard import MANUAL_SLOT, lease_here
from django_rclone_celery.models import BackupRun
from django_rclone_celery.operations import backup_media, list_media_points
from tests.helpers.remotes import remote_files

pytestmark = pytest.mark.django_db(transaction=True, databases=["default"])


def call(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_media_cleanup_is_recorded_and_waits_for_the_media_lease(
    remote_dir: Path, media_root: Path, drc_config: Any
) -> None:
    points = []
    for round_ in range(3):
        (media_root / "a.txt").write_text("a" * (round_ + 1))
        points.append(backup_media().point)
    drc_config(DB_CLEANUP_KEEP=1, LOCK_WAIT=1)

    # A dry run only reads: no row, no lease.
    before = BackupRun.objects.count()
    assert "Would delete 2 media points" in call("cleanupbackups", "--media", "--dry-run")
    assert BackupRun.objects.count() == before

    # While a media backup or restore holds the lease, the cleanup waits, then refuses.
    stored = remote_files(remote_dir)
    holder = lease_here(registry.MEDIA_LOCK)
    assert holder.acquire()
    try:
        with pytest.raises(CommandError, match=r"held the lock on 'media' .*LOCK_WAIT"):
            call("cleanupbackups", "--media")
    finally:
        holder.release()
    assert remote_files(remote_dir) == stored
    refused = BackupRun.objects.get(operation="media_cleanup")
    assert (refused.status, refused.database) == ("failed", "")

    result = json.loads(call("cleanupbackups", "--media", "--json"))
    assert result["operation"] == "media_cleanup"
    assert result["deleted"] == [points[1], points[0]]
    assert [p.name for p in list_media_points()] == [points[2]]
    done = BackupRun.objects.filter(operation="media_cleanup").order_by("-pk").first()
    assert done is not None
    assert (done.status, done.database) == ("succeeded", "")
    assert done.slot.startswith(MANUAL_SLOT)
    assert done.lock_token  # it held the lease
    assert done.task_id == result["run_id"]


def test_media_cleanup_is_a_task_of_the_registry() -> None:
    spec = registry.BY_NAME["media_cleanup"]
    assert spec.media
    assert registry.TASKS["media_cleanup"].task == "django_rclone_celery.media_cleanup"
    assert registry.problems("media_cleanup", {"keep": 0}) == [
        "keep: 0 is not a whole number of at least 1"
    ]


@pytest.mark.django_db(transaction=True, databases=["default"])
def test_media_cleanup_can_be_handed_to_a_worker(
    task_app: Any, workers: Any, remote_dir: Path, media_root: Path, drc_config: Any
) -> None:
    points = []
    for round_ in range(3):
        (media_root / "a.txt").write_text("a" * (round_ + 1))
        points.append(backup_media().point)
    drc_config(DB_CLEANUP_KEEP=1)
    with pytest.raises(CommandError, match="--dry-run runs here only"):
        call("cleanupbackups", "--media", "--dry-run", "--enqueue")
    workers.start()
    out = call("cleanupbackups", "--media", "--wait")
    assert "Queued media_cleanup as task" in out
    assert "succeeded" in out
    assert [p.name for p in list_media_points()] == [points[2]]
