"""The demo: seed, start a worker and beat, back up through Celery, break, restore, show.

    python example_project/manage.py demo

Runs on the embedded defaults (SQLite, a local-directory remote, kombu's
filesystem broker) or on PostgreSQL/MariaDB and Redis when ``DATABASE_URL``
and ``REDIS_URL`` are set. Exits non-zero if any step fails, and always stops
the processes it started.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bookshop import env
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections
from django.utils import timezone

from catalog import processes, seed
from catalog.models import Book, Review


def _without_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}{rest.rpartition('@')[2]}"


class Step(Exception):
    """A demo step failed; the message says which and why."""


class Command(BaseCommand):
    help = "Run the end-to-end demo: backup, damage, restore, through a real Celery worker."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--timeout", type=float, default=120, help="Seconds to wait for each task."
        )

    def say(self, text: str) -> None:
        self.stdout.write(text)
        self.stdout.flush()

    def title(self, text: str) -> None:
        self.say(self.style.MIGRATE_HEADING(f"\n==> {text}"))

    def handle(self, *args: Any, **options: Any) -> None:
        self.timeout = options["timeout"]
        log_dir = env.VAR / "logs"
        services = [processes.service("worker", log_dir), processes.service("beat", log_dir)]
        failed: str | None = None
        try:
            self.run_demo(services)
        except (Step, RuntimeError) as exc:
            failed = str(exc)
        except KeyboardInterrupt:
            failed = "interrupted"
        finally:
            self.title("Stopping the processes the demo started")
            for service in reversed(services):
                if service.pid is not None:
                    code = service.stop()
                    self.say(f"stopped {service.name} (pid {service.pid}, exit status {code})")
        if failed:
            for service in services:
                if service.pid is not None:
                    self.stderr.write(f"--- tail of {service.log_path}:\n{service.log()[-2000:]}")
            raise CommandError(f"demo failed: {failed}")
        self.say(self.style.SUCCESS("\nDemo finished: every step succeeded."))

    # The steps, in order.
    def run_demo(self, services: list[processes.Service]) -> None:
        db = settings.DATABASES["default"]
        self.title("Configuration")
        self.say(f"database: {db['ENGINE'].rsplit('.', 1)[-1]} {db['NAME']}")
        self.say(f"broker:   {_without_password(settings.CELERY_BROKER_URL)}")
        self.say(f"remote:   {settings.DJANGO_RCLONE['REMOTE']}")

        self.title("Migrating (this also installs the beat schedules)")
        call_command("migrate", verbosity=0, interactive=False)
        self.show_schedules()

        self.title("Seeding the catalogue")
        before = seed.seed()
        media_before = seed.media_digest()
        self.say(f"rows:  {before}")
        self.say(f"media: {len(media_before)} files under {settings.MEDIA_ROOT}")

        self.title("Starting a Celery worker and beat")
        for service in services:
            service.start()
            self.say(f"started {service.name} (pid {service.pid}): {' '.join(service.argv[1:])}")
        services[0].wait_for("ready.", timeout=60)
        services[1].wait_for("beat: Starting", timeout=60)
        self.say("worker is ready, beat is running")

        from django_rclone_celery import tasks

        self.since = timezone.now()

        self.title("Backing up the database through the worker: db_backup.delay()")
        backup = self.follow(tasks.db_backup.delay(database="default"))
        self.say(f"backup written: {backup['path']} ({backup['size']} bytes)")

        self.title("Backing up the media: media_backup.delay()")
        self.follow(tasks.media_backup.delay())

        self.title("Listing the backups: manage.py listbackups")
        call_command("listbackups", database="default", stdout=self.stdout)
        call_command("listbackups", media=True, stdout=self.stdout)

        self.title("Damaging the data")
        doomed = list(Book.objects.order_by("id")[: len(seed.TITLES) // 2])
        for book in doomed:
            book.cover.delete(save=False)
        Review.objects.all().delete()
        Book.objects.filter(pk__in=[b.pk for b in doomed]).delete()
        (Path(settings.MEDIA_ROOT) / "covers" / "scribble.txt").write_text("not a cover\n")
        damaged = seed.counts()
        self.say(f"rows now:  {damaged}")
        self.say(f"media now: {len(seed.media_digest())} files")
        if damaged == before:
            raise Step("the damage step changed nothing")

        self.title(f"Restoring the database from {backup['name']}: db_restore.delay()")
        self.follow(tasks.db_restore.delay(database="default", input_path=backup["name"]))
        connections.close_all()  # the restore replaced the database: reconnect
        after = seed.counts()
        self.say(f"rows after restore: {after}")
        if after != before:
            raise Step(f"restored rows {after} differ from the seeded rows {before}")

        self.title("Restoring the media: media_restore.delay()")
        self.follow(tasks.media_restore.delay())
        media_after = seed.media_digest()
        self.say(f"media after restore: {len(media_after)} files")
        if media_after != media_before:
            missing = sorted(set(media_before) ^ set(media_after))
            raise Step(f"restored media differ from the seeded media: {missing[:5]}")
        self.say("every row and every media file is back, byte for byte")

        self.title("Run history (the ledger; also in the admin under Backups > Runs)")
        self.show_history()

    def follow(self, result: Any) -> dict[str, Any]:
        """Print each new state of a task until it ends; return its result dict."""
        self.say(f"task {result.id} queued")
        deadline = time.monotonic() + self.timeout
        last: tuple[Any, ...] = ()
        while not result.ready():
            if time.monotonic() > deadline:
                raise Step(f"task {result.id} did not finish in {self.timeout:.0f} s")
            state, info = result.state, result.info
            info = info if isinstance(info, dict) else {}
            now = (state, info.get("stage"), info.get("bytes_done"))
            # A result file being rewritten can read as PENDING for a moment.
            if now != last and not (state == "PENDING" and last):
                done = f" {info.get('bytes_done', 0)} bytes" if info.get("bytes_done") else ""
                stage = f" stage={info['stage']}" if info.get("stage") else ""
                self.say(f"  {state}{stage}{done}")
                last = now
            time.sleep(0.1)
        if result.failed():
            raise Step(f"task {result.id} failed: {result.info!r}")
        value = result.get(timeout=10)
        if not isinstance(value, dict) or value.get("status") != "succeeded":
            raise Step(f"task {result.id} did not succeed: {value!r}")
        self.say(f"  SUCCESS {value.get('operation')} status={value['status']}")
        return value

    def show_schedules(self) -> None:
        from django_celery_beat.models import PeriodicTask

        for task in PeriodicTask.objects.exclude(task__startswith="celery.").order_by("name"):
            when = task.crontab or task.interval
            self.say(f"schedule {task.name!r}: {task.task} at {when}")

    def show_history(self) -> None:
        from django_rclone_celery.models import BackupRun

        self.say(f"{'operation':<14} {'database':<9} {'status':<10} {'size':>8}  {'seconds':>7}")
        for run in BackupRun.objects.filter(created__gte=self.since).order_by("created", "id"):
            size = "" if run.size is None else str(run.size)
            seconds = "" if run.duration is None else f"{run.duration:.2f}"
            database = run.database or "-"
            self.say(f"{run.operation:<14} {database:<9} {run.status:<10} {size:>8}  {seconds:>7}")
