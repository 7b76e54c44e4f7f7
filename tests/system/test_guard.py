"""The run guard (issue #17 items 1-2, #16 items 1, 2, 5): every entry point is guarded.

In-process commands leave ledger rows and take the lease like worker runs; a
restore of the ledger's own database keeps the history; the registry is the
one list of operations; arguments are checked at the door.
"""

from __future__ import annotations

import threading
import time
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections

from django_rclone_celery import admin, enqueue, ledger, locks, registry, schedules
from django_rclone_celery.exceptions import ConfigurationError, InvalidArguments
from django_rclone_celery.guard import MANUAL_SLOT, lease_here, local_lock_dir, plan
from django_rclone_celery.models import BackupRun, Operation
from tests.helpers.databases import populate, snapshot
from tests.helpers.remotes import remote_files
from tests.helpers.workers import wait_for

PG_MARIA = ["pg", "maria"]


def call(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


# -- one registry --------------------------------------------------------------


def test_every_task_of_the_package_is_in_the_registry() -> None:
    """Fails when a task is added to tasks.py without its registry entry (or the reverse)."""
    import django_rclone_celery.tasks  # noqa: F401  (defines the shared tasks)
    from tests.celery_app import app

    app.finalize()
    ours = {name for name in app.tasks if name.startswith(registry.TASK_PREFIX)}
    assert ours == set(registry.TASK_NAMES)
    assert len(registry.TASKS) == 11
    assert len(ours) == len(registry.TASKS) + len(registry.SERVICE_TASKS)


def test_every_list_of_operations_derives_from_the_registry() -> None:
    names = [op.name for op in registry.OPERATIONS]
    assert [choice.value for choice in Operation] == names
    assert {name: registry.TASK_PREFIX + name for name in names} == enqueue.TASKS
    assert {op.name: op.label for op in registry.OPERATIONS} == admin.LABELS
    assert schedules.KNOWN_TASKS == registry.TASK_NAMES
    assert "django_rclone_celery.portable_backup" in schedules.KNOWN_TASKS


def test_portable_backup_is_schedulable_and_recorded_as_db_backup() -> None:
    spec = {"task": "django_rclone_celery.portable_backup", "crontab": "0 3 * * *"}
    assert schedules.schedule_problems({"nightly-portable": spec}) == []
    the_plan = plan("portable_backup", {"database": "default"})
    assert the_plan.operation == "db_backup"
    assert the_plan.kwargs["format"] == "portable"
    with pytest.raises(InvalidArguments, match="unknown argument 'format'"):
        plan("portable_backup", {"format": "native"})


# -- arguments at the door -----------------------------------------------------

ODD = [
    ("db_backup", {"format": "xml"}, "format: 'xml' is not one of 'native', 'portable'"),
    ("db_backup", {"compression": "gzip"}, "compression: 'gzip' is not one of"),
    ("db_backup", {"clean": "yes"}, "clean: 'yes' is not true or false"),
    ("db_backup", {"database": "nosuch"}, "unknown database alias 'nosuch'"),
    ("db_cleanup", {"keep": "ten"}, "keep: 'ten' is not a whole number of at least 1"),
    ("db_cleanup", {"keep": 0}, "keep: 0 is not a whole number"),
    ("db_restore", {"from_database": 3}, "from_database: 3 is not a database alias"),
    ("db_verify", {"restore": 1}, "restore: 1 is not true or false"),
    ("pgclone_dump", {"exclude": "app.Model"}, "exclude: 'app.Model' is not a list"),
    ("pgclone_copy", {}, "missing argument 'dump_key'"),
    ("media_backup", {"database": "default"}, "unknown argument 'database'"),
]


@pytest.mark.parametrize(("task", "kwargs", "message"), ODD, ids=[f"{t}-{k}" for t, k, _ in ODD])
def test_odd_arguments_are_refused_with_the_command_lines_rules(
    task: str, kwargs: dict[str, Any], message: str
) -> None:
    # An alias the project does not configure is a ConfigurationError, as from the connectors.
    with pytest.raises((InvalidArguments, ConfigurationError), match=message):
        plan(task, kwargs)
    schedule = {"task": registry.TASK_PREFIX + task, "every": 60, "kwargs": kwargs}
    problems = schedules.schedule_problems({"odd": schedule})
    assert [p.id for p in problems] == ["django_rclone_celery.E026"]
    assert message in problems[0].msg


@pytest.mark.django_db(transaction=True, databases=["default"])
def test_odd_task_arguments_fail_the_task_at_once(
    task_app: Any, workers: Any, remote_dir: Path
) -> None:
    """A typo in a PeriodicTask's kwargs fails the run at the door: never a "succeeded" backup."""
    workers.start()
    for task, kwargs, message in [
        ("db_backup", {"format": "xml"}, "format: 'xml' is not one of"),
        ("db_backup", {"compression": "gzip"}, "compression: 'gzip' is not one of"),
        ("db_cleanup", {"keep": "ten"}, "keep: 'ten' is not a whole number"),
    ]:
        result = task_app.send_task(registry.TASK_PREFIX + task, kwargs=kwargs)
        with pytest.raises(Exception, match=message) as caught:
            result.get(timeout=60)
        assert type(caught.value).__name__ == "InvalidArguments"
        row = BackupRun.objects.get(task_id=result.id)
        assert (row.operation, row.status) == (task, "failed")
        assert message in row.error
    assert remote_files(remote_dir) == []


# -- in-process runs: a ledger row and the lease ---------------------------------


def _hold(alias: str) -> locks.Lease | locks.FileLease:
    holder = locks.lease(alias)
    assert holder.acquire()
    return holder


@pytest.mark.parametrize("alias", PG_MARIA)
@pytest.mark.django_db(transaction=True, databases=["default", "pg", "maria"])
def test_in_process_commands_leave_ledger_rows_and_wait_for_the_lease(
    alias: str, remote_dir: Path, drc_config: Any, media_root: Path
) -> None:
    populate(alias)
    call("dbbackup", "-d", alias)
    backup = BackupRun.objects.get()
    assert (backup.operation, backup.database, backup.status) == ("db_backup", alias, "succeeded")
    assert backup.slot.startswith(MANUAL_SLOT)
    assert backup.path
    assert backup.lock_token
    assert str(backup.worker).endswith(f"pid {__import__('os').getpid()}")

    # A worker's run (here: a lease held by the test) makes the command wait.
    holder = _hold(alias)
    done: list[Any] = []
    thread = threading.Thread(
        target=lambda: done.append(call("dbrestore", "-d", alias, "--noinput")), daemon=True
    )
    thread.start()

    def waiting() -> Any:
        return BackupRun.objects.filter(
            operation="db_restore", status="queued", stage="waiting for lock"
        ).first()

    wait_for(waiting, timeout=30, what="the restore waiting for the lease")
    time.sleep(0.5)
    assert not done  # still waiting: nothing restored under somebody else's lease
    holder.release()
    thread.join(timeout=120)
    connections[alias].close()  # the restore, on its thread, replaced the database under it
    out, err = done[0]
    assert f"Restored {alias}" in out
    assert f"another run holds the lock on {alias!r}; waiting for it" in err
    restore = BackupRun.objects.get(operation="db_restore")
    assert restore.status == "succeeded"
    assert restore.started is not None
    assert restore.seen is not None

    # Waiting is bounded by LOCK_WAIT: then one clear line, nothing changed.
    drc_config(LOCK_WAIT=1)
    holder = _hold(alias)
    try:
        with pytest.raises(CommandError, match=r"held the lock on .* longer than LOCK_WAIT"):
            call("dbbackup", "-d", alias)
    finally:
        holder.release()
    refused = BackupRun.objects.filter(operation="db_backup").order_by("-pk").first()
    assert refused is not None
    assert refused.status == "failed"
    assert len([f for f in remote_files(remote_dir) if not f.endswith(".json")]) == 1

    # Media commands too (under the "media" lease).
    (media_root / "a.txt").write_text("a")
    call("mediabackup")
    call("mediarestore", "--noinput")
    media = list(BackupRun.objects.filter(database="").values_list("operation", "status", "slot"))
    assert sorted(m[:2] for m in media) == [
        ("media_backup", "succeeded"),
        ("media_restore", "succeeded"),
    ]
    assert all(slot.startswith(MANUAL_SLOT) for *_, slot in media)


class LedgerOn:
    """A database router that keeps the ledger on the alias in ``alias``."""

    alias = "default"

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        return self.alias if model is BackupRun else None

    db_for_write = db_for_read


class LedgerOnPg(LedgerOn):
    alias = "pg"


class LedgerOnMaria(LedgerOn):
    alias = "maria"


@pytest.mark.parametrize("alias", PG_MARIA)
@pytest.mark.django_db(transaction=True, databases=["default", "pg", "maria"])
def test_an_in_process_restore_of_the_ledgers_database_keeps_the_history(
    alias: str, remote_dir: Path, settings: Any
) -> None:
    router = {"pg": LedgerOnPg, "maria": LedgerOnMaria}[alias]
    settings.DATABASE_ROUTERS = [f"{__name__}.{router.__name__}"]
    assert ledger.ledger_alias() == alias
    populate(alias)
    first = snapshot(alias)
    call("dbbackup", "-d", alias)
    name = BackupRun.objects.get().result["name"]  # type: ignore[index]
    populate(alias, authors=2, books=1)
    call("dbbackup", "-d", alias)
    call("verifybackup", "-d", alias)
    call("dbrestore", "-d", alias, "-i", name, "--noinput")
    assert snapshot(alias) == first
    history = list(BackupRun.objects.order_by("pk").values_list("operation", "status", "error"))
    # The restored database held the ledger of the first backup's time (that
    # backup "running"); the history came back whole, and nothing was abandoned.
    assert history == [
        ("db_backup", "succeeded", ""),
        ("db_backup", "succeeded", ""),
        ("db_verify", "succeeded", ""),
        ("db_restore", "succeeded", ""),
    ]
    assert not BackupRun.objects.using("default").exists()


def test_commands_without_a_lock_server_lock_on_this_host(task_app: Any, drc_config: Any) -> None:
    """No LOCK_URL and no Redis broker (a project without workers): file leases in the temp dir."""
    drc_config(LOCK_URL=None)
    task_app.conf.broker_url = "amqp://guest@127.0.0.1//"
    first, second = lease_here("guard-local"), lease_here("guard-local")
    assert isinstance(first, locks.FileLease)
    assert first.path.startswith(local_lock_dir())
    assert first.acquire()
    try:
        assert not second.acquire()  # two commands on this host exclude each other
    finally:
        first.release()


def test_projects_without_a_lock_server_do_not_wait_for_each_other(
    task_app: Any, drc_config: Any
) -> None:
    """Their file leases live in one folder per NAMESPACE (#14: shared hosts)."""
    drc_config(LOCK_URL=None, NAMESPACE="shop")
    task_app.conf.broker_url = "amqp://guest@127.0.0.1//"
    shop = lease_here("default")
    drc_config(LOCK_URL=None, NAMESPACE="blog")
    blog = lease_here("default")
    assert isinstance(shop, locks.FileLease)
    assert isinstance(blog, locks.FileLease)
    assert shop.path != blog.path
    assert shop.acquire()
    try:
        assert blog.acquire()  # another project's "default" is not ours
        blog.release()
    finally:
        shop.release()
