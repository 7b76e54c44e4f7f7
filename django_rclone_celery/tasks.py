"""Celery tasks: each one a thin wrapper that hands its arguments to the run guard.

Every task body is one call to :func:`guard.run_task`, which checks the
arguments, claims the run's row in the ledger, takes the database's lease
(or retries later), runs the operation under a heartbeat and records the
outcome. The same guard runs ``manage.py`` commands in-process.

Names are stable (``PeriodicTask.task`` stores them) and listed in
``registry.TASKS``. Arguments are keyword-only primitives.
"""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task

from .conf import get_settings
from .guard import run_task


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


# -- the tasks ---------------------------------------------------------------


def _args(scope: dict[str, Any]) -> dict[str, Any]:
    """A task's keyword arguments (its ``locals()`` before anything else runs)."""
    return {k: v for k, v in scope.items() if k != "self"}


@shared_task(bind=True, base=OperationTask, name="django_rclone_celery.db_backup")
def db_backup(
    self: Task,  # type: ignore[type-arg]
    *,
    database: str | None = None,
    databases: list[str] | None = None,
    clean: bool = False,
    format: str = "native",
    compression: str | None = None,
    slot: str | None = None,
    idempotency_key: str | None = None,
    jobs: int | None = None,
) -> dict[str, Any]:
    """Back up ``database`` (default ``"default"``); with ``clean``, apply retention afterwards.

    ``databases`` (a list of aliases, instead of ``database``) queues one
    ``db_backup`` per alias, each its own run, sharing this message's slot.
    ``format="portable"`` stores dumpdb's JSON lines (restorable into another
    engine); ``compression`` overrides ``COMPRESSION`` for this run.
    """
    return run_task(self, "db_backup", _args(locals()))


@shared_task(bind=True, base=OperationTask, name="django_rclone_celery.portable_backup")
def portable_backup(
    self: Task,  # type: ignore[type-arg]
    *,
    database: str | None = None,
    databases: list[str] | None = None,
    clean: bool = False,
    compression: str | None = None,
    slot: str | None = None,
    idempotency_key: str | None = None,
    jobs: int | None = None,  # accepted like db_backup's; a portable dump is one stream
) -> dict[str, Any]:
    """A portable backup of ``database``: an alias of ``db_backup`` with ``format="portable"``.

    Recorded in the ledger as ``db_backup``; schedulable like any task.
    """
    return run_task(self, "portable_backup", _args(locals()))


@shared_task(bind=True, base=AtMostOnceTask, name="django_rclone_celery.db_restore")
def db_restore(
    self: Task,  # type: ignore[type-arg]
    *,
    database: str = "default",
    input_path: str | None = None,
    slot: str | None = None,
    idempotency_key: str | None = None,
    from_database: str | None = None,
    jobs: int | None = None,
) -> dict[str, Any]:
    """Restore ``database`` from ``input_path`` (default: its latest backup). At most once.

    ``from_database`` restores another alias's backups into ``database``; the
    run is recorded and locked under ``database``, the one being replaced.
    """
    return run_task(self, "db_restore", _args(locals()))


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
    return run_task(self, "db_cleanup", _args(locals()))


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
    return run_task(self, "db_verify", _args(locals()))


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
    return run_task(self, "media_backup", _args(locals()))


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
    return run_task(self, "media_restore", _args(locals()))


@shared_task(bind=True, base=OperationTask, name="django_rclone_celery.media_cleanup")
def media_cleanup(
    self: Task,  # type: ignore[type-arg]
    *,
    keep: int | None = None,
    slot: str | None = None,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """Drop the media points no retention rule keeps; see ``cleanup_media``."""
    return run_task(self, "media_cleanup", _args(locals()))


# -- pgclone: recorded and locked under the alias the config resolves to -------


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
    return run_task(self, "pgclone_dump", _args(locals()))


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
    return run_task(self, "pgclone_restore", _args(locals()))


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
    return run_task(self, "pgclone_copy", _args(locals()))


# -- monitoring ----------------------------------------------------------------


@shared_task(name="django_rclone_celery.watchdog", ignore_result=True)
def watchdog() -> list[dict[str, Any]]:
    """Alert once when a backup or restore drill becomes overdue, once when it recovers.

    Installed with the schedules (every ``WATCHDOG_INTERVAL`` seconds) when
    ``MAX_BACKUP_AGE`` or ``MAX_VERIFY_AGE`` is set. Reads the ledger only:
    no run row, no lease (``registry.SERVICE_TASKS``).
    """
    from .monitoring import watch

    return [
        {"target": a.target, "kind": a.kind, "recovered": a.recovered, "age": a.age}
        for a in watch()
    ]
