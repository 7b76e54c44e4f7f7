from __future__ import annotations

from typing import Any

from ...operations import backup_media
from ..base import QueueableCommand


class Command(QueueableCommand):
    operation = "media_backup"
    help = "Sync MEDIA_ROOT to the rclone remote (incremental)."

    def handle(self, *args: Any, **options: Any) -> None:
        if self.hand_off(options):
            return
        result = self.run_operation(backup_media)
        self.emit(result, f"Synced {result.source} to {result.destination}", options)
