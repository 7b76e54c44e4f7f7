"""Claim, skip and finish runs in the ledger (:class:`~.models.BackupRun`).

A run is identified by ``(operation, database, slot)``. The first message to
create that row owns it; later messages find it and decide:

=========  ================================================================
row        what a new message does
=========  ================================================================
succeeded  skip: the work is done
running    skip if its owner still holds the database's lease; otherwise
           the owner died: take the row over (a restore marks it failed
           instead, since a restore runs at most once)
queued     the owner waits for the lease and will retry: skip (unless it is
           us retrying, or it has waited longer than ``LOCK_WAIT``). An
           owner that showed no sign of life (``seen``) for
           :func:`queued_timeout` lost its message (a broker restart): the
           new message takes the row over
failed     re-claim it and run again
=========  ================================================================

Taking a row over happens only while holding the database's lease, with an
``UPDATE ... WHERE`` on the state that was observed, so two workers can never
both win.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any, ParamSpec, TypeVar
from zoneinfo import ZoneInfo

from django.db import (
    DatabaseError,
    IntegrityError,
    OperationalError,
    connections,
    router,
    transaction,
)
from django.db.models import F
from django.utils import timezone

from .conf import get_settings
from .exceptions import ConfigurationError, DjangoRcloneCeleryError
from .models import BackupRun, Status

logger = logging.getLogger("django_rclone_celery")


class TooManyAttempts(DjangoRcloneCeleryError):
    """A run was started more often than ``TASK_MAX_RETRIES`` allows (its worker kept dying)."""


def ledger_alias() -> str:
    return router.db_for_write(BackupRun)


P = ParamSpec("P")
R = TypeVar("R")


def _file_replaced(exc: OperationalError) -> bool:
    """SQLite's answer to a write through a connection whose file a restore's swap replaced."""
    name = getattr(exc.__cause__, "sqlite_errorname", None)  # Python 3.11+
    if name is not None:
        return bool(name == "SQLITE_READONLY_DBMOVED")
    return "readonly database" in str(exc)


def survives_swap(func: Callable[P, R]) -> Callable[P, R]:
    """Write through a fresh connection when a restore replaced the SQLite ledger's file.

    Runs on other targets (and runs still waiting for the lease) write the
    ledger while a restore of its database may swap the file under their
    connection; SQLite then refuses every write on it. Reopening finds the
    new file, which holds the ledger written back by that restore.
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        connection = connections[ledger_alias()]
        with _one_writer(connection):
            try:
                return func(*args, **kwargs)
            except OperationalError as exc:
                if (
                    connection.vendor != "sqlite"
                    or connection.in_atomic_block
                    or not _file_replaced(exc)
                ):
                    raise
                logger.info("the ledger's database file was replaced; reconnecting")
                connection.close()
                return func(*args, **kwargs)

    return wrapper


# SQLite takes one writer at a time, and a writer that finds the file locked
# sleeps in steps of 1, 2, 5, 10... ms before it looks again. The writers of
# this process (several databases backed up at once) queue here instead, each
# woken as the write before it ends. Inside a transaction, not: it may already
# hold SQLite's lock, which the holder of this one could be waiting for.
_sqlite_writer = threading.RLock()


def _one_writer(connection: Any) -> AbstractContextManager[object]:
    if connection.vendor == "sqlite" and not connection.in_atomic_block:
        return _sqlite_writer
    return nullcontext()


# -- slots --------------------------------------------------------------------


def resolve_slot(
    *,
    task_id: str,
    slot: str | None = None,
    idempotency_key: str | None = None,
    periodic_task_name: str | None = None,
    now: datetime | None = None,
) -> str:
    """What makes two messages the same run.

    An explicit ``slot`` wins, then a manual ``idempotency_key``, then the beat
    schedule (``periodic_task_name`` header) floored to its period; a message
    with none of these is its own slot.
    """
    if slot:
        return slot[:255]
    if idempotency_key:
        return f"key:{idempotency_key}"[:255]
    if periodic_task_name:
        return f"beat:{periodic_task_name}:{beat_time(periodic_task_name, now)}"[:255]
    return f"task:{task_id}"[:255]


def beat_time(name: str, now: datetime | None = None) -> str:
    """The scheduled time a beat message for schedule ``name`` belongs to (ISO, UTC).

    Looked up in django-celery-beat's ``PeriodicTask`` (the admin may have
    edited it), else in ``DJANGO_RCLONE["SCHEDULES"]``; unknown schedules fall
    back to the minute.
    """
    now = (now or timezone.now()).astimezone(dt_timezone.utc)
    spec = _schedule_spec(name)
    when: datetime
    if spec is None:
        when = now.replace(second=0, microsecond=0)
    elif "every" in spec:
        every = max(int(spec["every"]), 1)
        when = datetime.fromtimestamp(int(now.timestamp()) // every * every, dt_timezone.utc)
    elif "clocked" in spec:
        when = spec["clocked"]
    else:
        when = previous_cron_time(spec["crontab"], spec.get("timezone") or "UTC", now)
    return when.astimezone(dt_timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


_PERIOD_SECONDS = {
    "days": 86400,
    "hours": 3600,
    "minutes": 60,
    "seconds": 1,
    "microseconds": 1,
}


def _schedule_spec(name: str) -> dict[str, Any] | None:
    from django.apps import apps

    if apps.is_installed("django_celery_beat"):
        from django_celery_beat.models import PeriodicTask

        task = (
            PeriodicTask.objects.filter(name=name)
            .select_related("interval", "crontab", "clocked")
            .first()
        )
        if task is not None:
            if task.interval is not None:
                every = task.interval.every * _PERIOD_SECONDS.get(task.interval.period, 1)
                return {"every": every}
            if task.crontab is not None:
                c = task.crontab
                fields = (c.minute, c.hour, c.day_of_month, c.month_of_year, c.day_of_week)
                return {"crontab": " ".join(fields), "timezone": str(c.timezone)}
            if task.clocked is not None:
                return {"clocked": task.clocked.clocked_time}
    # Without a PeriodicTask row (plain beat_schedule), the settings say it.
    from .schedules import spec_for

    found = spec_for(name)
    if found is None:
        return None
    if found.every:
        return {"every": found.every}
    return {"crontab": found.crontab, "timezone": found.timezone}


def previous_cron_time(expression: str, tz: str, now: datetime) -> datetime:
    """The latest time at or before ``now`` that the crontab matches, in ``tz``.

    Celery's semantics: day of month *and* day of week must both match.
    """
    from celery.schedules import crontab

    minute, hour, dom, month, dow = expression.split()
    cron: Any = crontab(  # its fields, parsed into sets of ints
        minute=minute, hour=hour, day_of_month=dom, month_of_year=month, day_of_week=dow
    )
    local = now.astimezone(ZoneInfo(tz)).replace(second=0, microsecond=0)
    day = local.date()
    for _ in range(366 * 8):  # 29 February on a given weekday recurs within 28 years
        if (
            day.month in cron.month_of_year
            and day.day in cron.day_of_month
            and day.isoweekday() % 7 in cron.day_of_week
        ):
            for h in sorted(cron.hour, reverse=True):
                for m in sorted(cron.minute, reverse=True):
                    candidate = datetime(day.year, day.month, day.day, h, m, tzinfo=ZoneInfo(tz))
                    if candidate <= local:
                        return candidate
        day -= timedelta(days=1)
    return local  # pragma: no cover - a crontab that never matches


# -- claiming -----------------------------------------------------------------


@survives_swap
def claim(operation: str, database: str, slot: str, task_id: str) -> tuple[BackupRun, bool]:
    """The ledger row for this run, created if new. Returns ``(row, created)``.

    A redelivered or retried message finds its row by task id, whatever slot
    it would compute now.
    """
    existing = BackupRun.objects.filter(task_id=task_id).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic(using=ledger_alias()):
            row = BackupRun.objects.create(
                operation=operation,
                database=database,
                slot=slot,
                task_id=task_id,
                seen=timezone.now(),
            )
        return row, True
    except IntegrityError:
        row = (
            BackupRun.objects.filter(operation=operation, database=database, slot=slot).first()
            or BackupRun.objects.filter(task_id=task_id).first()
        )
        if row is None:  # pragma: no cover - deleted between the insert and the read
            raise
        return row, False


def claim_for_caller(
    operation: str, database: str, slot: str, task_id: str
) -> tuple[BackupRun, bool]:
    """:func:`claim` for a person at a command or the admin: a ledger that cannot
    be written (not migrated, locked) is a one-line configuration error."""
    try:
        return claim(operation, database, slot, task_id)
    except DatabaseError as exc:
        reason = " ".join(str(exc).split())  # the driver's own may span lines
        raise ConfigurationError(
            f"cannot record the run in the ledger on {ledger_alias()!r} "
            f"({reason}); has `manage.py migrate` been run?"
        ) from exc


@dataclass(frozen=True)
class Verdict:
    run: bool
    reason: str = ""


def examine(
    row: BackupRun, task_id: str, owner_alive: bool, *, at_most_once: bool = False
) -> Verdict:
    """Whether this message should run ``row`` (pending the lease), and why not.

    ``owner_alive``: the run that marked ``row`` running still holds and
    renews the database's lease (see ``locks.Lease.owner_alive``).
    """
    if row.status == Status.SUCCEEDED:
        return Verdict(False, "already succeeded")
    if row.status == Status.FAILED:
        return Verdict(True)
    if row.status == Status.RUNNING:
        if owner_alive:
            return Verdict(False, "already running")
        if at_most_once:
            # Its worker died mid-run. Never run it again silently.
            abandon(row, "the worker died during this run; it was not retried")
            return Verdict(False, "abandoned by a dead worker; not retried")
        return Verdict(True)
    # queued
    if row.task_id == task_id:
        return Verdict(True)
    now = timezone.now()
    if now - row.created > timedelta(seconds=get_settings().lock_wait):
        return Verdict(True)
    if now - (row.seen or row.created) > timedelta(seconds=queued_timeout()):
        return Verdict(True)  # its message is gone: take_over() moves the row to us
    return Verdict(False, "already queued")


def queued_timeout() -> float:
    """Seconds without a sign of life after which a queued run's message counts as lost.

    A waiting task shows one at every retry (each ``LOCK_RETRY_DELAY`` to twice
    that); three lease TTLs leave room for a busy queue and stay in minutes
    (3 with the default ``LOCK_TTL``). In-process runs have slots of their
    own, which no other run shares, so they need none.
    """
    settings = get_settings()
    return max(3.0 * settings.lock_ttl, 6.0 * settings.lock_retry_delay)


@survives_swap
def take_over(row: BackupRun, task_id: str) -> BackupRun | None:
    """Move a queued row whose message was lost to message ``task_id``; None if it moved on."""
    if row.status != Status.QUEUED or row.task_id == task_id:
        return row
    try:
        with transaction.atomic(using=ledger_alias()):
            updated = BackupRun.objects.filter(
                pk=row.pk, status=Status.QUEUED, task_id=row.task_id
            ).update(task_id=task_id, seen=timezone.now(), attempts=0)
    except IntegrityError:  # pragma: no cover - our task id sits on another row
        return None
    if not updated:
        return None
    logger.warning(
        "%s %s: queued run %s showed no sign of life; %s takes over its slot %s",
        row.operation,
        row.database,
        row.task_id,
        task_id,
        row.slot,
    )
    fresh: BackupRun = BackupRun.objects.get(pk=row.pk)
    return fresh


@survives_swap
def abandon(row: BackupRun, error: str) -> None:
    BackupRun.objects.filter(pk=row.pk, status=row.status, lock_token=row.lock_token).update(
        status=Status.FAILED, error=error, finished=timezone.now()
    )


@survives_swap
def start(row: BackupRun, task_id: str, token: str, worker: str) -> BackupRun | None:
    """Mark ``row`` running for us, if nobody changed it since it was read.

    Call only while holding the database's lease. Returns the fresh row, or
    None if another run got there first.
    """
    attempts = F("attempts") + 1 if row.task_id == task_id else 1
    try:
        with transaction.atomic(using=ledger_alias()):
            updated = BackupRun.objects.filter(
                pk=row.pk, status=row.status, lock_token=row.lock_token, task_id=row.task_id
            ).update(
                status=Status.RUNNING,
                task_id=task_id,
                lock_token=token,
                worker=worker[:255],
                attempts=attempts,
                stage="",
                bytes_done=0,
                bytes_total=None,
                started=timezone.now(),
                finished=None,
                error="",
            )
    except IntegrityError:  # pragma: no cover - our task id sits on another row
        return None
    if not updated:
        return None
    fresh: BackupRun = BackupRun.objects.get(pk=row.pk)
    return fresh


def written_again_if_lost(row: BackupRun) -> BackupRun:
    """``row``, written again if the ledger no longer holds it.

    A restore of the ledger's own database writes back the rows it saw just
    before its swap; a row claimed in that instant is not among them. Call
    with a fresh connection, once the lease is held.
    """
    if BackupRun.objects.filter(task_id=row.task_id).exists():
        return row
    again, created = claim(row.operation, row.database, row.slot, row.task_id)
    if created:
        logger.warning("run %s: its ledger row was lost in a swap; written again", row.task_id)
        return again
    return row  # its slot holds another run's row now: start() finds ours gone and skips


@survives_swap
def reap_abandoned(database: str, keep: BackupRun) -> int:
    """Mark runs on ``database`` that are still "running" as failed: their worker died.

    Call only while holding ``database``'s lease: nobody else can be running
    on it then, so such rows belong to workers that were killed (a hard time
    limit, OOM, a crash) and will never finish them.
    """
    reaped: int = (
        BackupRun.objects.filter(database=database, status=Status.RUNNING)
        .exclude(pk=keep.pk)
        .update(
            status=Status.FAILED,
            finished=timezone.now(),
            error="abandoned: its worker died (killed, hard time limit or crash)",
        )
    )
    return reaped


@survives_swap
def refused(row: BackupRun) -> None:
    """Count a delivery refused at the door as an attempt (it will not be retried)."""
    BackupRun.objects.filter(pk=row.pk, task_id=row.task_id).update(
        attempts=F("attempts") + 1, started=timezone.now()
    )


@survives_swap
def mark_queued(row: BackupRun) -> None:
    BackupRun.objects.filter(pk=row.pk, status=Status.QUEUED).update(
        stage="waiting for lock", seen=timezone.now()
    )


def progress(row: BackupRun, stage: str, bytes_done: int, bytes_total: int | None) -> None:
    """Best effort: progress is for people watching, and a SQLite ledger in the file
    being dumped stays locked by the dump's reader until the stream ends."""
    try:
        _progress(row, stage, bytes_done, bytes_total)
    except OperationalError as exc:
        logger.info("progress of run %s not recorded: %s", row.pk, exc)


@survives_swap
def _progress(row: BackupRun, stage: str, bytes_done: int, bytes_total: int | None) -> None:
    BackupRun.objects.filter(pk=row.pk, status=Status.RUNNING, lock_token=row.lock_token).update(
        stage=stage[:32], bytes_done=bytes_done, bytes_total=bytes_total
    )


@survives_swap
def succeed(row: BackupRun, result: dict[str, Any]) -> None:
    size = result.get("size")
    BackupRun.objects.filter(pk=row.pk).update(
        status=Status.SUCCEEDED,
        finished=timezone.now(),
        path=str(result.get("path") or "")[:1024],
        size=size if isinstance(size, int) else None,
        result=result,
        error="",
    )


@survives_swap
def fail(row: BackupRun, exc: BaseException) -> None:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    BackupRun.objects.filter(pk=row.pk).update(
        status=Status.FAILED, finished=timezone.now(), error=text[:10000]
    )


# -- surviving a restore of the ledger's own database -------------------------


@dataclass(frozen=True)
class Snapshot:
    rows: list[dict[str, Any]]
    taken: datetime


def take_snapshot() -> Snapshot:
    """Every ledger row, before a restore replaces the database holding them."""
    return Snapshot(list(BackupRun.objects.order_by("pk").values()), timezone.now())


def write_back(snapshot: Snapshot) -> None:
    """Make the ledger what it was before the restore.

    The restored database holds the ledger as it was when the backup was
    taken; rows from before the snapshot are replaced by the snapshot's.
    """
    from django.core.management.color import no_style
    from django.db import connections

    alias = ledger_alias()
    with transaction.atomic(using=alias):
        BackupRun.objects.filter(created__lte=snapshot.taken).delete()
        BackupRun.objects.filter(pk__in=[r["id"] for r in snapshot.rows]).delete()
        BackupRun.objects.bulk_create([BackupRun(**r) for r in snapshot.rows])
        # Explicit ids do not move PostgreSQL's sequence: reset it past them.
        connection = connections[alias]
        statements = connection.ops.sequence_reset_sql(no_style(), [BackupRun])
        if statements:
            with connection.cursor() as cursor:
                for sql in statements:
                    cursor.execute(sql)
