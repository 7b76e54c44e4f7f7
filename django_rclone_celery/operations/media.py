"""Media backup and restore: ``rclone sync`` between ``MEDIA_ROOT`` and the remote."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings as django_settings

from .. import signals
from ..conf import Settings, get_settings
from ..exceptions import ConfigurationError
from ..rclone import Entry, Rclone, join
from ..results import MediaResult
from .run import ProgressCallback, Run


def media_root() -> str:
    root = str(getattr(django_settings, "MEDIA_ROOT", "") or "")
    if not root:
        raise ConfigurationError("MEDIA_ROOT is empty: there is no media directory to back up")
    return root


def media_dir(settings: Settings) -> str:
    return join(settings.remote, settings.media_backup_dir)


def backup_media(
    *,
    run_id: str | None = None,
    progress: ProgressCallback | None = None,
    settings: Settings | None = None,
) -> MediaResult:
    """Mirror ``MEDIA_ROOT`` to ``REMOTE/MEDIA_BACKUP_DIR`` (incremental)."""
    settings = settings or get_settings()
    root = media_root()
    if not Path(root).is_dir():
        raise ConfigurationError(f"MEDIA_ROOT {root!r} is not a directory")
    run = Run.start("media_backup", None, run_id, progress)
    destination = media_dir(settings)
    signals.pre_media_backup.send(sender="media_backup", run_id=run.run_id)
    with run.stage("sync"):
        Rclone(settings).sync(root, destination)
    signals.post_media_backup.send_robust(sender="media_backup", run_id=run.run_id)
    return MediaResult(
        operation="media_backup",
        source=root,
        destination=destination,
        duration=run.elapsed,
        run_id=run.run_id,
    )


def restore_media(
    *,
    run_id: str | None = None,
    progress: ProgressCallback | None = None,
    settings: Settings | None = None,
) -> MediaResult:
    """Mirror the remote media back into ``MEDIA_ROOT``; local extras are deleted."""
    settings = settings or get_settings()
    root = media_root()
    run = Run.start("media_restore", None, run_id, progress)
    source = media_dir(settings)
    signals.pre_media_restore.send(sender="media_restore", run_id=run.run_id)
    with run.stage("sync"):
        Path(root).mkdir(parents=True, exist_ok=True)
        Rclone(settings).sync(source, root)
    signals.post_media_restore.send_robust(sender="media_restore", run_id=run.run_id)
    return MediaResult(
        operation="media_restore",
        source=source,
        destination=root,
        duration=run.elapsed,
        run_id=run.run_id,
    )


def list_media(*, settings: Settings | None = None) -> list[Entry]:
    settings = settings or get_settings()
    return Rclone(settings).lsjson(media_dir(settings), recursive=True)
