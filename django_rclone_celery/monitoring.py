"""Freshness: how old each database's and the media's newest backup and drill are.

Everything here reads the run ledger (:class:`~.models.BackupRun`). A
*target* is a database alias or ``"media"``. For each one, :func:`status`
reports the newest successful backup, the newest successful restore drill
(``db_verify`` with ``restore=True``), the last failure, and whether each
is within ``MAX_BACKUP_AGE`` / ``MAX_VERIFY_AGE``. ``backupstatus``, the
admin summary, the metrics view and the watchdog all read it from here.

The watchdog (:func:`watch`) remembers each target's state in
:class:`~.models.Watch` and alerts only when it changes: once when a target
becomes overdue, once when it recovers.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

from django.db import connections
from django.utils import timezone

from . import signals
from .conf import Settings, get_settings
from .models import BackupRun, Freshness, Operation, Status, Watch
from .notify import first_line as first_line  # where the admin has always found it
from .notify import mail_alert

logger = logging.getLogger("django_rclone_celery")

MEDIA = "media"
BACKUP_OPERATIONS = {
    # A pgclone dump is a backup of its alias too.
    "db": (Operation.DB_BACKUP, Operation.PGCLONE_DUMP),
    MEDIA: (Operation.MEDIA_BACKUP,),
}
State = Literal["ok", "late", "failing"]


def targets() -> list[str]:
    """Every database alias, then ``"media"``."""
    return [*connections.settings, MEDIA]


def limit_for(limits: Mapping[str, int | None], target: str) -> int | None:
    """``target``'s limit in seconds, from its own entry or ``"*"``; None: no limit."""
    return limits[target] if target in limits else limits.get("*")


@dataclass(frozen=True)
class RunInfo:
    """A finished run, as monitors see it."""

    run: int
    operation: str
    finished: datetime
    age: float  # seconds since it finished
    size: int | None
    duration: float | None
    path: str

    @classmethod
    def of(cls, row: BackupRun, now: datetime) -> RunInfo:
        finished = row.finished or row.created
        return cls(
            run=row.pk,
            operation=row.operation,
            finished=finished,
            age=max(0.0, (now - finished).total_seconds()),
            size=row.size,
            duration=row.duration,
            path=row.path,
        )


@dataclass(frozen=True)
class Failure:
    run: int
    operation: str
    finished: datetime
    stage: str
    error: str  # its first line

    @classmethod
    def of(cls, row: BackupRun) -> Failure:
        return cls(
            run=row.pk,
            operation=row.operation,
            finished=row.finished or row.created,
            stage=row.stage,
            error=first_line(row.error),
        )


@dataclass(frozen=True)
class TargetStatus:
    target: str
    last_backup: RunInfo | None
    last_verified: RunInfo | None  # None for media: it has no restore drill
    last_restore: RunInfo | None  # the newest successful restore or restore drill
    last_failure: Failure | None
    max_backup_age: int | None
    max_verify_age: int | None
    backup_fresh: bool  # within MAX_BACKUP_AGE (always, without a limit)
    verify_fresh: bool
    failing: bool  # the newest finished backup run failed

    @property
    def state(self) -> State:
        if self.failing:
            return "failing"
        if not (self.backup_fresh and self.verify_fresh):
            return "late"
        return "ok"

    @property
    def ok(self) -> bool:
        return self.state == "ok"

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(state=self.state, ok=self.ok)
        return data


def _fresh(info: RunInfo | None, limit: int | None) -> bool:
    if limit is None:
        return True
    return info is not None and info.age <= limit


def target_status(
    target: str, settings: Settings | None = None, now: datetime | None = None
) -> TargetStatus:
    settings = settings or get_settings()
    now = now or timezone.now()
    database = "" if target == MEDIA else target
    operations = BACKUP_OPERATIONS[MEDIA if target == MEDIA else "db"]
    runs = BackupRun.objects.filter(database=database)
    backups = runs.filter(operation__in=operations)
    newest = backups.filter(status=Status.SUCCEEDED).order_by("-finished", "-id").first()
    last_backup = RunInfo.of(newest, now) if newest else None
    last_verified: RunInfo | None = None
    if target != MEDIA:
        drill = (
            runs.filter(
                operation=Operation.DB_VERIFY, status=Status.SUCCEEDED, result__restored=True
            )
            .order_by("-finished", "-id")
            .first()
        )
        last_verified = RunInfo.of(drill, now) if drill else None
    restores = runs.filter(status=Status.SUCCEEDED, operation=Operation.DB_RESTORE)
    if target == MEDIA:
        restores = runs.filter(status=Status.SUCCEEDED, operation=Operation.MEDIA_RESTORE)
    restored = restores.order_by("-finished", "-id").first()
    last_restore = RunInfo.of(restored, now) if restored else None
    if last_verified and (last_restore is None or last_verified.finished > last_restore.finished):
        last_restore = last_verified
    failed = runs.filter(status=Status.FAILED).order_by("-finished", "-id").first()
    latest = (
        backups.filter(status__in=(Status.SUCCEEDED, Status.FAILED))
        .order_by("-finished", "-id")
        .first()
    )
    max_backup = limit_for(settings.max_backup_age, target)
    max_verify = None if target == MEDIA else limit_for(settings.max_verify_age, target)
    return TargetStatus(
        target=target,
        last_backup=last_backup,
        last_verified=last_verified,
        last_restore=last_restore,
        last_failure=Failure.of(failed) if failed else None,
        max_backup_age=max_backup,
        max_verify_age=max_verify,
        backup_fresh=_fresh(last_backup, max_backup),
        verify_fresh=_fresh(last_verified, max_verify),
        failing=latest is not None and latest.status == Status.FAILED,
    )


def status(settings: Settings | None = None, now: datetime | None = None) -> list[TargetStatus]:
    """Every target's status, databases in settings order, then media."""
    settings = settings or get_settings()
    now = now or timezone.now()
    return [target_status(t, settings, now) for t in targets()]


# -- the watchdog -------------------------------------------------------------


@dataclass(frozen=True)
class Alert:
    """One change of a target's freshness, sent as ``backup_overdue``."""

    target: str
    kind: str  # "backup" or "verify"
    recovered: bool
    limit: int
    age: float | None  # seconds; None: never
    last: datetime | None

    @property
    def database(self) -> str | None:
        return None if self.target == MEDIA else self.target

    def describe(self) -> str:
        what = "backup" if self.kind == Freshness.BACKUP else "restore drill"
        subject = "media" if self.target == MEDIA else f"database {self.target!r}"
        if self.recovered:
            return f"{subject}: a new {what} succeeded; it is within its limit again"
        if self.age is None:
            return f"{subject} has no successful {what} (limit {self.limit} s)"
        return (
            f"{subject}: the newest successful {what} is {self.age:.0f} s old "
            f"(limit {self.limit} s)"
        )


def _checks(item: TargetStatus) -> list[tuple[str, int, RunInfo | None, bool]]:
    found = []
    if item.max_backup_age is not None:
        found.append(
            (str(Freshness.BACKUP), item.max_backup_age, item.last_backup, item.backup_fresh)
        )
    if item.max_verify_age is not None:
        found.append(
            (str(Freshness.VERIFY), item.max_verify_age, item.last_verified, item.verify_fresh)
        )
    return found


def watch(settings: Settings | None = None, now: datetime | None = None) -> list[Alert]:
    """Compare every target with its limits; alert on each change, and only then.

    The state change is a conditional ``UPDATE``: of two watchdog runs seeing
    the same change, one alerts.
    """
    settings = settings or get_settings()
    now = now or timezone.now()
    alerts = []
    for item in status(settings, now):
        for kind, limit, info, fresh in _checks(item):
            row, _ = Watch.objects.get_or_create(target=item.target, kind=kind)
            alert = Alert(
                target=item.target,
                kind=kind,
                recovered=fresh,
                limit=limit,
                age=info.age if info else None,
                last=info.finished if info else None,
            )
            changes: dict[str, Any] = {
                "overdue": not fresh,
                "since": None if fresh else now,
                "detail": "" if fresh else alert.describe(),
            }
            # Matches only a change: fresh now and overdue before, or the reverse.
            # A new row starts fresh, so a target fresh from the start never alerts.
            if Watch.objects.filter(pk=row.pk, overdue=fresh).update(**changes):
                alerts.append(alert)
    for alert in alerts:
        _announce(alert)
    return alerts


def _announce(alert: Alert) -> None:
    logger.warning("backup watchdog: %s", alert.describe())
    signals.backup_overdue.send_robust(
        sender="watchdog",
        target=alert.target,
        database=alert.database,
        kind=alert.kind,
        recovered=alert.recovered,
        age=alert.age,
        limit=alert.limit,
        last=alert.last,
    )
    mail_alert(alert)
