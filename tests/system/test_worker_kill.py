"""Killing workers: SIGKILL mid-backup and mid-restore, soft time limits, and a
restore of the very database that holds the run ledger.

Every test runs ``celery worker`` subprocesses (prefork pool, own process
group) against the throwaway Redis of ``tests/helpers/workers.py``.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

from django_rclone_celery.models import BackupRun
from django_rclone_celery.operations import backup_database, list_backups
from tests.helpers.databases import damage, make_big_table, populate, snapshot, staging_leftovers
from tests.helpers.processes import find_pids
from tests.helpers.tasks import BACKUP, RESTORE, SLOW_STREAM, complete_backups
from tests.helpers.workers import BROKER_DB, wait_for

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "pg"])

CLEANUP = "django_rclone_celery.db_cleanup"
# 4 rounds kill the whole worker twice and its pool child twice; DRC_KILL_LOOPS=50
# for a longer hunt.
KILL_LOOPS = int(os.environ.get("DRC_KILL_LOOPS", "4"))


def running_tools(marker: str) -> list[int]:
    return (
        find_pids("pg_dump", marker) + find_pids("pg_restore", marker) + find_pids("rclone", marker)
    )


def streaming(result: Any, stage: str) -> bool:
    """The task reports bytes flowing in ``stage`` (its PROGRESS state)."""
    info = result.info if result.state == "PROGRESS" else None
    return bool(info and info["stage"] == stage and info["bytes_done"] > 0)


@pytest.mark.slow
@pytest.mark.timeout(1200)  # 20 rounds of ~9 s, and room for a slow machine
def test_sigkill_mid_backup_leaves_exactly_one_complete_backup(
    task_app: Any, workers: Any, remote_dir: Path, drc_config: Any, capsys: Any
) -> None:
    make_big_table("pg", "drc_big", 20_000)
    drc_config(**SLOW_STREAM)  # ~2 s of streaming to kill into
    directory = remote_dir / "db"
    worker = workers.start("w0", visibility_timeout=3)
    failures: list[str] = []
    for i in range(KILL_LOOPS):
        # Even rounds kill the whole worker (a crash of the host or container);
        # odd rounds kill only the pool process running the task.
        whole = i % 2 == 0
        result = task_app.send_task(BACKUP, kwargs={"database": "pg"})
        try:
            wait_for(lambda: streaming(result, "dump"), what="dump", pool=workers)
            if whole:
                worker.kill()
                worker = workers.start(f"w{i + 1}", visibility_timeout=3)
            else:
                [child] = worker.pool_children()
                os.kill(child, signal.SIGKILL)
            wait_for(lambda: result.state == "SUCCESS", timeout=120, what="success", pool=workers)
            run = BackupRun.objects.get(task_id=result.id)
            assert (run.status, run.attempts) == ("succeeded", 2), run
            backups = complete_backups(directory)
            assert len(backups) == i + 1, backups
            assert run.path.endswith(backups[-1]) or run.path in {
                str(directory / b) for b in backups
            }
            # The killed run's programs do not linger.
            wait_for(lambda: not running_tools(str(remote_dir)), timeout=30, what="no orphans")
        except AssertionError as exc:
            where = "worker" if whole else "pool child"
            failures.append(f"round {i} ({where}): {str(exc)[:300]}\n{worker.log()[-6000:]}")
            break
    with capsys.disabled():
        print(f"\nSIGKILL loop: {KILL_LOOPS} rounds, {len(failures)} failures")
    assert not failures, failures
    assert len(list_backups("pg")) == KILL_LOOPS


def test_a_restore_killed_midway_leaves_the_live_database_unchanged(
    task_app: Any, workers: Any, remote_dir: Path, drc_config: Any, redis_server: Any
) -> None:
    populate("pg")
    make_big_table("pg", "drc_big", 30_000)
    original = snapshot("pg")
    drc_config(COMPRESSION="none")
    backup_database("pg")  # ~3.3 MB: three seconds of restore stream to kill into
    damage("pg")
    damaged = snapshot("pg")
    drc_config(**SLOW_STREAM)  # the restore reads the backup at ~1 MB/s
    worker = workers.start("w1", visibility_timeout=2)
    kwargs = {"database": "pg", "idempotency_key": "restore-1"}
    result = task_app.send_task(RESTORE, kwargs=kwargs)
    wait_for(lambda: streaming(result, "restore"), what="restore stream", pool=workers)
    worker.kill()

    assert snapshot("pg") == damaged
    # Acknowledged on receipt: nothing is left for Redis to deliver again.
    broker = redis_server.client(BROKER_DB)
    assert broker.hlen("unacked") == 0
    assert broker.llen("celery") == 0
    workers.start("w2", visibility_timeout=2)
    run = BackupRun.objects.get(task_id=result.id)
    assert (run.status, run.attempts) == ("running", 1)
    # The same request again is refused, not silently re-run.
    again = task_app.send_task(RESTORE, kwargs=kwargs).get(timeout=60)
    assert again["status"] == "skipped"
    assert "not retried" in again["reason"]
    run.refresh_from_db()
    assert run.status == "failed"
    assert snapshot("pg") == damaged
    # A new request restores, and clears what the killed one left behind.
    drc_config(RCLONE_FLAGS=[])
    # w2 has the slow stream's settings: stopped first, or it may take the new
    # request and lose it to its own SIGTERM.
    workers.started[-1].stop()
    workers.start("w3")
    fresh = task_app.send_task(RESTORE, kwargs={"database": "pg"})
    assert fresh.get(timeout=120)["status"] == "succeeded"
    connections["pg"].close()
    assert snapshot("pg") == original
    assert staging_leftovers("pg") == []


def test_the_soft_time_limit_kills_the_dump_and_leaves_no_partial(
    task_app: Any, workers: Any, remote_dir: Path, drc_config: Any
) -> None:
    make_big_table("pg", "drc_big", 50_000)
    drc_config(TASK_SOFT_TIME_LIMIT=2, TASK_TIME_LIMIT=60, **SLOW_STREAM)  # ~5 s of streaming
    worker = workers.start("w1")
    [child] = worker.pool_children()
    result = task_app.send_task(BACKUP, kwargs={"database": "pg"})
    with pytest.raises(Exception) as caught:
        result.get(timeout=60)
    assert type(caught.value).__name__ == "SoftTimeLimitExceeded"
    run = BackupRun.objects.get(task_id=result.id)
    assert run.status == "failed"
    assert run.stage == "dump"
    assert "SoftTimeLimitExceeded" in run.error
    # The dump tool and rclone were killed and reaped before the task failed...
    assert running_tools(str(remote_dir)) == []
    dbname = connections["pg"].settings_dict["NAME"]
    assert find_pids("pg_dump", dbname) == []
    # ...and the partial upload was deleted: nothing at all is left.
    assert not any((remote_dir / "db").iterdir())
    failed = [s for s in workers.signals() if s["signal"] == "stage_failed"]
    assert [(s["stage"], s["exception"]) for s in failed] == [("dump", "SoftTimeLimitExceeded")]
    # The soft limit cost the task, not the worker process.
    assert worker.pool_children() == [child]


def test_the_ledger_survives_a_restore_of_its_own_database(
    task_app: Any, workers: Any, remote_dir: Path
) -> None:
    populate("default")
    original = snapshot("default")
    workers.start("w1")
    backup = task_app.send_task(BACKUP, kwargs={"database": "default"}).get(timeout=120)
    cleanup = task_app.send_task(CLEANUP, kwargs={"database": "default", "keep": 5}).get(
        timeout=120
    )
    damage("default")
    connections["default"].close()
    restore = task_app.send_task(
        RESTORE, kwargs={"database": "default", "idempotency_key": "restore-default"}
    ).get(timeout=120)
    assert restore["status"] == "succeeded"
    assert restore["path"] == backup["path"]

    connections["default"].close()  # the file under this connection was replaced
    assert snapshot("default") == original
    runs = {r.task_id: r for r in BackupRun.objects.all()}
    # The backup's own row was "running" inside the dump; the ledger kept the truth.
    assert sorted((r.operation, r.status) for r in runs.values()) == [
        ("db_backup", "succeeded"),
        ("db_cleanup", "succeeded"),
        ("db_restore", "succeeded"),
    ]
    assert runs[restore["task_id"]].slot == "key:restore-default"
    assert runs[restore["task_id"]].path == backup["path"]
    assert runs[cleanup["task_id"]].finished is not None
    # New runs after the restore get fresh ids and records.
    after = task_app.send_task(BACKUP, kwargs={"database": "default"}).get(timeout=120)
    assert after["status"] == "succeeded"
    connections["default"].close()
    assert after["run"] > max(r.pk for r in runs.values())
    assert BackupRun.objects.count() == 4


def test_a_restore_whose_pool_process_dies_is_not_rerun_and_leaves_no_orphans(
    task_app: Any, workers: Any, remote_dir: Path, drc_config: Any, redis_server: Any
) -> None:
    make_big_table("pg", "drc_big", 30_000)
    drc_config(COMPRESSION="none")
    backup_database("pg")
    damage_marker = "UPDATE drc_big SET a = 'changed' WHERE id = 1"
    with connections["pg"].cursor() as cursor:
        cursor.execute(damage_marker)
    before = snapshot("pg", ("drc_big",))
    drc_config(**SLOW_STREAM)
    worker = workers.start("w1")
    result = task_app.send_task(RESTORE, kwargs={"database": "pg"})
    wait_for(lambda: streaming(result, "restore"), what="restore stream", pool=workers)
    # As the OOM killer or a hard time limit would: only the pool process dies.
    [child] = worker.pool_children()
    os.kill(child, signal.SIGKILL)
    with pytest.raises(Exception) as caught:
        result.get(timeout=60)
    assert type(caught.value).__name__ == "WorkerLostError"
    # rclone and pg_restore lost their parent; the pipe's ends close and they exit.
    wait_for(lambda: not running_tools(str(remote_dir)), timeout=30, what="no orphans")
    assert snapshot("pg", ("drc_big",)) == before
    broker = redis_server.client(BROKER_DB)
    assert (broker.hlen("unacked"), broker.llen("celery")) == (0, 0)  # not queued again
    run = BackupRun.objects.get(task_id=result.id)
    assert run.status == "running"  # it died with its process
    # The next run on the database holds its lease, so it knows that run is dead.
    cleanup = task_app.send_task(CLEANUP, kwargs={"database": "pg"}).get(timeout=120)
    assert cleanup["status"] == "succeeded"
    run.refresh_from_db()
    assert run.status == "failed"
    assert "abandoned" in run.error
    assert BackupRun.objects.filter(operation="db_restore").count() == 1
    assert snapshot("pg", ("drc_big",)) == before


def test_a_backup_whose_worker_keeps_dying_gives_up_instead_of_looping(
    task_app: Any, workers: Any, remote_dir: Path, drc_config: Any
) -> None:
    make_big_table("pg", "drc_big", 50_000)
    drc_config(**SLOW_STREAM)  # ~5 s per attempt; TASK_MAX_RETRIES=2 (lock_config)
    worker = workers.start("w1")
    result = task_app.send_task(BACKUP, kwargs={"database": "pg"})
    for attempt in (1, 2, 3):

        def dumping(attempt: int = attempt) -> bool:
            return BackupRun.objects.filter(
                task_id=result.id, attempts=attempt, stage="dump", bytes_done__gt=0
            ).exists()

        wait_for(dumping, timeout=120, what=f"attempt {attempt} dumping", pool=workers)
        [child] = worker.pool_children()
        os.kill(child, signal.SIGKILL)
    # reject_on_worker_lost puts the message back each time; the ledger stops it.
    wait_for(lambda: result.state == "FAILURE", timeout=120, what="failure", pool=workers)
    assert type(result.result).__name__ == "TooManyAttempts"
    run = BackupRun.objects.get(task_id=result.id)
    assert (run.status, run.attempts) == ("failed", 4)
    assert "giving up" in run.error
    assert complete_backups(remote_dir / "db") == []


def test_the_soft_time_limit_stops_a_restore_and_leaves_the_database_as_it_was(
    task_app: Any, workers: Any, remote_dir: Path, drc_config: Any
) -> None:
    make_big_table("pg", "drc_big", 100_000)
    drc_config(COMPRESSION="none")
    backup_database("pg")
    with connections["pg"].cursor() as cursor:
        cursor.execute("UPDATE drc_big SET a = 'changed since the backup' WHERE id <= 10")
    before = snapshot("pg", ("drc_big",))
    # ~10 s to read; the limit leaves a busy machine 4 s to get past "prepare" (at 2 s
    # it once struck there) and still falls well inside the stream.
    drc_config(TASK_SOFT_TIME_LIMIT=4, TASK_TIME_LIMIT=60, **SLOW_STREAM)
    workers.start("w1")
    result = task_app.send_task(RESTORE, kwargs={"database": "pg"})
    with pytest.raises(Exception) as caught:
        result.get(timeout=60)
    # The operation reports it as a failed restore that changed nothing.
    assert type(caught.value).__name__ == "RestoreError"
    assert "SoftTimeLimitExceeded" in str(caught.value)
    assert "not changed" in str(caught.value)
    assert running_tools(str(remote_dir)) == []
    assert running_tools(connections["pg"].settings_dict["NAME"]) == []
    assert snapshot("pg", ("drc_big",)) == before
    assert staging_leftovers("pg") == []
    run = BackupRun.objects.get(task_id=result.id)
    assert (run.status, run.stage) == ("failed", "restore")
