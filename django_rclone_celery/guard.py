"""The run guard: the one way a run starts, from a Celery task, a command or the admin.

Every run, wherever it starts:

1. has its arguments checked with the command line's rules (``registry``),
   before any work;
2. claims its row in the ledger (a Celery run by its slot, an in-process run
   by a fresh ``manual:`` slot); a duplicate finds the row and is skipped;
3. takes the database's lease. A Celery run that finds it busy is retried
   later (the message is re-published, no worker waits); an in-process run
   waits here, up to ``LOCK_WAIT``, and is refused after that;
4. runs the operation under a heartbeat that renews the lease. A lease that
   cannot be kept stops the run: its tools are killed, the partial backup or
   staged copy discarded, the row recorded failed (:class:`LeaseLost`). The
   lease is also confirmed at every stage boundary, so nothing is published
   or swapped in without it;
5. records success or failure (:func:`_finished`, once per run, not per
   retry). A restore of the database holding the ledger snapshots the ledger
   before the swap and writes it back after, so the history survives.
"""

from __future__ import annotations

import logging
import os
import random
import re
import socket
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import connections
from django.utils import timezone

from . import ledger, naming, notify, registry, signals
from .conf import get_settings
from .exceptions import (
    ConfigurationError,
    InvalidArguments,
    LeaseLost,
    OperationBusy,
    RcloneError,
)
from .floor.run import Progress
from .locks import FileLease, Heartbeat, Lease, lease
from .models import BackupRun, Status
from .process import Cancel, cancellable

logger = logging.getLogger("django_rclone_celery")

LEDGER_PROGRESS_INTERVAL = 2.0  # seconds between progress writes to the ledger row
MANUAL_SLOT = "manual:"  # the slot prefix of in-process runs (one row each)


@dataclass(frozen=True)
class Plan:
    """A run, once its arguments are checked: what it runs and where it is locked."""

    spec: registry.TaskSpec
    database: str | None  # the alias it is recorded and locked under (None: media)
    kwargs: dict[str, Any]  # for the operation's function (no slot, no key)
    slot: str | None = None
    idempotency_key: str | None = None

    @property
    def operation(self) -> str:
        return self.spec.operation.name

    @property
    def lock_target(self) -> str:
        return self.database or registry.MEDIA_LOCK

    @property
    def at_most_once(self) -> bool:
        return self.spec.operation.at_most_once


def plan(name: str, kwargs: dict[str, Any]) -> Plan:
    """Check ``kwargs`` for task ``name`` and resolve where the run is locked.

    Raises :class:`InvalidArguments` (or a ``ConfigurationError`` for an
    unknown pgclone config) before anything happens.
    """
    spec = registry.TASKS[name]
    # multidb (#19.1): a task that takes ``databases`` has no default alias of its own.
    several = "databases" in spec.params
    given = {
        k: v
        for k, v in kwargs.items()
        if not (v is None and (k in spec.fixed or (several and k in ("database", "databases"))))
    }
    registry.check_kwargs(name, given)
    if given.get("input_path"):
        naming.check_relative(given["input_path"])  # path tricks: refused before any work
    args = {**given, **spec.fixed}
    slot, key = args.pop("slot", None), args.pop("idempotency_key", None)
    op = spec.operation
    database: str | None
    if op.media:
        database = None
    elif op.pgclone:
        from .pgclone.conf import resolve

        database = resolve(config=args.get("config"), database=args.get("database")).database
        args["database"] = database
    elif "databases" in args:  # multidb (#19.1): dispatched, one run per alias
        database = None
    else:
        database = args.setdefault("database", "default")
    return Plan(spec, database, args, slot, key)


# -- recording ------------------------------------------------------------------


class _Recorder:
    """The operation's progress callback: the lease check, the ledger row, the task state.

    At each new stage it confirms the lease (a stage may publish or swap).
    When the operation is about to swap in a restored copy of the database
    that holds the ledger, it snapshots the ledger so it can be written back.
    """

    def __init__(
        self,
        row: BackupRun,
        protect_ledger: bool,
        beat: Heartbeat,
        cancel: Cancel,
        report: Callable[[dict[str, Any]], None] | None,
    ) -> None:
        self.row = row
        self.protect_ledger = protect_ledger
        self.beat = beat
        self.cancel = cancel
        self.report = report
        self.snapshot: ledger.Snapshot | None = None
        self._stage = ""
        self._last_write = 0.0
        self.stages_only = False

    def __call__(self, p: Progress) -> None:
        if self.cancel.cancelled or (p.stage != self._stage and not self.beat.confirm()):
            raise LeaseLost(self.cancel.reason or "lost the lock while working")
        if self.protect_ledger and p.stage == "swap" and self.snapshot is None:
            self.snapshot = ledger.take_snapshot()
            # The swap replaces the database under this connection.
            connections[ledger.ledger_alias()].close()
        if self.report is not None:
            self.report(
                {
                    "operation": p.operation,
                    "database": p.database,
                    "stage": p.stage,
                    "bytes_done": p.bytes_done,
                    "bytes_total": p.bytes_total,
                    "run_id": p.run_id,
                }
            )
        now = time.monotonic()
        if self.snapshot is None and (
            p.stage != self._stage
            or (not self.stages_only and now - self._last_write >= LEDGER_PROGRESS_INTERVAL)
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


def _started(plan: Plan, row: BackupRun) -> None:
    """The one place a run is known to start: it holds the lease and its row is running."""
    logger.info(
        "%s %s: run %s started (slot %s, %s)",
        plan.operation,
        plan.database or "",
        row.task_id,
        row.slot,
        row.worker,
    )
    notify.run_started(row)  # the start ping


def _finished(
    row: BackupRun, *, payload: dict[str, Any] | None, error: BaseException | None
) -> None:
    """The one place a run's final outcome is recorded: success, failure, or refusal at
    the door (not called for an attempt that is retried)."""
    if error is None:
        ledger.succeed(row, payload or {})
    else:
        ledger.fail(row, error)
    notify.run_finished(row, error)  # failure mail and the success or fail ping


def skipped(plan: Plan, row: BackupRun, reason: str) -> dict[str, Any]:
    return {
        "status": "skipped",
        "reason": reason,
        "operation": plan.operation,
        "database": plan.database,
        "slot": row.slot,
        "run": row.pk,
        "task_id": row.task_id,
        "path": row.path or None,
        "size": row.size,
    }


# -- running under the lease ----------------------------------------------------

# Decides, for a failed attempt, whether it is retried: None (final), or a
# callable that schedules the retry and raises (Celery's ``task.retry``),
# called once the attempt is recorded.
RetryPolicy = Callable[[BaseException, BackupRun], Callable[[], BaseException] | None]


@dataclass
class Outcome:
    result: Any  # what the operation returned
    payload: dict[str, Any]  # its as_dict() plus task_id, slot and run


def _guarded(
    plan: Plan,
    row: BackupRun,
    lock: Lease | FileLease,
    run_id: str,
    worker: str,
    *,
    report: Callable[[dict[str, Any]], None] | None = None,
    retry: RetryPolicy | None = None,
) -> Outcome | dict[str, Any]:
    """Run ``plan`` while holding ``lock`` (already acquired); a skipped dict if beaten to it."""
    cancel = Cancel()
    # A restore that held the lease until now may have replaced the ledger's or the
    # target's database under this process's connections (SQLite: the file).
    _reconnect(ledger.ledger_alias(), plan.database)
    row = ledger.written_again_if_lost(row)
    with Heartbeat(lock, on_lost=cancel.cancel) as beat:
        started = ledger.start(row, run_id, lock.token, worker)
        if started is None:
            return skipped(plan, row, "claimed by another run")
        dead = notify.running_elsewhere(plan.database or "", started)
        ledger.reap_abandoned(plan.database or "", keep=started)
        settings = get_settings()
        if started.attempts > settings.task_max_retries + 1:
            notify.runs_abandoned(dead)
            exc = _too_many_attempts(started)
            _finished(started, payload=None, error=exc)
            _signal_failure(plan.operation, plan.database, started, exc)
            raise exc
        _started(plan, started)
        notify.runs_abandoned(dead)  # they failed silently: say it once
        same = _same_database(plan.database, ledger.ledger_alias())
        recorder = _Recorder(started, plan.at_most_once and same, beat, cancel, report)
        # A SQLite ledger inside the file being read: a write mid-stream would wait on the
        # dump's read lock and, meanwhile, hold off the application's readers.
        recorder.stages_only = same and connections[ledger.ledger_alias()].vendor == "sqlite"
        return _execute(plan, started, recorder, cancel, retry)


def _execute(
    plan: Plan,
    row: BackupRun,
    recorder: _Recorder,
    cancel: Cancel,
    retry: RetryPolicy | None,
) -> Outcome:
    func = plan.spec.operation.function()
    signalled: list[BaseException] = []

    def seen(sender: Any, exception: BaseException, run_id: str, **kw: Any) -> None:
        if run_id == row.task_id:
            signalled.append(exception)

    signals.stage_failed.connect(seen, weak=False)
    try:
        with cancellable(cancel):
            result = func(**plan.kwargs, run_id=row.task_id, progress=recorder)
    except BaseException as exc:
        signals.stage_failed.disconnect(seen)
        recorder.restore_ledger()
        error: BaseException = exc
        if cancel.cancelled and not isinstance(exc, LeaseLost):
            error = LeaseLost(f"{cancel.reason}; the run was stopped")
        again = None if cancel.cancelled or retry is None else retry(error, row)
        if again is None:
            _finished(row, payload=None, error=error)
        else:
            ledger.fail(row, error)  # this attempt; the retry claims the row again
        if not signalled:
            _signal_failure(plan.operation, plan.database, row, error)
        if again is not None:
            raise again() from exc
        if error is exc:
            raise
        raise error from exc
    signals.stage_failed.disconnect(seen)
    recorder.restore_ledger()
    payload = dict(result.as_dict())
    payload.update(task_id=row.task_id, slot=row.slot, run=row.pk)
    _finished(row, payload=payload, error=None)
    return Outcome(result, payload)


def _too_many_attempts(row: BackupRun) -> ledger.TooManyAttempts:
    return ledger.TooManyAttempts(
        f"{row.operation} {row.database} (slot {row.slot}) was started {row.attempts - 1} "
        "times without finishing; giving up"
    )


# -- entry point: in this process (commands) -------------------------------------


def here() -> str:
    """The ``worker`` an in-process run is recorded with."""
    return f"{socket.gethostname()} pid {os.getpid()}"


def run_here(
    name: str,
    /,
    *,
    on_wait: Callable[[str], None] | None = None,
    **kwargs: Any,
) -> Any:
    """Run task ``name``'s operation in this process, guarded like a Celery run.

    Returns what the operation returns. The run gets its own ledger row
    (slot ``manual:<run id>``) and the database's lease; while another run
    holds the lease it waits, calling ``on_wait`` once, for up to
    ``LOCK_WAIT`` seconds, then raises :class:`OperationBusy`.
    """
    get_settings()  # a settings problem is the first thing to say, before the ledger
    the_plan = plan(name, kwargs)
    run_id = uuid.uuid4().hex
    row, _ = ledger.claim_for_caller(
        the_plan.operation, the_plan.database or "", MANUAL_SLOT + run_id, run_id
    )
    lock = lease_here(the_plan.lock_target)
    try:
        _wait_here(the_plan, row, lock, on_wait)
    except BaseException as exc:
        _finished(row, payload=None, error=exc)
        raise
    try:
        outcome = _guarded(the_plan, row, lock, run_id, here())
    finally:
        lock.release()
    assert isinstance(outcome, Outcome)  # a fresh manual row is never claimed by another run
    return outcome.result


def local_lock_dir() -> str:
    """Where commands lock when no lock server is configured: this host's temp directory,
    one folder per project (``NAMESPACE``), so two projects never wait for each other."""
    from .locks import project_namespace

    name = re.sub(r"[^A-Za-z0-9_.-]", "_", project_namespace())
    return os.path.join(tempfile.gettempdir(), f"django_rclone_celery-locks-{os.getuid()}", name)


def lease_here(target: str) -> Lease | FileLease:
    """The lease an in-process run takes on ``target``."""
    try:
        return lease(target)
    except ConfigurationError:
        # Neither LOCK_URL nor a Redis broker: a project that runs only commands
        # (no worker could run without them). They exclude each other on this host.
        return FileLease(target, local_lock_dir())


def _wait_here(
    plan: Plan,
    row: BackupRun,
    lock: Lease | FileLease,
    on_wait: Callable[[str], None] | None,
) -> None:
    if lock.acquire():
        return
    settings = get_settings()
    deadline = time.monotonic() + settings.lock_wait
    ledger.mark_queued(row)
    # The run we wait for may be a restore replacing the ledger's database:
    # hold no connection to it meanwhile (a SQLite file replaced under an
    # open connection is corrupted by that connection's next write).
    _reconnect(ledger.ledger_alias(), plan.database)
    if on_wait is not None:
        on_wait(f"another run holds the lock on {plan.lock_target!r}; waiting for it")
    pause = min(1.0, float(settings.lock_retry_delay))
    # No sign of life is written meanwhile: a manual slot is never shared, so
    # nobody would take it over, and the ledger is left alone until our turn.
    while not lock.acquire():
        if time.monotonic() > deadline:
            raise OperationBusy(
                f"another operation held the lock on {plan.lock_target!r} "
                f"for longer than LOCK_WAIT ({settings.lock_wait} s)"
            )
        time.sleep(pause * random.uniform(0.5, 1.0))  # noqa: S311 - jitter only


def _reconnect(*aliases: str | None) -> None:
    for alias in {a for a in aliases if a}:
        connection = connections[alias]
        if not connection.in_atomic_block:
            connection.close()


# -- entry point: Celery tasks ---------------------------------------------------


def run_task(task: Any, name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The body of every task: check, claim, lease, run, record (see the module doc).

    Returns the operation's ``as_dict()`` plus ``task_id``, ``slot`` and
    ``run`` (the ledger row's id), or a ``skipped`` dict. Failures raise, so
    Celery records them as ``FAILURE``; the ledger row says ``failed``.
    """
    from celery.exceptions import Ignore

    request = task.request
    task_id = request.id or uuid.uuid4().hex
    try:
        the_plan = plan(name, kwargs)
    except (InvalidArguments, ConfigurationError) as exc:
        _refuse(name, kwargs, task_id, getattr(request, "periodic_task_name", None), exc)
        raise
    if "databases" in the_plan.kwargs:  # multidb (#19.1): one task per alias
        from .fanout import dispatch

        return dispatch(task, the_plan, getattr(request, "periodic_task_name", None))
    the_slot = ledger.resolve_slot(
        task_id=task_id,
        slot=the_plan.slot,
        idempotency_key=the_plan.idempotency_key,
        periodic_task_name=getattr(request, "periodic_task_name", None),
    )
    row, _ = ledger.claim(the_plan.operation, the_plan.database or "", the_slot, task_id)
    lock = lease(the_plan.lock_target)
    alive = (
        row.status == Status.RUNNING and bool(row.lock_token) and lock.owner_alive(row.lock_token)
    )
    verdict = ledger.examine(row, task_id, alive, at_most_once=the_plan.at_most_once)
    if not verdict.run:
        logger.warning(
            "%s %s: skipped task %s (slot %s): %s",
            the_plan.operation,
            the_plan.database or "",
            task_id,
            row.slot,
            verdict.reason,
        )
        if row.task_id == task_id and not request.called_directly:
            # A second delivery of the same message: keep the first one's result.
            raise Ignore()
        return skipped(the_plan, row, verdict.reason)
    if row.status == Status.QUEUED and row.task_id != task_id:
        taken = ledger.take_over(row, task_id)  # its own message was lost
        if taken is None:
            return skipped(the_plan, row, "claimed by another run")
        row = taken

    if not lock.acquire():
        return _wait_for_lease(task, the_plan, row)

    def report(meta: dict[str, Any]) -> None:
        if not request.called_directly:
            # By id: a --jobs stream reports from a thread of its own, where
            # Celery's current request (a thread-local) is not this task's.
            task.update_state(task_id=task_id, state="PROGRESS", meta=meta)

    try:
        outcome = _guarded(
            the_plan,
            row,
            lock,
            task_id,
            request.hostname or "",
            report=report,
            retry=lambda exc, r: _task_retry(task, the_plan, exc, r),
        )
    finally:
        lock.release()
    return outcome.payload if isinstance(outcome, Outcome) else outcome


def _refuse(
    name: str,
    kwargs: dict[str, Any],
    task_id: str,
    periodic_task_name: str | None,
    exc: Exception,
) -> None:
    """Record a run refused at the door (one attempt, failed), so history and monitoring see it."""
    spec = registry.TASKS[name]
    database = kwargs.get("database")
    database = database[:100] if isinstance(database, str) else ""
    slot = ledger.resolve_slot(
        task_id=task_id,
        slot=kwargs.get("slot") if isinstance(kwargs.get("slot"), str) else None,
        idempotency_key=kwargs.get("idempotency_key")
        if isinstance(kwargs.get("idempotency_key"), str)
        else None,
        periodic_task_name=periodic_task_name,
    )
    row, _ = ledger.claim(spec.operation.name, database, slot, task_id)
    if row.status in (Status.QUEUED, Status.FAILED) and row.task_id == task_id:
        ledger.refused(row)
        _finished(row, payload=None, error=exc)
        _signal_failure(spec.operation.name, database or None, row, exc)
    logger.error("%s: refused its arguments: %s", spec.task, exc)


def _wait_for_lease(task: Any, plan: Plan, row: BackupRun) -> dict[str, Any]:
    """Another operation holds the database: re-publish with a countdown."""
    settings = get_settings()
    fresh = BackupRun.objects.get(pk=row.pk)
    waited = (timezone.now() - fresh.created).total_seconds()
    if waited > settings.lock_wait or task.request.called_directly:
        exc = OperationBusy(f"another operation holds the lock on {plan.lock_target!r}")
        _finished(fresh, payload=None, error=exc)
        raise exc
    ledger.mark_queued(fresh)
    countdown = settings.lock_retry_delay * (1 + random.random())  # noqa: S311 - jitter only
    logger.info(
        "%s %s: %s is busy, retrying in %.1f s",
        plan.operation,
        plan.database or "",
        plan.lock_target,
        countdown,
    )
    raise task.retry(countdown=countdown)


def _task_retry(
    task: Any, plan: Plan, exc: BaseException, row: BackupRun
) -> Callable[[], BaseException] | None:
    """Transient rclone errors of a repeatable run are retried with backoff."""
    from celery.utils.time import get_exponential_backoff_interval

    settings = get_settings()
    if not (
        isinstance(exc, RcloneError)
        and exc.transient
        and not plan.at_most_once
        and row.attempts <= settings.task_max_retries
        and not task.request.called_directly
    ):
        return None
    countdown = get_exponential_backoff_interval(
        factor=int(getattr(task, "retry_backoff", 5)),
        retries=row.attempts - 1,
        maximum=int(getattr(task, "retry_backoff_max", 600)),
        full_jitter=bool(getattr(task, "retry_jitter", True)),
    )
    logger.warning("%s: transient error, retry in %s s: %s", plan.operation, countdown, exc)

    def again() -> BaseException:
        retried: BaseException = task.retry(exc=exc, countdown=countdown)  # raises Retry
        return retried

    return again
