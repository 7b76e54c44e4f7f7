from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from ..base import QueueableCommand, human_size


class Command(QueueableCommand):
    operation = "db_backup"
    help = "Dump a database and stream it to the rclone remote."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("-d", "--database", default="default", help="Database alias.")
        parser.add_argument(
            "--clean",
            action="store_true",
            help="Afterwards apply the retention policy (DB_CLEANUP_KEEP and the "
            "DB_CLEANUP_KEEP_* rules) to this database's backups.",
        )
        parser.add_argument(
            "--compression",
            choices=["zstd", "native", "none"],
            help="Override DJANGO_RCLONE['COMPRESSION'] for this backup.",
        )
        parser.add_argument(
            "--format",
            choices=["native", "portable"],
            default="native",
            help="native: the engine's dump tool (default); portable: dumpdb's JSON lines, "
            "restorable into another engine and changed models.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        handed_off = self.hand_off(
            options,
            database=options["database"],
            clean=options["clean"],
            format=options["format"],
            compression=options["compression"],
        )
        if handed_off:
            return
        result = self.run_guarded(
            "db_backup",
            database=options["database"],
            clean=options["clean"],
            compression=options["compression"],
            format=options["format"],
        )
        text = f"Backed up {result.database} to {result.path} ({human_size(result.size)})"
        if result.cleaned:
            text += f"; removed {len(result.cleaned)} old backups"
        self.emit(result, text, options)
