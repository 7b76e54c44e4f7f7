from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from ..base import human_size
from ..several import SeveralDatabasesCommand, add_database_arguments


class Command(SeveralDatabasesCommand):
    operation = "db_verify"
    what = "verification"
    help = (
        "Read a backup end to end and check it (size, sha256, compression, the engine's "
        "own reader) without touching the database; --restore also restores it into a "
        "staged copy that is then dropped."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        add_database_arguments(parser, "verify the latest backup of")
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
        aliases = self.aliases(options)
        if len(aliases) > 1 or options["all_databases"]:
            if options["input_path"]:
                raise CommandError("--input-path names one backup: give one -d with it")
            self.several(options, aliases, _describe, restore=options["restore"])
            return
        kwargs = {"input_path": options["input_path"], "restore": options["restore"]}
        if self.hand_off(options, database=aliases[0], **kwargs):
            return
        result = self.run_guarded("db_verify", database=aliases[0], **kwargs)
        self.emit(result, _describe(result), options)
        if not options.get("json") and options.get("verbosity", 1) >= 1:
            for note in result.notes:
                self.stdout.write(self.style.WARNING(f"Not checked: {note}"))


def _describe(result: Any) -> str:
    text = f"Verified {result.name} ({human_size(result.size)}): {', '.join(result.checks)}"
    if result.restore_seconds is not None:
        text += f"; restored in {result.restore_seconds:.1f} s"
        if result.compared:
            text += f", matching its manifest's {' and '.join(result.compared)}"
    return text
