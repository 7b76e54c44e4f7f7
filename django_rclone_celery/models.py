"""The run ledger: one row per idempotent unit of work, and the run history.

A row is claimed before an operation starts. ``(operation, database, slot)``
is unique, so a second message for the same slot (or a redelivered copy of
the same message) finds the row and does not run again. ``task_id`` is
unique too: it survives redelivery and retries.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from .registry import OPERATIONS


class Status(models.TextChoices):
    QUEUED = "queued"  # claimed, waiting for the database's lock
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


# The operations come from the registry (one list for the ledger, the tasks,
# the schedules, the admin and the commands).
Operation = models.TextChoices(  # type: ignore[call-overload]
    "Operation", [(op.name.upper(), op.name) for op in OPERATIONS]
)


class BackupRun(models.Model):
    """One run of one operation (backup, restore, cleanup, media sync...)."""

    operation = models.CharField(max_length=32, choices=Operation.choices)
    # The database alias; "" for media operations, which have none.
    database = models.CharField(max_length=100, blank=True, default="")
    # What makes two messages "the same run": "beat:<schedule>:<time>",
    # "key:<idempotency key>" or "task:<task id>".
    slot = models.CharField(max_length=255)
    task_id = models.CharField(max_length=255, unique=True)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    stage = models.CharField(max_length=32, blank=True, default="")
    bytes_done = models.BigIntegerField(default=0)
    bytes_total = models.BigIntegerField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # The lease token of the run holding the database's lock; tells a live
    # run from one whose worker died.
    lock_token = models.CharField(max_length=64, blank=True, default="")
    worker = models.CharField(max_length=255, blank=True, default="")
    created = models.DateTimeField(default=timezone.now, editable=False, db_index=True)
    started = models.DateTimeField(null=True, blank=True)
    # The last sign of life of a run waiting for the lease; a queued row
    # whose owner stopped showing any is taken over (ledger.examine).
    seen = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    path = models.CharField(max_length=1024, blank=True, default="")
    size = models.BigIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    result = models.JSONField(null=True, blank=True)

    class Meta:
        verbose_name = "run"
        verbose_name_plural = "runs"
        ordering = ("-created", "-id")
        constraints = [
            models.UniqueConstraint(
                fields=["operation", "database", "slot"], name="drc_run_unique_slot"
            )
        ]
        permissions = [
            ("run_backup", "Can start backups and cleanups"),
            ("run_restore", "Can start restores"),
        ]

    def __str__(self) -> str:
        target = f" {self.database}" if self.database else ""
        return f"{self.operation}{target} [{self.slot}] {self.status}"

    @property
    def duration(self) -> float | None:
        """Seconds between start and finish, if both are known."""
        if self.started and self.finished:
            return (self.finished - self.started).total_seconds()
        return None


class Freshness(models.TextChoices):
    BACKUP = "backup"  # the newest successful backup
    VERIFY = "verify"  # the newest successful restore drill (verifybackup --restore)


class Watch(models.Model):
    """The watchdog's memory: is ``target``'s ``kind`` overdue, and since when.

    One row per target and kind. Alerts fire on a change of ``overdue`` only,
    made by a conditional ``UPDATE``, so two watchdog runs never alert twice.
    """

    target = models.CharField(max_length=100)  # a database alias or "media"
    kind = models.CharField(max_length=16, choices=Freshness.choices)
    overdue = models.BooleanField(default=False)
    since = models.DateTimeField(null=True, blank=True)  # when it became overdue
    detail = models.TextField(blank=True, default="")

    class Meta:
        verbose_name = "freshness watch"
        constraints = [
            models.UniqueConstraint(fields=["target", "kind"], name="drc_watch_unique_target")
        ]

    def __str__(self) -> str:
        return f"{self.target} {self.kind}: {'overdue' if self.overdue else 'fresh'}"
