from __future__ import annotations

import json
from typing import Any

from django.core.management.base import CommandParser

from ...operations import list_backups, list_media, list_media_points
from ..base import OperationCommand, human_size


class Command(OperationCommand):
    help = "List database backups or media points (newest first), or the media files."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("-d", "--database", help="Only this database alias.")
        parser.add_argument(
            "--media",
            action="store_true",
            help="List the media points (each a state 'mediarestore --at' restores) instead.",
        )
        parser.add_argument(
            "--files", action="store_true", help="With --media: list the mirror's files."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["media"] and options["files"]:
            self._media(options)
            return
        if options["media"]:
            self._points(options)
            return
        backups = self.run_operation(list_backups, database=options["database"])
        if options["json"]:
            self.stdout.write(json.dumps([b.as_dict() for b in backups], indent=2))
            return
        self.stdout.write(f"{'Name':<56} {'Size':>10}  Created (UTC)")
        self.stdout.write("-" * 90)
        for b in backups:
            created = b.created.strftime("%Y-%m-%d %H:%M:%S")
            self.stdout.write(f"{b.name:<56} {human_size(b.size):>10}  {created}")

    def _media(self, options: dict[str, Any]) -> None:
        files = self.run_operation(list_media)
        if options["json"]:
            rows = [
                {"path": f.path, "size": f.size, "modified": f.modified.isoformat()} for f in files
            ]
            self.stdout.write(json.dumps(rows, indent=2))
            return
        total = sum(f.size for f in files)
        self.stdout.write(f"Media files: {len(files)}, Total size: {human_size(total)}\n")
        self.stdout.write(f"{'Path':<60} {'Size':>10}")
        self.stdout.write("-" * 72)
        for f in files:
            self.stdout.write(f"{f.path:<60} {human_size(f.size):>10}")

    def _points(self, options: dict[str, Any]) -> None:
        points = self.run_operation(list_media_points)
        if options["json"]:
            self.stdout.write(json.dumps([p.as_dict() for p in points], indent=2))
            return
        self.stdout.write(f"{'Point':<28} {'Files':>8} {'Size':>10}  Time (UTC)")
        self.stdout.write("-" * 70)
        for p in points:
            created = p.time.strftime("%Y-%m-%d %H:%M:%S")
            self.stdout.write(f"{p.name:<28} {p.files:>8} {human_size(p.size):>10}  {created}")
