"""``manage.py dumpdb``: portable dump, one JSON-lines file per table."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...exceptions import DjangoRcloneCeleryError
from ...portable import TableDump, dump_portable, iter_dump


class Command(BaseCommand):
    help = (
        "Dump the tables of the given apps (all apps if none) in the portable format: "
        "one JSON-lines file per table, loadable into changed models and other engines."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("app_label", nargs="*", help="Apps to dump (default: all).")
        parser.add_argument(
            "-d", "--dir", default="datadir", help="Output directory, created if missing."
        )
        parser.add_argument(
            "-s",
            "--stdout",
            action="store_true",
            dest="to_stdout",  # "stdout" is call_command's output stream
            help="Write to standard output instead.",
        )
        parser.add_argument("--database", default="default", help="Database alias to read.")

    def handle(self, *args: Any, **options: Any) -> None:
        verbosity = options["verbosity"]
        # With --stdout the data owns stdout: reports go to stderr.
        report = self.stderr if options["to_stdout"] else self.stdout

        def on_table(table: TableDump) -> None:
            if verbosity >= 2:
                report.write(f"{table.table}: {table.rows} rows")

        try:
            if options["to_stdout"]:
                rows = 0

                def count(table: TableDump) -> None:
                    nonlocal rows
                    rows += table.rows
                    on_table(table)

                for chunk in iter_dump(
                    options["app_label"], using=options["database"], on_table=count
                ):
                    self.stdout.write(chunk.decode("utf-8"), ending="")
                self.stdout.flush()
                if verbosity >= 1:
                    self.stderr.write(f"Dumped {rows} rows.")
                return
            result = dump_portable(
                options["app_label"],
                using=options["database"],
                directory=options["dir"],
                on_table=on_table,
            )
        except DjangoRcloneCeleryError as exc:
            raise CommandError(str(exc)) from exc
        if verbosity >= 1:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Dumped {result.rows} rows from {len(result.tables)} tables "
                    f"into {result.directory}"
                )
            )
