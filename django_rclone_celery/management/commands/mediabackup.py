from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from ..base import QueueableCommand, human_size
from .mediarestore import add_guard_arguments, guard_options, task_kwargs


class Command(QueueableCommand):
    operation = "media_backup"
    help = (
        "Sync MEDIA_ROOT to the rclone remote (incremental); what the sync replaces or "
        "deletes there is kept as history."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        add_guard_arguments(parser, "an empty MEDIA_ROOT (the remote mirror is then emptied)")

    def handle(self, *args: Any, **options: Any) -> None:
        guards = guard_options(options)
        if self.hand_off(options, **task_kwargs(guards)):
            return
        result = self.run_guarded("media_backup", **guards)
        self.emit(
            result,
            f"Synced {result.source} to {result.destination}: {result.copied} copied, "
            f"{result.replaced} replaced, {result.deleted} deleted "
            f"({human_size(result.bytes)} moved); point {result.point}",
            options,
        )
