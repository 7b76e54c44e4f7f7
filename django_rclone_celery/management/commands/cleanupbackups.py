from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from ...operations import cleanup_backups
from ..base import OperationCommand


class Command(OperationCommand):
    help = (
        "Delete the database backups that no retention rule keeps "
        "(DB_CLEANUP_KEEP and DB_CLEANUP_KEEP_*); manifests go with their backups."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("-d", "--database", default="default", help="Database alias.")
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Delete nothing; print what would be kept and deleted.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        alias = options["database"]
        if options["dry_run"]:  # reads only: no lease, no ledger row
            result = self.run_operation(cleanup_backups, database=alias, dry_run=True)
        else:
            result = self.run_guarded("db_cleanup", database=alias)
        if options["json"]:
            self.emit(result, "", options)
            return
        if options["verbosity"] < 1:
            return
        self.stdout.write(f"Kept {len(result.kept)} backups of {alias}:")
        for name in result.kept:
            self.stdout.write(f"  {name}  ({', '.join(result.reasons.get(name, []))})")
        verb = "Would delete" if result.dry_run else "Deleted"
        self.stdout.write(f"{verb} {len(result.deleted)} backups of {alias}:")
        for name in result.deleted:
            self.stdout.write(f"  {name}")
        if result.dry_run:
            self.stdout.write(self.style.WARNING("Dry run: nothing was deleted."))
