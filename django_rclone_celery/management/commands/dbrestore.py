from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.db import connections

from ...operations.restore import select_backup
from ...parallel import parse_jobs
from ..base import QueueableCommand
from ..several import refuse_several


class Command(QueueableCommand):
    operation = "db_restore"
    help = "Restore a database from its latest backup, or from --input-path."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "-d",
            "--database",
            action="append",
            help="Database alias (required with several databases); one per restore.",
        )
        refuse_several(parser)
        parser.add_argument(
            "-i", "--input-path", help="Backup name inside DB_BACKUP_DIR (default: the latest)."
        )
        parser.add_argument(
            "--from-database",
            metavar="ALIAS",
            help="Restore the backups of another alias into -d (e.g. production's into staging).",
        )
        parser.add_argument(
            "--noinput",
            "--no-input",
            action="store_false",
            dest="interactive",
            help="Do not ask for confirmation.",
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
        named = options["database"]
        named = [named] if isinstance(named, str) else list(named or [])
        if options["all_databases"] or len(named) > 1:
            raise CommandError(
                "dbrestore replaces one database at a time: name one with -d "
                "(--all and several -d are for dbbackup, verifybackup and cleanupbackups)"
            )
        database = named[0] if named else None
        if database is None:
            aliases = list(connections.settings)
            if len(aliases) != 1:
                raise CommandError(
                    f"several databases are configured ({', '.join(aliases)}): choose one with -d"
                )
            database = aliases[0]
        source = options["from_database"]
        if source == database:
            source = None
        if source is not None and source not in connections.settings:
            # Also before --enqueue: the worker would only fail with the same error.
            known = ", ".join(sorted(connections.settings))
            raise CommandError(
                f"unknown database alias {source!r} for --from-database (configured: {known})"
            )
        if options["interactive"]:
            from ...conf import get_settings

            # Checked like the restore will (alias, name, engine), so a backup
            # that would be refused is never offered.
            name = self.run_operation(
                select_backup,
                database=database,
                input_path=options["input_path"],
                from_database=source,
                settings=self.run_operation(get_settings),
            ).name
            origin = f", a backup of database {source!r}" if source else ""
            try:
                answer = input(
                    f"Restore database {database!r} from {name}{origin}? "
                    f"The current contents of {database!r} will be replaced. [y/N] "
                )
            except EOFError:  # no terminal (cron, CI, a pipe): nobody can answer
                raise CommandError(
                    "no terminal to confirm the restore on; nothing was restored. "
                    "Pass --noinput to restore without asking."
                ) from None
            if answer.strip().lower() not in ("y", "yes"):
                self.stdout.write("Restore cancelled.")
                return
            # The worker must restore exactly the backup that was confirmed.
            options["input_path"] = name
        # Sent only when set, so the message stays readable by workers that predate it.
        extra: dict[str, Any] = {"from_database": source} if source else {}
        if jobs:
            extra["jobs"] = jobs
        if self.hand_off(options, database=database, input_path=options["input_path"], **extra):
            return
        result = self.run_guarded(
            "db_restore",
            database=database,
            input_path=options["input_path"],
            from_database=source,
            **({"jobs": jobs} if jobs else {}),
        )
        text = f"Restored {result.database} from {result.name}"
        if result.from_database != result.database:
            text += f" (a backup of {result.from_database!r})"
        self.emit(result, text, options)
