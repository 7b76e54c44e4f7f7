from __future__ import annotations

from typing import Any

from ..base import QueueableCommand


class Command(QueueableCommand):
    operation = "media_backup"
    help = "Sync MEDIA_ROOT to the rclone remote (incremental)."

    def handle(self, *args: Any, **options: Any) -> None:
        if self.hand_off(options):
            return
        result = self.run_guarded("media_backup")
        self.emit(result, f"Synced {result.source} to {result.destination}", options)
