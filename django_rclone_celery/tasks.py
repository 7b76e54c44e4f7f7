"""Celery tasks: each one a thin, idempotent wrapper over one operation.

Every task goes through :func:`run_operation`:

1. resolve the run's slot and claim its row in the ledger (own transaction);
   a duplicate finds the row and is skipped;
2. take the database's lease lock; if another operation holds it, retry
   later (the message is re-published with a countdown, no worker waits);
3. run the operation with progress reported to the task state (``PROGRESS``)
   and to the ledger row, the lease renewed by a heartbeat;
4. record success or failure; transient rclone errors retry with
   exponential backoff and jitter, everything else fails at once.

Names are stable (``PeriodicTask.task`` stores them). Arguments are
keyword-only primitives.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

from celery import Task, shared_task
from celery.exceptions import Ignore
from celery.utils.time import get_exponential_backoff_interval
from django.db import connections
from django.utils import timezone

from . import ledger, notify, signals
from .conf import get_settings
from .exceptions import OperationBusy, RcloneError
from .locks import Heartbeat, lease
from .models import BackupRun, Operation, Status
from .operations import (
    Progress,
    backup_database,
    backup_media,
    cleanup_backups,
    restore_database,
    restore_media,
    verify_backup,
)

logger = logging.getLogger("django_rclone_celery")

LEDGER_PROGRESS_INTERVAL = 2.0  # seconds between progress writes to the ledger row
MEDIA_LOCK = "media"  # the lease shared by media backup and restore


class OperationTask(Task):  # type: ignore[type-arg]
    """Defaults for long, idempotent operations (backups, media backup, cleanup).

    ``acks_late`` + ``reject_on_worker_lost``: a run whose worker dies is
    delivered again, and the ledger (which counts attempts, capped by
    ``TASK_MAX_RETRIES``) turns that into one more attempt rather than a loop.
    Time limits come from ``TASK_TIME_LIMIT`` / ``TASK_SOFT_TIME_LIMIT``,
    read when the worker starts.
    """

    acks_late = True
    reject_on_worker_lost = True
    # Retries are counted in the ledger (attempts, capped by TASK_MAX_RETRIES);
    # waiting for a busy database's lock is bounded by LOCK_WAIT instead.
    max_retries = None
    retry_backoff = 5
    retry_backoff_max = 600
    retry_jitter = True
    _time_limit: float | None = None
    _soft_time_limit: float | None = None

    @property  # type: ignore[override]
    def time_limit(self) -> float:
        return self._time_limit or get_settings().task_time_limit

    @time_limit.setter
    def time_limit(self, value: float | None) -> None:  # set by ``app.control.time_limit``
        self._time_limit = value

    @property  # type: ignore[override]
    def soft_time_limit(self) -> float:
        return self._soft_time_limit or get_settings().task_soft_time_limit

    @soft_time_limit.setter
    def soft_time_limit(self, value: float | None) -> None:
        self._soft_time_limit = value

    def _get_exec_options(self) -> dict[str, Any]:
        # Celery copies (and caches) a task's time limits into every message
        # the sending process publishes. Leave them out: the worker's own
        # settings apply, read when it starts. Limits passed explicitly to
        # apply_async() still travel with the message.
        options = dict(super()._get_exec_options())  # type: ignore[misc]
        options.pop("time_limit", None)
        options.pop("soft_time_limit", None)
        return options


class AtMostOnceTask(OperationTask):
    """Restores: acknowledged before they run, so a crash never re-runs one."""

    acks_late = False
    reject_on_worker_lost = False


class _Recorder:
    """The operation's progress callback: task state and (throttled) ledger row.

    When the operation is about to swap in a restored copy of the database
    that holds the ledger, it snapshots the ledger so it can be written back.
    """

    def __init__(self, task: Task, row: BackupRun, protect_ledger: bool) -> None:  # type: ignore[type-arg]
        self.task = task
        self.row = row
        self.protect_ledger = protect_ledger
        self.snapshot: ledger.Snapshot | None = None
        self._stage = ""
        self._last_write = 0.0

    def __call__(self, p: Progress) -> None:
        if self.protect_ledger and p.stage == "swap" and self.snapshot is None:
            self.snapshot = ledger.take_snapshot()
            # The swap replaces the database under this connection.
            connections[ledger.ledger_alias()].close()
        meta = {
            "operation": p.operation,
            "database": p.database,
            "stage": p.stage,
            "bytes_done": p.bytes_done,
            "bytes_total": p.bytes_total,
            "run_id": p.run_id,
        }
        if not self.task.request.called_directly:
            self.task.update_state(state="PROGRESS", meta=meta)
        now = time.monotonic()
        if self.snapshot is None and (
            p.stage != self._stage or now - self._last_write >= LEDGER_PROGRESS_INTERVAL
        ):
            self._stage, self._last_write = p.stage, now
            ledger.progress(self.row, p.stage, p.bytes_done, p.bytes_total)

    def restore_ledger(self) -> None:
        if self.snapshot is not None:
            connections[ledger.ledger_alias()].close()
            ledger.write_back(self.snapshot)


def _same_database(alias: str | None, other: str) -> bool:
    if alias is None:
        return False
    if alias == other:
        return True
    a, b = connections.settings[alias], connections.settings[other]
    keys = ("ENGINE", "NAME", "HOST", "PORT")
    return all(str(a.get(k) or "") == str(b.get(k) or "") for k in keys)


def _skipped(operation: str, database: str | None, row: BackupRun, reason: str) -> dict[str, Any]:
    return {
        "status": "skipped",
        "reason": reason,
        "operation": operation,
        "database": database,
        "slot": row.slot,
        "run": row.pk,
        "task_id": row.task_id,
        "path": row.path or None,
        "size": row.size,
    }


def run_operation(
    task: Task,  # type: ignore[type-arg]
    operation: str,
    database: str | None,
    func: Callable[..., Any],
    /,
    *,
    slot: str | None = None,
    idempotency_key: str | None = None,
    lock_target: str | None = None,
    at_most_once: bool = False,
    **kwargs: Any,
) -> dict[str, Any]:
    """Run ``func(**kwargs, run_id=..., progress=...)`` once per slot, under the lease.

    ``database`` is the alias the run is recorded and locked under (None for
    media); pass it in ``kwargs`` too if ``func`` takes it. Returns the
    operation's ``as_dict()`` plus ``task_id``, ``slot`` and ``run`` (the
    ledger row's id), or a ``skipped`` dict. Failures raise, so Celery records
    them as ``FAILURE``; the ledger row says ``failed``.
    """
    request = task.request
    task_id = request.id or uuid.uuid4().hex
    the_slot = ledger.resolve_slot(
        task_id=task_id,
        slot=slot,
        idempotency_key=idempotency_key,
        periodic_task_name=getattr(request, "periodic_task_name", None),
    )
    row, _ = ledger.claim(operation, database or "", the_slot, task_id)
    lock = lease(lock_target or database or MEDIA_LOCK)
    alive = (
        row.status == Status.RUNNING and bool(row.lock_token) and lock.owner_alive(row.lock_token)
    )
    verdict = ledger.examine(row, task_id, alive, at_most_once=at_most_once)
    if not verdict.run:
        return _skip(task, operation, database, row, task_id, verdict.reason)

    if not lock.acquire():
        return _wait_for_lease(task, operation, database, row)
    try:
        with Heartbeat(lock):
            started = ledger.start(row, task_id, lock.token, request.hostname or "")
            if started is None:
                return _skipped(operation, database, row, "claimed by another run")
            notify.run_started(started)
            if lock_target in (None, database):
                dead = notify.running_elsewhere(database or "", started)
                ledger.reap_abandoned(database or "", keep=started)
                notify.runs_abandoned(dead)  # they failed silently: say it once
            return _execute(task, operation, database, func, started, at_most_once, kwargs)
    finally:
        lock.release()


def _skip(
    task: Task,  # type: ignore[type-arg]
    operation: str,
    database: str | None,
    row: BackupRun,
    task_id: str,
    reason: str,
) -> dict[str, Any]:
    logger.warning(
        "%s %s: skipped task %s (slot %s): %s", operation, database or "", task_id, row.slot, reason
    )
    if row.task_id == task_id and not task.request.called_directly:
        # A second delivery of the same message: keep the first one's result.
        raise Ignore()
    return _skipped(operation, database, row, reason)


def _wait_for_lease(
    task: Task,  # type: ignore[type-arg]
    operation: str,
    database: str | None,
    row: BackupRun,
) -> dict[str, Any]:
    """Another operation holds the database: re-publish with a countdown."""
    settings = get_settings()
    target = database or MEDIA_LOCK
    fresh = BackupRun.objects.get(pk=row.pk)
    waited = (timezone.now() - fresh.created).total_seconds()
    if waited > settings.lock_wait or task.request.called_directly:
        exc = OperationBusy(f"another operation holds the lock on {target!r}")
        ledger.fail(fresh, exc)
        notify.run_finished(fresh, exc)
        raise exc
    ledger.mark_queued(fresh)
    countdown = settings.lock_retry_delay * (1 + random.random())  # noqa: S311 - jitter only
    logger.info(
        "%s %s: %s is busy, retrying in %.1f s", operation, database or "", target, countdown
    )
    raise task.retry(countdown=countdown)


def _execute(
    task: Task,  # type: ignore[type-arg]
    operation: str,
    database: str | None,
    func: Callable[..., Any],
    row: BackupRun,
    at_most_once: bool,
    kwargs: dict[str, Any],
) -> dict[str, Any]:
    settings = get_settings()
    if row.attempts > settings.task_max_retries + 1:
        exc = _too_many_attempts(row)
        ledger.fail(row, exc)
        _signal_failure(operation, database, row, exc)
        notify.run_finished(row, exc)
        raise exc
    recorder = _Recorder(
        task, row, at_most_once and _same_database(database, ledger.ledger_alias())
    )
    signalled: list[BaseException] = []

    def seen(sender: Any, exception: BaseException, run_id: str, **kw: Any) -> None:
        if run_id == row.task_id:
            signalled.append(exception)

    signals.stage_failed.connect(seen, weak=False)
    try:
        result = func(**kwargs, run_id=row.task_id, progress=recorder)
    except BaseException as exc:
        signals.stage_failed.disconnect(seen)
        recorder.restore_ledger()
        ledger.fail(row, exc)
        if not signalled:
            _signal_failure(operation, database, row, exc)
        retry = (
            isinstance(exc, RcloneError)
            and exc.transient
            and not at_most_once
            and row.attempts <= settings.task_max_retries
            and not task.request.called_directly
        )
        notify.run_finished(row, exc, final=not retry)  # only the last attempt mails
        if retry and isinstance(exc, RcloneError):
            countdown = get_exponential_backoff_interval(
                factor=int(getattr(task, "retry_backoff", OperationTask.retry_backoff)),
                retries=row.attempts - 1,
                maximum=int(getattr(task, "retry_backoff_max", OperationTask.retry_backoff_max)),
                full_jitter=bool(getattr(task, "retry_jitter", True)),
            )
            logger.warning("%s: transient error, retry in %s s: %s", operation, countdown, exc)
            raise task.retry(exc=exc, countdown=countdown) from exc
        raise
    signals.stage_failed.disconnect(seen)
    recorder.restore_ledger()
    payload = dict(result.as_dict())
    payload.update(task_id=row.task_id, slot=row.slot, run=row.pk)
    ledger.succeed(row, payload)
    notify.run_finished(row, None)
    return payload


def _too_many_attempts(row: BackupRun) -> ledger.TooManyAttempts:
    return ledger.TooManyAttempts(
        f"{row.operation} {row.database} (slot {row.slot}) was started {row.attempts - 1} "
        "times without finishing; giving up"
    )


def _signal_failure(
    operation: str, database: str | None, row: BackupRun, exc: BaseException
) -> None:
    """``stage_failed`` for failures outside any stage (the operations send the rest)."""
    signals.stage_failed.send_robust(
        sender=operation,
        operation=operation,
        stage=row.stage or "task",
        database=database,
        run_id=row.task_id,
        exception=exc,
    )


# -- the tasks ---------------------------------------------------------------


@shared_task(bind=True, base=OperationTask, name="django_rclone_celery.db_backup")
def db_backup(
    self: Task,  # type: ignore[type-arg]
    *,
    database: str = "default",
    clean: bool = False,
    format: str = "native",
    compression: str | None = None,
    slot: str | None = None,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """Back up ``database``; with ``clean``, apply retention afterwards.

    ``format="portable"`` stores dumpdb's JSON lines (restorable into another
    engine); ``compression`` overrides ``COMPRESSION`` for this run.
    """
    return run_operation(
        self,
        Operation.DB_BACKUP,
        database,
        backup_database,
        slot=slot,
        idempotency_key=idempotency_key,
        database=database,
        clean=clean,
        format=format,
        compression=compression,
    )


@shared_task(bind=True, base=OperationTask, name="django_rclone_celery.portable_backup")
def portable_backup(
    self: Task,  # type: ignore[type-arg]
    *,
    database: str = "default",
    clean: bool = False,
    slot: str | None = None,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """A portable backup of ``database`` (``db_backup`` with ``format="portable"``)."""
    return run_operation(
        self,
        Operation.DB_BACKUP,
        database,
        backup_database,
        slot=slot,
        idempotency_key=idempotency_key,
        database=database,
        clean=clean,
        format="portable",
    )


@shared_task(bind=True, base=AtMostOnceTask, name="django_rclone_celery.db_restore")
def db_restore(
    self: Task,  # type: ignore[type-arg]
    *,
    database: str = "default",
    input_path: str | None = None,
    slot: str | None = None,
    idempotency_key: str | None = None,
    from_database: str | None = None,
) -> dict[str, Any]:
    """Restore ``database`` from ``input_path`` (default: its latest backup). At most once.

    ``from_database`` restores another alias's backups into ``database``; the
    run is recorded and locked under ``database``, the one being replaced.
    """
    return run_operation(
        self,
        Operation.DB_RESTORE,
        database,
        restore_database,
        slot=slot,
        idempotency_key=idempotency_key,
        at_most_once=True,
        database=database,
        input_path=input_path,
        from_database=from_database,
    )


@shared_task(bind=True, base=OperationTask, name="django_rclone_celery.db_cleanup")
def db_cleanup(
    self: Task,  # type: ignore[type-arg]
    *,
    database: str = "default",
    keep: int | None = None,
    slot: str | None = None,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """Keep the newest ``keep`` backups of ``database`` (default ``DB_CLEANUP_KEEP``)."""
    return run_operation(
        self,
        Operation.DB_CLEANUP,
        database,
        cleanup_backups,
        slot=slot,
        idempotency_key=idempotency_key,
        database=database,
        keep=keep,
    )


@shared_task(bind=True, base=OperationTask, name="django_rclone_celery.db_verify")
def db_verify(
    self: Task,  # type: ignore[type-arg]
    *,
    database: str = "default",
    input_path: str | None = None,
    from_database: str | None = None,
    restore: bool = False,
    slot: str | None = None,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """Verify ``input_path`` (default: the latest backup) of ``database``; see ``verify_backup``.

    Read-only, so it may run again after a lost worker (acks late). It holds
    the database's lease like every run: ``restore=True`` stages a scratch
    copy where a restore would, and whoever takes a database's lease marks
    every other running row of that database abandoned.
    """
    return run_operation(
        self,
        Operation.DB_VERIFY,
        database,
        verify_backup,
        slot=slot,
        idempotency_key=idempotency_key,
        database=database,
        input_path=input_path,
        from_database=from_database,
        restore=restore,
    )


@shared_task(bind=True, base=OperationTask, name="django_rclone_celery.media_backup")
def media_backup(
    self: Task,  # type: ignore[type-arg]
    *,
    allow_empty: bool = False,
    max_delete: int | str | None = None,
    clean: bool = False,
    slot: str | None = None,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """Mirror ``MEDIA_ROOT`` to the remote, keeping history; see ``backup_media``."""
    return run_operation(
        self,
        Operation.MEDIA_BACKUP,
        None,
        backup_media,
        slot=slot,
        idempotency_key=idempotency_key,
        allow_empty=allow_empty,
        max_delete=max_delete,
        clean=clean,
    )


@shared_task(bind=True, base=AtMostOnceTask, name="django_rclone_celery.media_restore")
def media_restore(
    self: Task,  # type: ignore[type-arg]
    *,
    at: str | None = None,
    allow_empty: bool = False,
    max_delete: int | str | None = None,
    slot: str | None = None,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """Restore ``MEDIA_ROOT`` from the mirror, or as at media point ``at``. At most once."""
    return run_operation(
        self,
        Operation.MEDIA_RESTORE,
        None,
        restore_media,
        slot=slot,
        idempotency_key=idempotency_key,
        at_most_once=True,
        at=at,
        allow_empty=allow_empty,
        max_delete=max_delete,
    )


# -- pgclone -----------------------------------------------------------------


def _pgclone_alias(database: str | None, config: str | None) -> str:
    """The alias a pgclone run is locked and recorded under (flag > config > setting)."""
    from .pgclone.conf import resolve

    return resolve(config=config, database=database).database


@shared_task(bind=True, base=OperationTask, name="django_rclone_celery.pgclone_dump")
def pgclone_dump(
    self: Task,  # type: ignore[type-arg]
    *,
    database: str | None = None,
    config: str | None = None,
    exclude: list[str] | None = None,
    pre_dump_hooks: list[str] | None = None,
    instance: str | None = None,
    storage_location: str | None = None,
    slot: str | None = None,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """``pgclone dump``; the result's ``dump_key`` names the new dump."""
    from .pgclone.dump import dump_run

    alias = _pgclone_alias(database, config)
    return run_operation(
        self,
        Operation.PGCLONE_DUMP,
        alias,
        dump_run,
        slot=slot,
        idempotency_key=idempotency_key,
        database=alias,
        config=config,
        exclude=exclude,
        pre_dump_hooks=pre_dump_hooks,
        instance=instance,
        storage_location=storage_location,
    )


@shared_task(bind=True, base=AtMostOnceTask, name="django_rclone_celery.pgclone_restore")
def pgclone_restore(
    self: Task,  # type: ignore[type-arg]
    *,
    dump_key: str | None = None,
    database: str | None = None,
    config: str | None = None,
    pre_swap_hooks: list[str] | None = None,
    reversible: bool | None = None,
    storage_location: str | None = None,
    slot: str | None = None,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """``pgclone restore`` of a key, a prefix or a local ``:name``. At most once."""
    from .pgclone.restore import restore_run

    alias = _pgclone_alias(database, config)
    return run_operation(
        self,
        Operation.PGCLONE_RESTORE,
        alias,
        restore_run,
        slot=slot,
        idempotency_key=idempotency_key,
        at_most_once=True,
        dump_key=dump_key,
        database=alias,
        config=config,
        pre_swap_hooks=pre_swap_hooks,
        reversible=reversible,
        storage_location=storage_location,
    )


@shared_task(bind=True, base=AtMostOnceTask, name="django_rclone_celery.pgclone_copy")
def pgclone_copy(
    self: Task,  # type: ignore[type-arg]
    *,
    dump_key: str,
    database: str | None = None,
    config: str | None = None,
    slot: str | None = None,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """``pgclone copy :name`` (the admin's "copy now"). At most once."""
    from .pgclone.copy import copy_run

    alias = _pgclone_alias(database, config)
    return run_operation(
        self,
        Operation.PGCLONE_COPY,
        alias,
        copy_run,
        slot=slot,
        idempotency_key=idempotency_key,
        at_most_once=True,
        dump_key=dump_key,
        database=alias,
        config=config,
    )


# -- monitoring ----------------------------------------------------------------


@shared_task(name="django_rclone_celery.watchdog", ignore_result=True)
def watchdog() -> list[dict[str, Any]]:
    """Alert once when a backup or restore drill becomes overdue, once when it recovers.

    Installed with the schedules (every ``WATCHDOG_INTERVAL`` seconds) when
    ``MAX_BACKUP_AGE`` or ``MAX_VERIFY_AGE`` is set. Reads the ledger only:
    no run row, no lease.
    """
    from .monitoring import watch

    return [
        {"target": a.target, "kind": a.kind, "recovered": a.recovered, "age": a.age}
        for a in watch()
    ]
