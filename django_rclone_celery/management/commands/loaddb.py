"""``manage.py loaddb``: load a portable dump into today's models, all or nothing."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...exceptions import DjangoRcloneCeleryError
from ...portable import PortableLoadError, RowError, TableLoad, load_portable


class Command(BaseCommand):
    help = (
        "Load portable files (from dumpdb) into the tables of the given apps (all if none). "
        "Fields the models gained take defaults; any error rolls the whole load back."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("app_label", nargs="*", help="Apps to load (default: all).")
        parser.add_argument("-d", "--dir", default="datadir", help="Directory of the files.")
        parser.add_argument(
            "-r",
            "--remain",
            action="store_true",
            help="Keep the rows already in the tables (default: empty them first).",
        )
        parser.add_argument(
            "-e", "--errorquit", action="store_true", help="Stop at the first error."
        )
        parser.add_argument("--database", default="default", help="Database alias to write.")

    def handle(self, *args: Any, **options: Any) -> None:
        verbosity = options["verbosity"]

        def on_table(table: TableLoad) -> None:
            if table.skipped:
                if verbosity >= 1:
                    self.stdout.write(f"{table.table}: skipped ({table.skipped})")
                return
            if verbosity >= 2:
                self.stdout.write(f"{table.table}: {table.rows} rows")
                if table.ignored_fields:
                    ignored = ", ".join(table.ignored_fields)
                    self.stdout.write(f"  ignored fields not in the model: {ignored}")
                for column, source in table.filled_fields.items():
                    self.stdout.write(f"  {column}: {source}")

        def on_error(error: RowError) -> None:
            self.stderr.write(f"error: {error}")

        try:
            result = load_portable(
                options["app_label"],
                using=options["database"],
                directory=options["dir"],
                remain=options["remain"],
                errorquit=options["errorquit"],
                on_table=on_table,
                on_error=on_error,
            )
        except PortableLoadError as exc:
            noun = "error" if exc.total == 1 else "errors"
            raise CommandError(
                f"{exc.total} {noun}; the load was rolled back and the database is unchanged"
            ) from exc
        except DjangoRcloneCeleryError as exc:
            raise CommandError(str(exc)) from exc
        if verbosity >= 1:
            loaded = sum(1 for table in result.tables if not table.skipped)
            self.stdout.write(self.style.SUCCESS(f"Loaded {result.rows} rows into {loaded} tables"))
