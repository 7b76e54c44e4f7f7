from __future__ import annotations

from typing import Any

from ...operations import restore_media
from ..base import OperationCommand


class Command(OperationCommand):
    help = "Sync media from the rclone remote back to MEDIA_ROOT (local extras are deleted)."

    def handle(self, *args: Any, **options: Any) -> None:
        result = self.run_operation(restore_media)
        self.emit(result, f"Synced {result.source} to {result.destination}", options)
