from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...exceptions import DjangoRcloneCeleryError


class Command(BaseCommand):
    help = (
        "Create django-celery-beat PeriodicTask rows for DJANGO_RCLONE['SCHEDULES']. "
        "Existing rows keep their admin edits unless --reset is given."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--reset",
            action="store_true",
            help="Overwrite existing rows from the settings and delete rows of removed schedules.",
        )
        parser.add_argument(
            "--database", help="Database holding django-celery-beat's tables (default: routed)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not apps.is_installed("django_celery_beat"):
            raise CommandError(
                "django_celery_beat is not in INSTALLED_APPS. Without it, use "
                "django_rclone_celery.schedules.beat_schedule() as the Celery beat_schedule."
            )
        from ...schedules import sync_periodic_tasks

        try:
            report = sync_periodic_tasks(reset=options["reset"], using=options["database"])
        except DjangoRcloneCeleryError as exc:
            raise CommandError(str(exc)) from exc
        lines = [
            ("Created", report.created),
            ("Reset", report.updated),
            ("Kept (edits preserved; --reset overwrites)", report.kept),
            ("Deleted (no longer in SCHEDULES)", report.removed),
            ("Not in SCHEDULES any more (--reset deletes)", report.stale),
        ]
        for label, names in lines:
            if names:
                self.stdout.write(f"{label}: {', '.join(names)}")
        if not any(names for _, names in lines):
            self.stdout.write("No schedules configured in DJANGO_RCLONE['SCHEDULES'].")
