from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from ... import many
from ...operations import cleanup_backups, cleanup_media
from ..base import human_size
from ..several import SeveralDatabasesCommand, add_database_arguments


class Command(SeveralDatabasesCommand):
    operation = "db_cleanup"
    what = "cleanup"
    help = (
        "Delete the database backups that no retention rule keeps "
        "(DB_CLEANUP_KEEP and DB_CLEANUP_KEEP_*); manifests go with their backups. "
        "With --media, the media points instead, under the same rules."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        add_database_arguments(parser, "clean up the backups of")
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Delete nothing; print what would be kept and deleted.",
        )
        parser.add_argument(
            "--media",
            action="store_true",
            help="Clean up media history: points no rule keeps, and versions only they needed.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        queued = options["enqueue"] or options["wait"]
        if options["dry_run"] and queued:
            raise CommandError("--dry-run runs here only: leave out --enqueue/--wait")
        if options["media"]:
            if options["database"] or options["all_databases"]:
                raise CommandError("--media cleans media points: leave out -d/--all")
            if not self.hand_off(options, operation="media_cleanup"):
                self._media(options)
            return
        aliases = self.aliases(options)
        if len(aliases) > 1 or options["all_databases"]:
            self._several(options, aliases)
            return
        alias = aliases[0]
        if self.hand_off(options, database=alias):
            return
        if options["dry_run"]:  # reads only: no lease, no ledger row
            result = self.run_operation(cleanup_backups, database=alias, dry_run=True)
        else:
            result = self.run_guarded("db_cleanup", database=alias)
        if options["json"]:
            self.emit(result, "", options)
            return
        if options["verbosity"] < 1:
            return
        self._report(result, f"backups of {alias}", f"backups of {alias}")

    def _several(self, options: dict[str, Any], aliases: list[str]) -> None:
        if not options["dry_run"]:
            self.several(options, aliases, _describe)
            return
        # Reads only: no lease, no ledger row, one alias after the other.
        results = [
            self.run_operation(cleanup_backups, database=alias, dry_run=True) for alias in aliases
        ]
        if options["json"]:
            outcomes = [many.AliasOutcome(a, r) for a, r in zip(aliases, results, strict=True)]
            self.emit(many.ManyResult(outcomes), "", options)
            return
        if options["verbosity"] < 1:
            return
        for alias, result in zip(aliases, results, strict=True):
            self._report(result, f"backups of {alias}", f"backups of {alias}")

    def _media(self, options: dict[str, Any]) -> None:
        if options["dry_run"]:  # reads only: no lease, no ledger row
            result = self.run_operation(cleanup_media, dry_run=True)
        else:  # under the media lease: never beside a media backup or restore
            result = self.run_guarded("media_cleanup")
        if options["json"]:
            self.emit(result, "", options)
            return
        if options["verbosity"] < 1:
            return
        freed = (
            f"media points and {result.versions_deleted} old file versions "
            f"({human_size(result.bytes_freed)})"
        )
        self._report(result, "media points", freed)

    def _report(self, result: Any, kept: str, deleted: str) -> None:
        """What a cleanup kept (and why) and deleted, backups and media points alike."""
        self.stdout.write(f"Kept {len(result.kept)} {kept}:")
        for name in result.kept:
            self.stdout.write(f"  {name}  ({', '.join(result.reasons.get(name, []))})")
        verb = "Would delete" if result.dry_run else "Deleted"
        self.stdout.write(f"{verb} {len(result.deleted)} {deleted}:")
        for name in result.deleted:
            self.stdout.write(f"  {name}")
        if result.dry_run:
            self.stdout.write(self.style.WARNING("Dry run: nothing was deleted."))


def _describe(result: Any) -> str:
    return (
        f"Cleaned up the backups of {result.database}: kept {len(result.kept)}, "
        f"deleted {len(result.deleted)}"
    )
