"""Idempotent runs: slots, the ledger, the lease lock, with real workers and Redis.

The first half drives ``celery worker`` subprocesses; the second checks the
ledger, slot and lock building blocks directly against the real databases
and Redis server, for the cases a worker cannot be made to hit on demand.
"""

from __future__ import annotations

import datetime as dt
import itertools
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from django_rclone_celery import ledger, locks
from django_rclone_celery.models import BackupRun, Status
from django_rclone_celery.operations import list_backups
from tests.helpers.databases import make_big_table, populate
from tests.helpers.tasks import BACKUP, SLOW_STREAM

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "pg"])


def _outcomes(results: list[Any]) -> list[str]:
    return sorted(r.get(timeout=180)["status"] for r in results)


# -- with workers --------------------------------------------------------------


def test_two_messages_for_the_same_slot_produce_one_backup(
    task_app: Any, workers: Any, remote_dir: Path, drc_config: Any
) -> None:
    make_big_table("pg", "drc_big", 20_000)
    drc_config(**SLOW_STREAM)
    workers.start("w1")
    workers.start("w2")
    kwargs = {"database": "pg", "idempotency_key": "nightly-1"}
    first, second = (task_app.send_task(BACKUP, kwargs=kwargs) for _ in range(2))
    assert _outcomes([first, second]) == ["skipped", "succeeded"]
    assert len(list_backups("pg")) == 1
    [run] = BackupRun.objects.all()
    assert (run.slot, run.status, run.attempts) == ("key:nightly-1", "succeeded", 1)
    # Later messages for the slot are skipped too, and say which run did it.
    late = task_app.send_task(BACKUP, kwargs=kwargs).get(timeout=60)
    assert late["status"] == "skipped"
    assert late["reason"] == "already succeeded"
    assert late["path"] == run.path
    assert len(list_backups("pg")) == 1


def test_beat_messages_for_one_schedule_tick_produce_one_backup(
    task_app: Any, workers: Any, remote_dir: Path
) -> None:
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    populate("pg")
    every = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.DAYS)
    PeriodicTask.objects.create(name="nightly pg", task=BACKUP, interval=every)
    workers.start("w1", concurrency=2)
    # What DatabaseScheduler sends: the schedule's name in a header.
    headers = {"periodic_task_name": "nightly pg"}
    results = [
        task_app.send_task(BACKUP, kwargs={"database": "pg"}, headers=headers) for _ in range(2)
    ]
    assert _outcomes(results) == ["skipped", "succeeded"]
    [run] = BackupRun.objects.all()
    today = timezone.now().strftime("%Y-%m-%dT00:00:00Z")
    assert run.slot == f"beat:nightly pg:{today}"
    assert len(list_backups("pg")) == 1


def test_a_redelivered_message_runs_once_while_the_first_run_goes_on(
    task_app: Any, workers: Any, remote_dir: Path, drc_config: Any
) -> None:
    make_big_table("pg", "drc_big", 50_000)
    drc_config(**SLOW_STREAM)  # ~5 s, more than twice the visibility timeout
    workers.start("w1", visibility_timeout=2)
    workers.start("w2", visibility_timeout=2)
    result = task_app.send_task(BACKUP, kwargs={"database": "pg"})
    value = result.get(timeout=180)
    assert value["status"] == "succeeded"
    logs = "\n".join(w.log() for w in workers.started)
    # Redis handed the message out again while it ran; the copy was skipped.
    assert logs.count(f"db_backup[{result.id}] received") >= 2, workers.logs()
    assert f"skipped task {result.id} (slot task:{result.id}): already running" in logs
    assert len(list_backups("pg")) == 1
    [run] = BackupRun.objects.all()
    assert (run.status, run.attempts) == ("succeeded", 1)
    # The copy kept the first delivery's result (it was ignored, not "skipped").
    assert result.get(timeout=5)["path"] == run.path


def test_ten_concurrent_triggers_for_one_database_run_one_at_a_time(
    task_app: Any, workers: Any, remote_dir: Path
) -> None:
    populate("pg")
    workers.start("w1", concurrency=2)
    workers.start("w2", concurrency=2)
    results = [task_app.send_task(BACKUP, kwargs={"database": "pg"}) for _ in range(10)]
    assert _outcomes(results) == ["succeeded"] * 10
    runs = list(BackupRun.objects.order_by("started"))
    assert len(runs) == 10
    assert all(r.status == Status.SUCCEEDED for r in runs)
    for before, after in itertools.pairwise(runs):
        assert before.finished <= after.started, (before, after)
    assert len(list_backups("pg")) == 10
    logs = "\n".join(w.log() for w in workers.started)
    assert "is busy, retrying in" in logs  # they did collide, and queued


# -- building blocks -------------------------------------------------------------


def _row(**fields: Any) -> BackupRun:
    base = {"operation": "db_backup", "database": "pg", "slot": "s", "task_id": "t1"}
    return BackupRun.objects.create(**{**base, **fields})


def test_examine_decides_from_the_row_and_the_lease() -> None:
    assert ledger.examine(_row(status="succeeded", slot="a", task_id="a"), "x", False).reason == (
        "already succeeded"
    )
    assert ledger.examine(_row(status="failed", slot="b", task_id="b"), "x", False).run
    live = _row(status="running", slot="c", task_id="c", lock_token="tok")
    assert ledger.examine(live, "x", True) == ledger.Verdict(False, "already running")
    # The owner no longer renews the lease: it died; take the run over...
    assert ledger.examine(live, "x", False).run
    # ...except a restore, which is marked failed and never re-run silently.
    verdict = ledger.examine(live, "x", False, at_most_once=True)
    assert not verdict.run
    live.refresh_from_db()
    assert live.status == "failed"
    assert "worker died" in live.error
    queued = _row(status="queued", slot="d", task_id="d")
    assert ledger.examine(queued, "d", False).run  # its own retry
    assert ledger.examine(queued, "x", False).reason == "already queued"


def test_examine_takes_over_a_queued_row_that_waited_too_long(drc_config: Any) -> None:
    drc_config(LOCK_WAIT=60)
    old = _row(status="queued", created=timezone.now() - dt.timedelta(seconds=61))
    assert ledger.examine(old, "x", False).run


def test_a_failed_slot_is_claimed_again_with_a_fresh_attempt_count() -> None:
    row, created = ledger.claim("db_backup", "pg", "key:k", "t1")
    assert created
    started = ledger.start(row, "t1", "tok1", "w")
    assert started is not None
    assert started.attempts == 1
    ledger.fail(started, RuntimeError("boom"))
    # A retry of the same message counts on...
    again, created = ledger.claim("db_backup", "pg", "key:k", "t1")
    assert not created
    assert again.status == "failed"
    retried = ledger.start(again, "t1", "tok2", "w")
    assert retried is not None
    assert retried.attempts == 2
    ledger.fail(retried, RuntimeError("boom"))
    # ...a new message for the slot starts over.
    other, created = ledger.claim("db_backup", "pg", "key:k", "t2")
    assert not created
    assert other.pk == row.pk
    fresh = ledger.start(other, "t2", "tok3", "w")
    assert fresh is not None
    assert (fresh.attempts, fresh.task_id, fresh.status, fresh.error) == (1, "t2", "running", "")
    # Taking over needs the state that was read: a stale copy loses.
    assert ledger.start(other, "t3", "tok4", "w") is None


def test_a_retried_message_finds_its_row_whatever_slot_it_computes_now() -> None:
    row, _ = ledger.claim("db_backup", "pg", "beat:x:2026-01-01T00:00:00Z", "t1")
    same, created = ledger.claim("db_backup", "pg", "beat:x:2026-01-02T00:00:00Z", "t1")
    assert (same.pk, created) == (row.pk, False)


def test_slots_come_from_the_key_the_explicit_slot_or_the_task() -> None:
    assert ledger.resolve_slot(task_id="t") == "task:t"
    assert ledger.resolve_slot(task_id="t", idempotency_key="k") == "key:k"
    assert ledger.resolve_slot(task_id="t", slot="mine", idempotency_key="k") == "mine"


def test_beat_slots_floor_the_time_to_the_schedule(drc_config: Any) -> None:
    from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

    now = dt.datetime(2026, 3, 10, 1, 17, 42, tzinfo=dt.timezone.utc)
    hourly = IntervalSchedule.objects.create(every=6, period=IntervalSchedule.HOURS)
    PeriodicTask.objects.create(name="six-hourly", task=BACKUP, interval=hourly)
    assert ledger.beat_time("six-hourly", now) == "2026-03-10T00:00:00Z"
    # 02:30 in Paris is 01:30 UTC: at 01:17 UTC the last run was yesterday's.
    paris = CrontabSchedule.objects.create(minute="30", hour="2", timezone="Europe/Paris")
    PeriodicTask.objects.create(name="nightly", task=BACKUP, crontab=paris)
    assert ledger.beat_time("nightly", now) == "2026-03-09T01:30:00Z"
    later = now.replace(hour=1, minute=45)
    assert ledger.beat_time("nightly", later) == "2026-03-10T01:30:00Z"
    # Without a PeriodicTask row (plain beat_schedule()): the SCHEDULES setting,
    # found by the namespaced entry name beat sends, then the minute.
    drc_config(SCHEDULES={"weekly": {"task": BACKUP, "crontab": "0 3 * * 0", "timezone": "UTC"}})
    assert ledger.beat_time("django_rclone_celery: weekly", now) == "2026-03-08T03:00:00Z"
    assert ledger.beat_time("weekly", now) == "2026-03-10T01:17:00Z"  # not a beat name
    assert ledger.beat_time("unknown", now) == "2026-03-10T01:17:00Z"


def test_previous_cron_time_needs_day_of_month_and_day_of_week() -> None:
    now = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.timezone.utc)
    # Friday the 13th: the last one before 10 March 2026 is 13 February 2026.
    when = ledger.previous_cron_time("0 9 13 * 5", "UTC", now)
    assert when == dt.datetime(2026, 2, 13, 9, 0, tzinfo=dt.timezone.utc)


def test_the_ledger_keeps_history_across_write_back() -> None:
    kept = _row(status="succeeded", slot="a", task_id="a")
    snapshot = ledger.take_snapshot()
    BackupRun.objects.filter(pk=kept.pk).update(status="running")  # as in an old dump
    stray = _row(slot="b", task_id="b", created=snapshot.taken - dt.timedelta(days=1))
    ledger.write_back(snapshot)
    assert list(BackupRun.objects.values_list("pk", "status")) == [(kept.pk, "succeeded")]
    assert not BackupRun.objects.filter(pk=stray.pk).exists()
    assert _row(slot="c", task_id="c").pk > kept.pk


def test_a_lease_is_exclusive_renewable_and_freed_by_its_owner_only(
    redis_server: Any, lock_config: Any
) -> None:
    first = locks.lease("pg")
    second = locks.lease("pg")
    assert first.acquire()
    assert not second.acquire()
    assert second.holder() == first.token
    assert not second.release()  # not its lock: nothing happens
    assert first.holder() == first.token
    client = redis_server.client(2)
    client.pexpire(locks.lock_key("pg"), 50)
    assert first.renew()
    assert client.pttl(locks.lock_key("pg")) > 1000
    assert locks.lease("other").acquire()  # one lock per database
    assert first.release()
    assert second.acquire()
    # An expired lease cannot be renewed, and its release frees nothing.
    client.delete(locks.lock_key("pg"))
    third = locks.lease("pg")
    assert third.acquire()
    assert not second.renew()
    assert not second.release()
    assert third.holder() == third.token


def test_a_heartbeat_reports_a_lost_lease(redis_server: Any, lock_config: Any) -> None:
    lease = locks.lease("pg", ttl=3)
    assert lease.acquire()
    with locks.Heartbeat(lease) as beat:
        redis_server.client(2).set(locks.lock_key("pg"), "thief")
        assert beat.lost.wait(timeout=10)
    assert lease.holder() == "thief"


def test_a_file_lease_is_exclusive_and_dies_with_its_holder(
    tmp_path: Path, drc_config: Any
) -> None:
    drc_config(LOCK_URL=f"file://{tmp_path}")
    first, second = locks.lease("pg"), locks.lease("pg")
    assert first.acquire()
    assert not second.acquire()
    assert second.holder() == first.token
    assert first.release()
    assert second.holder() is None
    # A holder that is killed loses the lock with its process.
    code = (
        "import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "os.write(fd, b'dead-token')\n"
        "print('locked', flush=True)\n"
        "time.sleep(600)\n"
    )
    # The with block closes the stdout pipe; finally kills the holder even if an assert fails.
    with subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path / "pg.lock")], stdout=subprocess.PIPE
    ) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline() == b"locked\n"
            assert second.holder() == "dead-token"
            assert not second.acquire()
        finally:
            proc.kill()
            proc.wait()
    assert second.holder() is None
    assert second.acquire()
    assert second.holder() == second.token
    second.release()


def test_a_live_owner_renews_its_lease_and_a_dead_one_does_not(
    redis_server: Any, lock_config: Any
) -> None:
    owner, observer = locks.lease("pg", ttl=3), locks.lease("pg", ttl=3)
    assert owner.acquire()
    with locks.Heartbeat(owner):
        assert observer.owner_alive(owner.token)
    # No heartbeat any more, as when the owner's process was killed: the lease
    # is still held for a moment, but nobody renews it.
    assert owner.holder() == owner.token
    assert not observer.owner_alive(owner.token)
    assert not observer.owner_alive("someone-else")


class LedgerOnPostgres:
    """A database router that keeps the ledger on the ``pg`` alias."""

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        return "pg" if model is BackupRun else None

    db_for_write = db_for_read


def test_write_back_moves_the_postgresql_sequence_past_the_snapshot(settings: Any) -> None:
    from django.db import connections

    settings.DATABASE_ROUTERS = [f"{__name__}.LedgerOnPostgres"]
    assert ledger.ledger_alias() == "pg"
    rows = [_row(slot=f"s{i}", task_id=f"t{i}", status="succeeded") for i in range(3)]
    snapshot = ledger.take_snapshot()
    # What the restored database looks like: an older ledger, an older sequence.
    BackupRun.objects.filter(pk__gt=rows[0].pk).delete()
    BackupRun.objects.filter(pk=rows[0].pk).update(status="running")
    with connections["pg"].cursor() as cursor:
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)",
            [BackupRun._meta.db_table, rows[0].pk],
        )
    ledger.write_back(snapshot)
    assert list(BackupRun.objects.order_by("pk").values_list("pk", "status")) == [
        (r.pk, "succeeded") for r in rows
    ]
    assert _row(slot="new", task_id="new").pk > rows[-1].pk
    assert not BackupRun.objects.using("default").exists()


def test_locks_need_redis_or_a_lock_url(task_app: Any, drc_config: Any) -> None:
    from django_rclone_celery.exceptions import ConfigurationError

    drc_config(LOCK_URL=None)
    assert locks.lock_url() == task_app.conf.broker_url  # the Redis broker
    task_app.conf.broker_url = "amqp://guest@127.0.0.1//"
    with pytest.raises(ConfigurationError, match="LOCK_URL"):
        locks.lock_url()
    drc_config(LOCK_URL="file:///tmp/x")
    assert locks.lock_url() == "file:///tmp/x"
