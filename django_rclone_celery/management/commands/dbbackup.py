from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from ...parallel import parse_jobs
from ..base import human_size
from ..several import SeveralDatabasesCommand, add_database_arguments


class Command(SeveralDatabasesCommand):
    operation = "db_backup"
    what = "backup"
    help = "Dump a database and stream it to the rclone remote."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        add_database_arguments(parser, "back up")
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
        aliases = self.aliases(options)
        kwargs: dict[str, Any] = {
            "clean": options["clean"],
            "format": options["format"],
            "compression": options["compression"],
        }
        if jobs:  # sent only when set, so the message stays readable by older workers
            kwargs["jobs"] = jobs
        if len(aliases) > 1 or options["all_databases"]:
            self.several(options, aliases, _describe, **kwargs)
            return
        if self.hand_off(options, database=aliases[0], **kwargs):
            return
        result = self.run_guarded("db_backup", database=aliases[0], **kwargs)
        self.emit(result, _describe(result), options)


def _describe(result: Any) -> str:
    text = f"Backed up {result.database} to {result.path} ({human_size(result.size)})"
    if result.cleaned:
        text += f"; removed {len(result.cleaned)} old backups"
    return text
