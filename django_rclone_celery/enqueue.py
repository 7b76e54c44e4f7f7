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
from functools import partial
from typing import Any

from celery import _state, states
from celery.result import AsyncResult
from django.db import transaction

from .exceptions import ConfigurationError, DjangoRcloneCeleryError
from .registry import OPERATIONS

# operation -> task name; commands and the admin queue runs by operation.
TASKS = {op.name: op.task for op in OPERATIONS}

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
    app = project_app()
    task_id = uuid.uuid4().hex
    _task(app, TASKS[operation]).apply_async(kwargs=kwargs, task_id=task_id)
    return task_id


def enqueue_on_commit(operation: str, /, *, using: str | None = None, **kwargs: Any) -> str:
    """Send ``operation``'s task once the current transaction commits; returns the task id.

    The id is chosen here, so it can be shown before the message exists; if
    the transaction rolls back, nothing is sent.
    """
    app = project_app()
    task = _task(app, TASKS[operation])
    task_id = uuid.uuid4().hex
    transaction.on_commit(partial(task.apply_async, kwargs=kwargs, task_id=task_id), using=using)
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
) -> dict[str, Any]:
    """Poll a queued run until it ends; report each new PROGRESS state.

    Returns the task's result dict. Raises :class:`TaskFailed` if the task
    raised or returned ``status == "failed"``, and :class:`CeleryNotConfigured`
    if results cannot be read back (see :func:`results_app`).
    """
    app = results_app()
    result: Any = AsyncResult(task_id, app=app)
    last: Update | None = None
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        state: str = result.state
        if state == "PROGRESS" and isinstance(result.info, Mapping):
            update = Update.from_meta(result.info)
            if update != last:
                on_update(update)
                last = update
        if state in states.READY_STATES:
            break
        if deadline is not None and time.monotonic() > deadline:
            raise TaskFailed(task_id, f"no result after {timeout:.0f} s (state {state})")
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
