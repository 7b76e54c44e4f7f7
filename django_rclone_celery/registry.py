"""The one list of operations, and the tasks that run them.

Everything that names an operation derives from :data:`OPERATIONS` and
:data:`TASKS`: the ledger's choices (``models.Operation``), the Celery task
names, the tasks ``SCHEDULES`` accepts, the admin's labels, the table the
commands and the admin queue runs from, and each task's arguments, checked
at the door with the same rules as the command line (:func:`check_kwargs`).

Adding an operation: one :class:`OperationSpec` here, its task in
``tasks.py`` (a test fails if a task of this package has no entry).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

from .exceptions import ConfigurationError, InvalidArguments
from .values import max_delete_problem

TASK_PREFIX = "django_rclone_celery."
MEDIA_LOCK = "media"  # the lease shared by media backup, restore and cleanup

Check = Callable[[Any], str | None]  # a problem, or None if the value is fine


class Unconfigured(str):
    """A problem with the project's configuration rather than the value's form (an alias)."""


# -- parameter rules (the command line's, as data) -----------------------------


def _alias(value: Any) -> str | None:
    from django.db import connections

    if not isinstance(value, str) or not value:
        return f"{value!r} is not a database alias (a non-empty string)"
    if value not in connections.settings:
        known = ", ".join(sorted(connections.settings))
        # The connectors' words: the same mistake reads the same from every entry point.
        return Unconfigured(f"unknown database alias {value!r} (configured: {known})")
    return None


def _optional(check: Check) -> Check:
    return lambda value: None if value is None else check(value)


def _choice(*allowed: str) -> Check:
    def check(value: Any) -> str | None:
        if value not in allowed:
            return f"{value!r} is not one of {', '.join(repr(a) for a in allowed)}"
        return None

    return check


def _text(value: Any) -> str | None:
    return None if isinstance(value, str) and value else f"{value!r} is not a non-empty string"


def _flag(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"{value!r} is not true or false"


def _positive_int(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return f"{value!r} is not a whole number of at least 1"
    return None


def _max_delete(value: Any) -> str | None:
    return max_delete_problem(value) or None


def _texts(value: Any) -> str | None:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
        return f"{value!r} is not a list of non-empty strings"
    return None


def _aliases(value: Any) -> str | None:
    """Several aliases (multidb, #19.1): a non-empty list, each configured, each once."""
    if not isinstance(value, list | tuple) or not value:
        return f"{value!r} is not a non-empty list of database aliases"
    for alias in value:
        problem = _alias(alias)
        if problem:
            return problem
    twice = sorted({a for a in value if list(value).count(a) > 1})
    return f"names {twice} more than once" if twice else None


# Arguments that exclude each other: (first, second).
EXCLUSIVE = (("database", "databases"),)


IDENTITY: dict[str, Check] = {
    "slot": _optional(_text),
    "idempotency_key": _optional(_text),
}
PGCLONE: dict[str, Check] = {
    "database": _optional(_alias),
    "config": _optional(_text),
    "storage_location": _optional(_text),
}


@dataclass(frozen=True)
class OperationSpec:
    """One operation: what the ledger records, what its task and entry points run."""

    name: str  # the ledger's value, e.g. "db_backup"
    label: str  # what the admin calls it
    func: str  # "module:function" taking the parameters plus run_id and progress
    params: Mapping[str, Check]
    at_most_once: bool = False  # a restore: never run twice, acknowledged before it runs
    media: bool = False  # locked and recorded without a database (the "media" lease)
    pgclone: bool = False  # the alias comes from the pgclone config (flag > config > setting)
    # Its small rclone calls go to an rclone rcd (rc.private_daemon): the runs of
    # several aliases in one process share one.
    rclone_daemon: bool = False

    @property
    def task(self) -> str:
        return TASK_PREFIX + self.name

    def function(self) -> Callable[..., Any]:
        module, _, name = self.func.partition(":")
        found: Callable[..., Any] = getattr(import_module(module), name)
        return found


@dataclass(frozen=True)
class TaskSpec:
    """A Celery task: an operation, possibly with some arguments fixed (an alias)."""

    name: str  # the task's short name
    operation: OperationSpec
    fixed: Mapping[str, Any] = field(default_factory=dict)

    @property
    def task(self) -> str:
        return TASK_PREFIX + self.name

    @property
    def params(self) -> dict[str, Check]:
        own = {k: v for k, v in self.operation.params.items() if k not in self.fixed}
        return {**own, **IDENTITY}


_DB = {"database": _alias}
OPERATIONS: tuple[OperationSpec, ...] = (
    OperationSpec(
        "db_backup",
        "database backup",
        "django_rclone_celery.operations.backup:backup_database",
        {
            **_DB,
            "databases": _optional(_aliases),  # several at once: one run per alias
            "clean": _flag,
            "format": _choice("native", "portable"),
            "compression": _optional(_choice("zstd", "native", "none")),
            "jobs": _optional(_positive_int),  # parallel (#19.4)
        },
        rclone_daemon=True,
    ),
    OperationSpec(
        "db_restore",
        "database restore",
        "django_rclone_celery.operations.restore:restore_database",
        {
            **_DB,
            "input_path": _optional(_text),
            "from_database": _optional(_alias),
            "jobs": _optional(_positive_int),  # parallel (#19.4)
        },
        at_most_once=True,
    ),
    OperationSpec(
        "db_cleanup",
        "cleanup of old backups",
        "django_rclone_celery.operations.catalog:cleanup_backups",
        {**_DB, "keep": _optional(_positive_int)},
    ),
    OperationSpec(
        "db_verify",
        "backup verification",
        "django_rclone_celery.operations.verify:verify_backup",
        {
            **_DB,
            "input_path": _optional(_text),
            "from_database": _optional(_alias),
            "restore": _flag,
        },
    ),
    OperationSpec(
        "media_backup",
        "media backup",
        "django_rclone_celery.operations.media:backup_media",
        {"allow_empty": _flag, "max_delete": _optional(_max_delete), "clean": _flag},
        media=True,
    ),
    OperationSpec(
        "media_restore",
        "media restore",
        "django_rclone_celery.operations.media:restore_media",
        {"at": _optional(_text), "allow_empty": _flag, "max_delete": _optional(_max_delete)},
        at_most_once=True,
        media=True,
    ),
    OperationSpec(
        "media_cleanup",
        "cleanup of old media points",
        "django_rclone_celery.operations.media:cleanup_media",
        {"keep": _optional(_positive_int)},
        media=True,
    ),
    OperationSpec(
        "pgclone_dump",
        "pgclone dump",
        "django_rclone_celery.pgclone.dump:dump_run",
        {
            **PGCLONE,
            "exclude": _optional(_texts),
            "pre_dump_hooks": _optional(_texts),
            "instance": _optional(_text),
        },
        pgclone=True,
    ),
    OperationSpec(
        "pgclone_restore",
        "pgclone restore",
        "django_rclone_celery.pgclone.restore:restore_run",
        {
            **PGCLONE,
            "dump_key": _optional(_text),
            "pre_swap_hooks": _optional(_texts),
            "reversible": _optional(_flag),
        },
        at_most_once=True,
        pgclone=True,
    ),
    OperationSpec(
        "pgclone_copy",
        "pgclone copy",
        "django_rclone_celery.pgclone.copy:copy_run",
        {"database": PGCLONE["database"], "config": PGCLONE["config"], "dump_key": _text},
        at_most_once=True,
        pgclone=True,
    ),
)
BY_NAME: dict[str, OperationSpec] = {op.name: op for op in OPERATIONS}

# portable_backup is an alias: a db_backup with format="portable", recorded as db_backup.
TASKS: dict[str, TaskSpec] = {
    **{op.name: TaskSpec(op.name, op) for op in OPERATIONS},
    "portable_backup": TaskSpec("portable_backup", BY_NAME["db_backup"], {"format": "portable"}),
}
# Tasks that run no operation: no ledger row, no lease (they only read the ledger).
SERVICE_TASKS: dict[str, str] = {"watchdog": TASK_PREFIX + "watchdog"}
TASK_NAMES: frozenset[str] = frozenset(
    [*(spec.task for spec in TASKS.values()), *SERVICE_TASKS.values()]
)
# Parameters a task may be sent without (everything else has a default).
REQUIRED: dict[str, frozenset[str]] = {"pgclone_copy": frozenset({"dump_key"})}


def by_task_name(task: str) -> TaskSpec | None:
    """The spec of a full task name (``django_rclone_celery.db_backup``), if it is ours."""
    if not task.startswith(TASK_PREFIX):
        return None
    return TASKS.get(task[len(TASK_PREFIX) :])


def problems(name: str, kwargs: Mapping[str, Any]) -> list[str]:
    """What is wrong with ``kwargs`` for task ``name``, one line each (empty: fine)."""
    spec = TASKS[name]
    allowed = spec.params
    found = []
    for key in sorted(set(kwargs) - set(allowed)):
        found.append(f"unknown argument {key!r} (allowed: {', '.join(sorted(allowed))})")
    for first, second in EXCLUSIVE:
        both = kwargs.get(first) is not None and kwargs.get(second) is not None
        if first in allowed and second in allowed and both:
            found.append(f"give {first!r} or {second!r}, not both")
    for key in sorted(REQUIRED.get(name, frozenset()) - set(kwargs)):
        found.append(f"missing argument {key!r}")
    for key, value in kwargs.items():
        check = allowed.get(key)
        problem = check(value) if check else None
        if isinstance(problem, Unconfigured) and key in ("database", "databases"):
            found.append(problem)
        elif problem:
            found.append(type(problem)(f"{key}: {problem}"))
    return found


def check_kwargs(name: str, kwargs: Mapping[str, Any]) -> None:
    """Refuse arguments the command line would refuse.

    Raises :class:`InvalidArguments`, or ``ConfigurationError`` when the only
    problem is an alias the project does not configure (as the connectors do).
    """
    found = problems(name, kwargs)
    if found and all(isinstance(p, Unconfigured) for p in found):
        raise ConfigurationError("; ".join(found))
    if found:
        raise InvalidArguments("; ".join(found))
