"""Handing an operation to a Celery worker, and following it to its result.

Used by ``manage.py … --enqueue/--wait`` and by the admin. The project's
Celery app must be loaded: a ``@shared_task`` sent through Celery's fallback
app would ignore the project's ``CELERY_*`` settings and try a broker on
localhost, so that case is refused with an explanation instead.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from celery import _state, states
from celery.result import AsyncResult
from django.db import transaction
from kombu.exceptions import OperationalError as KombuOperationalError

from . import registry
from .exceptions import BrokerUnavailable, ConfigurationError, DjangoRcloneCeleryError
from .models import BackupRun

# One attempt to reach the broker or the result backend: Celery's own retries
# take ~20 s and end in a traceback, and a refused connection is not transient.
CONNECT_TIMEOUT = 5.0
# How long --wait lets a task stay PENDING before it says no worker took it.
STALLED_AFTER = 30.0

# operation -> task name; commands and the admin queue runs by operation.
TASKS = {op.name: op.task for op in registry.OPERATIONS}

NOT_LOADED = (
    "The project's Celery app is not loaded, so the task cannot be queued "
    "(Celery would try its default broker on localhost). Load it when Django starts: "
    "in <project>/__init__.py add `from .celery import app as celery_app`, where "
    "celery.py creates the app and calls app.config_from_object('django.conf:settings', "
    "namespace='CELERY'). Or run without --enqueue/--wait to work in this process."
)


class CeleryNotConfigured(ConfigurationError):
    """The project's Celery app is not loaded, or has no broker or result backend."""


class TaskFailed(DjangoRcloneCeleryError):
    """A queued run ended in failure."""

    def __init__(self, task_id: str, message: str) -> None:
        self.task_id = task_id
        super().__init__(f"task {task_id} failed: {message}")


class WaitTimedOut(DjangoRcloneCeleryError):
    """``--wait --timeout`` ran out; the run itself goes on (or stays queued)."""

    def __init__(self, task_id: str, timeout: float, state: str, hint: str = "") -> None:
        self.task_id = task_id
        what = "is still queued" if state == states.PENDING else f"goes on (state {state})"
        super().__init__(
            f"stopped waiting for task {task_id} after {timeout:g} s; the run {what}. "
            + (hint or "Follow it in the admin's backup history.")
        )


def _safe_url(url: Any) -> str:
    from kombu.utils.url import maybe_sanitize_url

    return str(maybe_sanitize_url(str(url or "").split(";")[0].strip()))


def check_reachable(app: Any) -> None:
    """Refuse at once, in one line, when the broker or the result backend does not answer.

    Without this, a down broker ends in a kombu traceback, and a down Redis
    result backend in 20 s of retries and a misleading "Retry limit exceeded".
    """
    conn = app.connection_for_write()
    try:
        conn.ensure_connection(
            max_retries=1, interval_start=0, interval_step=0, timeout=CONNECT_TIMEOUT
        )
    except (*conn.connection_errors, OSError, KombuOperationalError) as exc:
        raise BrokerUnavailable(
            f"the Celery broker {_safe_url(app.conf.broker_url)} did not answer ({exc}); "
            "nothing was queued. Check that it runs and that CELERY_BROKER_URL points at it."
        ) from exc
    finally:
        conn.release()
    backend = app.backend
    client = getattr(backend, "client", None)  # the Redis result backend's redis-py client
    if client is None or not hasattr(client, "ping"):
        return
    try:
        client.ping()
    except (*getattr(backend, "connection_errors", ()), OSError) as exc:
        raise BrokerUnavailable(
            f"the Celery result backend {_safe_url(app.conf.result_backend)} did not answer "
            f"({exc}); nothing was queued. Check that it runs and that "
            "CELERY_RESULT_BACKEND points at it."
        ) from exc


def queue_name(app: Any, task_name: str) -> str:
    """The queue ``task_name`` is routed to (``CELERY_TASK_ROUTES``, else the default)."""
    try:
        return str(app.amqp.router.route({}, task_name, args=(), kwargs={})["queue"].name)
    except Exception:  # only a hint; a custom router may want more than a name
        return str(app.conf.task_default_queue)


def _send(task: Any, kwargs: dict[str, Any], task_id: str) -> None:
    try:
        task.apply_async(kwargs=kwargs, task_id=task_id)
    except KombuOperationalError as exc:  # the broker went away since check_reachable
        raise BrokerUnavailable(
            f"the Celery broker did not take the task ({exc}); nothing was queued."
        ) from exc


def project_app() -> Any:
    """The project's Celery app; raises :class:`CeleryNotConfigured` if it is not loaded.

    Celery's fallback app (``Celery("default", set_as_current=False)``, made
    on first use when nothing else exists) is the sign that the project never
    imported its own.
    """
    app: Any = _state.get_current_app()
    if app.main == "default" and not app.set_as_current:
        raise CeleryNotConfigured(NOT_LOADED)
    if not (app.conf.broker_url or app.conf.broker_write_url):
        raise CeleryNotConfigured(
            f"The Celery app {app.main!r} has no broker configured "
            "(set CELERY_BROKER_URL), so the task cannot be queued."
        )
    return app


def results_app() -> Any:
    """The project's Celery app, if it can also read results back (a result backend is set)."""
    app = project_app()
    if type(app.backend).__name__ == "DisabledBackend":
        raise CeleryNotConfigured(
            "Following a run needs a Celery result backend (set CELERY_RESULT_BACKEND); "
            "use --enqueue to only queue it."
        )
    return app


def _task(app: Any, name: str) -> Any:
    from . import tasks  # noqa: F401  (registers the shared tasks on the app)

    try:
        return app.tasks[name]
    except KeyError:  # pragma: no cover - tasks.py defines every name in TASKS
        raise CeleryNotConfigured(f"task {name!r} is not registered on {app.main!r}") from None


def enqueue(operation: str, /, **kwargs: Any) -> str:
    """Send ``operation``'s task with ``kwargs`` now; returns the task id."""
    # The worker's own door check, here: an unknown alias or a bad value is
    # refused before anything is queued, in the words the worker would use.
    registry.check_kwargs(operation, kwargs)
    app = project_app()
    check_reachable(app)
    task = _task(app, TASKS[operation])
    task_id = uuid.uuid4().hex
    # multidb (#19.1): a message naming several databases only queues one run per
    # alias on the worker, and each of those writes its own row.
    several = kwargs.get("databases") is not None
    row = None if several else record_queued(operation, kwargs, task_id)
    try:
        _send(task, kwargs, task_id)
    except Exception as exc:
        from . import ledger

        if row is not None:
            ledger.fail(row, exc)  # never a queued row without a message
        raise
    return task_id


def record_queued(operation: str, kwargs: Mapping[str, Any], task_id: str) -> BackupRun:
    """The run's ledger row, written as it is queued, so the history shows a run
    that no worker has taken yet. The worker finds the row by its task id."""
    from . import ledger
    from .guard import plan

    the_plan = plan(operation, dict(kwargs))
    slot = ledger.resolve_slot(
        task_id=task_id, slot=the_plan.slot, idempotency_key=the_plan.idempotency_key
    )
    row, _ = ledger.claim_for_caller(the_plan.operation, the_plan.database or "", slot, task_id)
    return row


def enqueue_on_commit(operation: str, /, *, using: str | None = None, **kwargs: Any) -> str:
    """Send ``operation``'s task once the current transaction commits; returns the task id.

    The id is chosen here, so it can be shown before the message exists; if
    the transaction rolls back, nothing is sent.
    """
    registry.check_kwargs(operation, kwargs)
    app = project_app()
    check_reachable(app)  # so the admin can say so, instead of a 500 at commit
    task = _task(app, TASKS[operation])
    task_id = uuid.uuid4().hex
    # Deferred to the end of an outer transaction (ATOMIC_REQUESTS), a send
    # that fails is logged, not turned into an error page after the commit;
    # check_reachable above makes that rare. Sent at once, it raises to the caller.
    deferred = transaction.get_connection(using).in_atomic_block

    row = record_queued(operation, kwargs, task_id)  # in the admin's list at once

    def send_task_message() -> None:  # a function: Django names it when it logs a failure
        try:
            _send(task, kwargs, task_id)
        except Exception as exc:
            from . import ledger

            ledger.fail(row, exc)  # never a queued row without a message
            raise

    transaction.on_commit(send_task_message, using=using, robust=deferred)
    return task_id


@dataclass(frozen=True)
class Update:
    """One PROGRESS report of a queued run."""

    stage: str
    bytes_done: int
    bytes_total: int | None

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> Update:
        total = meta.get("bytes_total")
        return cls(
            str(meta.get("stage") or ""),
            int(meta.get("bytes_done") or 0),
            int(total) if total is not None else None,
        )


def follow(
    task_id: str,
    on_update: Callable[[Update], None],
    *,
    interval: float = 0.5,
    timeout: float | None = None,
    stalled_after: float | None = None,
    on_stalled: Callable[[str], None] | None = None,
    operation: str | None = None,
) -> dict[str, Any]:
    """Poll a queued run until it ends; report each new PROGRESS state.

    Returns the task's result dict. Raises :class:`TaskFailed` if the task
    raised or returned ``status == "failed"``, :class:`WaitTimedOut` when
    ``timeout`` seconds pass first (the run is left alone), and
    :class:`CeleryNotConfigured` if results cannot be read back (see
    :func:`results_app`). If the task is still ``PENDING`` (no worker took
    it) after ``stalled_after`` seconds, ``on_stalled`` gets one line saying
    what to check (after ``STALLED_AFTER`` seconds unless given).
    """
    app = results_app()
    result: Any = AsyncResult(task_id, app=app)
    last: Update | None = None
    started = time.monotonic()
    deadline = None if timeout is None else started + timeout
    stalled_said = False

    def hint() -> str:
        queue = (
            queue_name(app, TASKS[operation])
            if operation is not None and operation in TASKS
            else app.conf.task_default_queue
        )
        return (
            f"Check that a worker runs (celery -A <project> worker), consumes the queue "
            f"{queue!r} (--queues={queue}) and uses the same broker, or that its workers "
            "are not all busy with other runs."
        )

    while True:
        try:
            state: str = result.state
        except tuple(getattr(app.backend, "connection_errors", ())) as exc:
            raise BrokerUnavailable(
                f"the Celery result backend stopped answering ({exc}); task {task_id} "
                "may still run. Follow it in the admin's backup history."
            ) from exc
        waited = time.monotonic() - started
        patience = STALLED_AFTER if stalled_after is None else stalled_after
        if state == states.PENDING and not stalled_said and on_stalled and waited >= patience:
            stalled_said = True
            on_stalled(f"No worker has taken task {task_id} after {waited:.0f} s. {hint()}")
        if state == "PROGRESS" and isinstance(result.info, Mapping):
            update = Update.from_meta(result.info)
            if update != last:
                on_update(update)
                last = update
        if state in states.READY_STATES:
            break
        if deadline is not None and timeout is not None and time.monotonic() > deadline:
            raise WaitTimedOut(
                task_id,
                timeout,
                state,
                "No worker has taken it. " + hint() if state == states.PENDING else "",
            )
        time.sleep(interval)
    if state != states.SUCCESS:
        raise TaskFailed(
            task_id,
            f"{state}: {result.info!r}"
            if state != states.FAILURE
            else f"{type(result.info).__name__}: {result.info}",
        )
    value = result.result
    payload: dict[str, Any] = dict(value) if isinstance(value, Mapping) else {"result": value}
    if payload.get("status") == "failed":
        raise TaskFailed(task_id, str(payload.get("error") or "the run failed"))
    return payload
