"""Runs from every entry point at once, and the lease under a broker restart (#16.1, #16.2, #17.1).

Real parts only: ``manage.py`` commands in their own interpreters, real
``celery worker`` processes, real ``redis-server`` processes stopped and
started again.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings
from django.db import connections

from django_rclone_celery import locks
from django_rclone_celery.ledger import queued_timeout
from django_rclone_celery.models import BackupRun
from tests.helpers.databases import make_big_table, populate, snapshot
from tests.helpers.network import free_port
from tests.helpers.processes import find_pids
from tests.helpers.remotes import remote_files
from tests.helpers.tasks import BACKUP, SLOW_STREAM
from tests.helpers.workers import RedisServer, Workers, wait_for

ROOT = Path(__file__).resolve().parents[2]
ENGINES = [
    pytest.param(
        alias,
        marks=pytest.mark.django_db(transaction=True, databases=sorted({"default", alias})),
        id=alias,
    )
    for alias in ("default", "pg", "maria")
]


def manage(*args: str) -> subprocess.Popen[str]:
    """``manage.py <args>`` in its own interpreter, seeing this test's databases and settings."""
    config = {
        "databases": {a: connections[a].settings_dict["NAME"] for a in connections},
        "django_rclone": dict(django_settings.DJANGO_RCLONE),
        "media_root": str(django_settings.MEDIA_ROOT),
    }
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.worker_settings",
        "DRC_WORKER_CONFIG": json.dumps(config),
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "django", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 180) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def assert_never_overlapped(alias: str) -> list[BackupRun]:
    """Every run on ``alias`` held the lease alone: each ended before the next began."""
    runs = list(BackupRun.objects.filter(database=alias, status="succeeded").order_by("started"))
    for before, after in itertools.pairwise(runs):
        assert before.finished is not None
        assert after.started is not None
        assert before.finished <= after.started, (before, after)
    return runs


def backups(remote: Path, alias: str) -> set[str]:
    return {
        Path(f).name
        for f in remote_files(remote)
        if Path(f).name.startswith(f"{alias}-") and not f.endswith(".json")
    }


@pytest.mark.slow  # ~30-50 s per engine on two busy cores
@pytest.mark.parametrize("alias", ENGINES)
def test_runs_from_every_entry_point_never_overlap(
    alias: str, remote_dir: Path, task_app: Any, workers: Any
) -> None:
    """Ten backups at once (in-process and through workers), two restores at once, and a
    backup started during a restore: serialised by the lease, every reported backup kept,
    the live database equal to exactly one backup."""
    populate(alias)
    connections.close_all()
    workers.start(concurrency=2)
    # Ten backups at once: five manage.py processes, five worker runs.
    procs = [manage("dbbackup", "-d", alias, "--json") for _ in range(5)]
    sent = [task_app.send_task(BACKUP, kwargs={"database": alias}) for _ in range(5)]
    reported = [json.loads(finish(p)[1])["name"] for p in procs]
    reported += [r.get(timeout=180)["name"] for r in sent]
    assert len(set(reported)) == 10
    assert set(reported) <= backups(remote_dir, alias)
    assert len(assert_never_overlapped(alias)) == 10
    first = snapshot(alias)

    # A second state, and its backup.
    populate(alias, authors=2, books=1)
    second = snapshot(alias)
    code, out, err = finish(manage("dbbackup", "-d", alias, "--json"))
    assert code == 0, err
    newest = json.loads(out)["name"]

    # Two restores of one database at once: one after the other, never mixed.
    connections.close_all()
    a = manage("dbrestore", "-d", alias, "-i", reported[0], "--noinput")
    b = manage("dbrestore", "-d", alias, "-i", newest, "--noinput")
    results = [finish(a), finish(b)]
    assert [r[0] for r in results] == [0, 0], results
    connections.close_all()
    assert snapshot(alias) in (first, second)

    # A backup started while a restore runs waits for it, and backs up what it restored.
    restore = manage("dbrestore", "-d", alias, "-i", reported[0], "--noinput")
    wait_for(
        lambda: BackupRun.objects.filter(
            operation="db_restore", database=alias, status="running"
        ).exists(),
        timeout=60,
        what="the restore running",
    )
    backup = manage("dbbackup", "-d", alias, "--json")
    assert finish(restore)[0] == 0
    code, out, err = finish(backup)
    assert code == 0, err
    during = json.loads(out)["name"]
    connections.close_all()
    assert snapshot(alias) == first
    runs = assert_never_overlapped(alias)
    assert [r.operation for r in runs][-2:] == ["db_restore", "db_backup"]
    # That backup holds the restored state in full: restore it and compare.
    populate(alias, authors=1, books=1)
    connections.close_all()
    code, _, err = finish(manage("dbrestore", "-d", alias, "-i", during, "--noinput"))
    assert code == 0, err
    connections.close_all()
    assert snapshot(alias) == first
    assert set(reported) | {newest, during} <= backups(remote_dir, alias)


# -- a broker restart ----------------------------------------------------------------


class OwnRedis:
    """A ``redis-server`` of this test only, stopped and started again on the same port."""

    def __init__(self, directory: Path) -> None:
        self.binary = shutil.which("redis-server") or pytest.fail("redis-server not found")
        self.directory = directory
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> OwnRedis:
        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--dir", str(self.directory)]
        with open(self.directory / "redis.log", "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        client = self.client()
        for _ in range(200):
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                time.sleep(0.02)
        pytest.fail("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)  # no persistence: every key is gone
            self.proc.wait(timeout=30)

    def restart(self) -> None:
        self.stop()
        self.start()

    def client(self, db: int = 2) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, db=db, socket_timeout=5)

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path).start()
    try:
        yield server
    finally:
        server.stop()


def _slow_pg_backup(own_redis: OwnRedis, drc_config: Any) -> subprocess.Popen[str]:
    drc_config(LOCK_URL=own_redis.url(2), LOCK_TTL=3, LOCK_RETRY_DELAY=0.5, **SLOW_STREAM)
    locks._client.cache_clear()
    make_big_table("pg", "guard_big", 50_000)
    connections.close_all()
    proc = manage("dbbackup", "-d", "pg")
    wait_for(
        lambda: BackupRun.objects.filter(
            database="pg", status="running", stage="dump", bytes_done__gt=0
        ).first(),
        timeout=60,
        what="the backup streaming",
    )
    return proc


@pytest.mark.django_db(transaction=True, databases=["default", "pg"])
def test_a_lease_lost_in_a_broker_restart_is_taken_back(
    own_redis: OwnRedis, remote_dir: Path, drc_config: Any
) -> None:
    proc = _slow_pg_backup(own_redis, drc_config)
    row = BackupRun.objects.get(status="running")
    own_redis.restart()
    assert own_redis.client().get(locks.lock_key("pg")) is None  # the restart lost the lease
    # The heartbeat (every TTL/3) takes it back, since nobody else holds it.
    wait_for(
        lambda: own_redis.client().get(locks.lock_key("pg")) == row.lock_token.encode(),
        timeout=10,
        what="the lease taken back",
    )
    code, _out, err = finish(proc)
    assert code == 0, err
    assert BackupRun.objects.get(pk=row.pk).status == "succeeded"
    assert len(backups(remote_dir, "pg")) == 1


@pytest.mark.django_db(transaction=True, databases=["default", "pg"])
def test_a_run_whose_lease_was_taken_stops_and_publishes_nothing(
    own_redis: OwnRedis, remote_dir: Path, drc_config: Any
) -> None:
    proc = _slow_pg_backup(own_redis, drc_config)
    row = BackupRun.objects.get(status="running")
    # What a broker restart followed by another run's acquire leaves: the key, not ours.
    with own_redis.client().pipeline(transaction=True) as pipe:
        pipe.delete(locks.lock_key("pg"))
        pipe.set(locks.lock_key("pg"), "another-run", px=60_000)
        pipe.execute()
    started = time.monotonic()
    code, _, err = finish(proc)
    assert time.monotonic() - started < 10  # stopped at the next heartbeat, not at the end
    assert code == 1
    assert "lost the lock on 'pg' while working: another run took it" in err
    assert "Traceback" not in err
    failed = BackupRun.objects.get(pk=row.pk)
    assert failed.status == "failed"
    assert failed.error.startswith("LeaseLost: lost the lock on 'pg'")
    assert remote_files(remote_dir) == []  # no backup, no partial, no manifest
    name = connections["pg"].settings_dict["NAME"]
    assert find_pids("pg_dump", contains=name) == []  # the tool died with the run
    assert own_redis.client().get(locks.lock_key("pg")) == b"another-run"  # left alone


@pytest.mark.django_db(transaction=True, databases=["default", "pg"])
def test_a_queued_run_whose_message_was_lost_is_taken_over(
    own_redis: OwnRedis, remote_dir: Path, drc_config: Any, tmp_path: Path
) -> None:
    from tests.celery_app import app

    drc_config(LOCK_URL=own_redis.url(2), LOCK_TTL=3, LOCK_RETRY_DELAY=0.5, TASK_MAX_RETRIES=2)
    locks._client.cache_clear()
    before = {"broker_url": app.conf.broker_url, "result_backend": app.conf.result_backend}

    def point_app(**urls: Any) -> None:
        app._pool = None  # drop cached pools and backends, as the task_app fixture does
        if "amqp" in app.__dict__:
            app.__dict__["amqp"]._producer_pool = None
        app._backend_cache = None
        app._local.__dict__.pop("backend", None)
        app.conf.update(**urls)

    point_app(broker_url=own_redis.url(0), result_backend=own_redis.url(1))
    app.set_current()
    pool = Workers(RedisServer(port=own_redis.port, pid=0), tmp_path)
    try:
        pool.start()
        # Another run holds the database: the message waits (queued) and retries.
        holder = locks.lease("pg")
        assert holder.acquire()
        with locks.Heartbeat(holder):
            first = app.send_task(BACKUP, kwargs={"database": "pg", "idempotency_key": "k"})
            wait_for(
                lambda: BackupRun.objects.filter(
                    task_id=first.id, stage="waiting for lock"
                ).first(),
                timeout=60,
                what="the run waiting for the lease",
                pool=pool,
            )
            own_redis.restart()  # the retry message is gone with the broker
            for worker in pool.started:
                worker.stop()
            pool.start("w2")
        holder.release()
        lost_at = time.monotonic()
        # The same key again: skipped while the lost run could still be alive, then taken over.
        while True:
            result = app.send_task(BACKUP, kwargs={"database": "pg", "idempotency_key": "k"})
            outcome = result.get(timeout=60)
            if outcome["status"] != "skipped":
                break
            assert outcome["reason"] == "already queued"
            assert time.monotonic() - lost_at < queued_timeout() + 30
            time.sleep(1)
        assert outcome["status"] == "succeeded"
        row = BackupRun.objects.get(slot="key:k")
        assert (row.status, row.task_id) == ("succeeded", result.id)
        assert len(backups(remote_dir, "pg")) == 1
    finally:
        for worker in pool.started:
            worker.stop()
        point_app(**before)
