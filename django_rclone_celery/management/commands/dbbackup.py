from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from ...parallel import parse_jobs
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
        parser.add_argument(
            "--jobs",
            metavar="N",
            help="PostgreSQL: N streams at once (default: JOBS); other engines use one.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            jobs = parse_jobs(options["jobs"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        # Sent only when set, so the message stays readable by workers that predate it.
        extra: dict[str, Any] = {"jobs": jobs} if jobs else {}
        handed_off = self.hand_off(
            options,
            database=options["database"],
            clean=options["clean"],
            format=options["format"],
            compression=options["compression"],
            **extra,
        )
        if handed_off:
            return
        result = self.run_guarded(
            "db_backup",
            database=options["database"],
            clean=options["clean"],
            compression=options["compression"],
            format=options["format"],
            **extra,
        )
        text = f"Backed up {result.database} to {result.path} ({human_size(result.size)})"
        if result.cleaned:
            text += f"; removed {len(result.cleaned)} old backups"
        self.emit(result, text, options)
