from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.db import connections

from ...operations import restore_database
from ...operations.restore import resolve_backup
from ..base import QueueableCommand


class Command(QueueableCommand):
    operation = "db_restore"
    help = "Restore a database from its latest backup, or from --input-path."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "-d", "--database", help="Database alias (required with several databases)."
        )
        parser.add_argument(
            "-i", "--input-path", help="Backup name inside DB_BACKUP_DIR (default: the latest)."
        )
        parser.add_argument(
            "--noinput",
            "--no-input",
            action="store_false",
            dest="interactive",
            help="Do not ask for confirmation.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        database = options["database"]
        if database is None:
            aliases = list(connections.settings)
            if len(aliases) != 1:
                raise CommandError(
                    f"several databases are configured ({', '.join(aliases)}): choose one with -d"
                )
            database = aliases[0]
        if options["interactive"]:
            from ...conf import get_settings

            name, _ = self.run_operation(
                resolve_backup,
                database=database,
                input_path=options["input_path"],
                settings=self.run_operation(get_settings),
            )
            answer = input(
                f"Restore database {database!r} from {name}? "
                "Its current contents will be replaced. [y/N] "
            )
            if answer.strip().lower() not in ("y", "yes"):
                self.stdout.write("Restore cancelled.")
                return
            # The worker must restore exactly the backup that was confirmed.
            options["input_path"] = name
        if self.hand_off(options, database=database, input_path=options["input_path"]):
            return
        result = self.run_operation(
            restore_database, database=database, input_path=options["input_path"]
        )
        self.emit(result, f"Restored {result.database} from {result.name}", options)
