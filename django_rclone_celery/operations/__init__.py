"""The operations: the one code path behind commands, Celery tasks and admin actions."""

from __future__ import annotations

from ..floor.run import Progress, ProgressCallback, Run
from .backup import backup_database
from .catalog import cleanup_backups, list_backups
from .media import (
    backup_media,
    cleanup_media,
    list_media,
    list_media_points,
    plan_restore,
    restore_media,
)
from .restore import restore_database
from .verify import verify_backup

__all__ = [
    "Progress",
    "ProgressCallback",
    "Run",
    "backup_database",
    "backup_media",
    "cleanup_backups",
    "cleanup_media",
    "list_backups",
    "list_media",
    "list_media_points",
    "plan_restore",
    "restore_database",
    "restore_media",
    "verify_backup",
]
