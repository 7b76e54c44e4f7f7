from __future__ import annotations

from typing import Any

from ..base import QueueableCommand


class Command(QueueableCommand):
    operation = "media_restore"
    help = "Sync media from the rclone remote back to MEDIA_ROOT (local extras are deleted)."

    def handle(self, *args: Any, **options: Any) -> None:
        if self.hand_off(options):
            return
        result = self.run_guarded("media_restore")
        self.emit(result, f"Synced {result.source} to {result.destination}", options)
