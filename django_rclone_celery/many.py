"""Runs over several database aliases at once: ``--all``, several ``-d``, ``databases=[...]``.

Every alias is still its own run: its own ledger row, lease, backup and
manifest, through the run guard (``guard.run_here`` in this process, one
``db_backup`` task per alias on workers). A failing alias fails only itself;
the caller sees every alias's outcome and decides the exit status.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from django.db import connections

from . import fanout, ledger, rc, registry
from .conf import get_settings
from .exceptions import ConfigurationError, DjangoRcloneCeleryError, InvalidArguments
from .rclone import Rclone

logger = logging.getLogger("django_rclone_celery")

# In-process runs at once: the fixed costs (tool start-up, listing, manifest)
# overlap, so four small databases take little longer than one.
MAX_AT_ONCE = 4


def backup_aliases() -> list[str]:
    """What ``--all`` means: ``BACKUP_DATABASES``, or every alias in ``DATABASES``."""
    chosen = get_settings().backup_databases
    return list(chosen) if chosen is not None else list(connections.settings)


def select(databases: str | Sequence[str] | None, all_databases: bool) -> list[str]:
    """The aliases a command names: ``-d`` once or more, or ``--all``; default ``default``.

    Raises :class:`InvalidArguments` for ``--all`` with ``-d`` and for an alias
    named twice, ``ConfigurationError`` for an alias ``DATABASES`` lacks.
    """
    named = [databases] if isinstance(databases, str) else list(databases or [])
    if all_databases and named:
        raise InvalidArguments("give --all or -d/--database, not both")
    aliases = backup_aliases() if all_databases else named or ["default"]
    twice = sorted({a for a in aliases if aliases.count(a) > 1})
    if twice:
        raise InvalidArguments(f"database {', '.join(map(repr, twice))} is named more than once")
    unknown = [a for a in aliases if a not in connections.settings]
    if unknown:
        known = ", ".join(sorted(connections.settings))
        names = ", ".join(map(repr, unknown))
        raise ConfigurationError(f"unknown database alias {names} (configured: {known})")
    return aliases


@dataclass(frozen=True)
class AliasOutcome:
    """One alias's part of a run over several: its result, or why it failed."""

    database: str
    result: Any = None  # the operation's result (``as_dict()``able), or a task's result dict
    error: str | None = None
    task_id: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None

    def as_dict(self) -> dict[str, Any]:
        if self.error is not None:
            found: dict[str, Any] = {"status": "failed", "error": self.error}
        else:
            result = self.result
            found = dict(result.as_dict() if hasattr(result, "as_dict") else result or {})
            found.setdefault("status", "succeeded")
        if self.task_id is not None:
            found["task_id"] = self.task_id
        return found


@dataclass(frozen=True)
class ManyResult:
    """Every alias's outcome, in the order they were named."""

    outcomes: list[AliasOutcome] = field(default_factory=list)

    @property
    def failed(self) -> list[str]:
        return [o.database for o in self.outcomes if o.failed]

    @property
    def succeeded(self) -> list[str]:
        return [o.database for o in self.outcomes if not o.failed]

    def as_dict(self) -> dict[str, Any]:
        return {
            "databases": {o.database: o.as_dict() for o in self.outcomes},
            "succeeded": self.succeeded,
            "failed": self.failed,
        }

    def failure_line(self, what: str) -> str:
        """One line naming every failed alias (empty if none failed)."""
        if not self.failed:
            return ""
        total = len(self.outcomes)
        return (
            f"{what} failed for {len(self.failed)} of {total} databases: {', '.join(self.failed)}"
        )


def run_each(
    name: str,
    aliases: Sequence[str],
    /,
    *,
    on_wait: Callable[[str], None] | None = None,
    **kwargs: Any,
) -> ManyResult:
    """Run task ``name``'s operation for each alias in this process, up to four at once.

    Each alias goes through the run guard like a single run; a failure is
    recorded against its alias and the others go on.
    """
    from .guard import run_here

    get_settings()  # a settings problem is said once, not once per alias

    def one(alias: str) -> AliasOutcome:
        try:
            return AliasOutcome(alias, run_here(name, on_wait=on_wait, database=alias, **kwargs))
        except DjangoRcloneCeleryError as exc:
            return AliasOutcome(alias, error=str(exc))

    def in_thread(alias: str) -> AliasOutcome:
        try:
            return one(alias)
        finally:
            connections.close_all()  # this thread's connections only

    if len(aliases) == 1:
        return ManyResult([one(aliases[0])])
    # One rclone rcd for every alias's small calls (started here: it lives as
    # long as this thread), instead of one rclone start per alias.
    shared = registry.TASKS[name].operation.rclone_daemon
    with (
        rc.shared_daemon(Rclone(get_settings())) if shared else nullcontext(),
        ThreadPoolExecutor(min(MAX_AT_ONCE, len(aliases)), thread_name_prefix="drc-many") as pool,
    ):
        return ManyResult(list(pool.map(in_thread, aliases)))


# -- on workers: one task per alias, as a Celery group ------------------------------


def enqueue_each(operation: str, aliases: Sequence[str], /, **kwargs: Any) -> dict[str, str]:
    """Queue ``operation`` once per alias (a Celery group); returns alias -> task id.

    Every alias's arguments are checked, and every run's ledger row written,
    before anything is sent; a failed send fails every row.
    """
    from .enqueue import TASKS, _task, check_reachable, project_app, record_queued

    for alias in aliases:
        registry.check_kwargs(operation, {**kwargs, "database": alias})
    app = project_app()
    check_reachable(app)
    task = _task(app, TASKS[operation])
    ids = {alias: uuid.uuid4().hex for alias in aliases}
    rows = [record_queued(operation, {**kwargs, "database": a}, tid) for a, tid in ids.items()]
    try:
        fanout.send_group(task, {tid: {**kwargs, "database": a} for a, tid in ids.items()})
    except Exception as exc:
        for row in rows:
            ledger.fail(row, exc)  # never a queued row without a message
        raise
    return ids


def follow_each(
    ids: Mapping[str, str],
    *,
    timeout: float | None = None,
    on_update: Callable[[str, Any], None] | None = None,
    on_stalled: Callable[[str], None] | None = None,
    operation: str | None = None,
) -> ManyResult:
    """Wait for every queued run; a failed one is recorded against its alias.

    They run side by side on the workers, so waiting for them one after the
    other takes as long as the slowest.
    """
    import time

    from .enqueue import TaskFailed, follow

    deadline = None if timeout is None else time.monotonic() + timeout
    outcomes = []
    for alias, tid in ids.items():
        left = None if deadline is None else max(0.1, deadline - time.monotonic())
        show = partial(on_update, alias) if on_update else _ignore
        try:
            result = follow(tid, show, timeout=left, on_stalled=on_stalled, operation=operation)
        except TaskFailed as exc:
            outcomes.append(AliasOutcome(alias, error=str(exc), task_id=tid))
        else:
            outcomes.append(AliasOutcome(alias, result, task_id=tid))
    return ManyResult(outcomes)


def _ignore(update: Any) -> None:
    return None
