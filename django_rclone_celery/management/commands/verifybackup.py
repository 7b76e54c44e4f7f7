from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from ..base import QueueableCommand, human_size


class Command(QueueableCommand):
    operation = "db_verify"
    help = (
        "Read a backup end to end and check it (size, sha256, compression, the engine's "
        "own reader) without touching the database; --restore also restores it into a "
        "staged copy that is then dropped."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("-d", "--database", default="default", help="Database alias.")
        parser.add_argument(
            "-i", "--input-path", help="Backup name inside DB_BACKUP_DIR (default: the latest)."
        )
        parser.add_argument(
            "--restore",
            action="store_true",
            help="Also restore it into a staged copy beside the database, check it and drop "
            "it; the live database is never changed.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        handed_off = self.hand_off(
            options,
            database=options["database"],
            input_path=options["input_path"],
            restore=options["restore"],
        )
        if handed_off:
            return
        result = self.run_guarded(
            "db_verify",
            database=options["database"],
            input_path=options["input_path"],
            restore=options["restore"],
        )
        text = f"Verified {result.name} ({human_size(result.size)}): {', '.join(result.checks)}"
        if result.restore_seconds is not None:
            text += f"; restored in {result.restore_seconds:.1f} s"
            if result.compared:
                text += f", matching its manifest's {' and '.join(result.compared)}"
        self.emit(result, text, options)
        if not options.get("json") and options.get("verbosity", 1) >= 1:
            for note in result.notes:
                self.stdout.write(self.style.WARNING(f"Not checked: {note}"))
