"""Outages and misuse: one line and a non-zero status (or an admin message), no traceback.

A broker or result backend that is down is a real loopback port with nothing
listening on it; commands run as ``manage.py`` subprocesses of a project whose
Celery app is loaded, as a user's would.
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from celery import Celery, _state
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse

from django_rclone_celery import enqueue
from django_rclone_celery.models import BackupRun
from tests.celery_redis import celery_config, celery_includes  # noqa: F401
from tests.helpers.workers import EMBEDDED_BROKER_DB, RedisServer

ROOT = Path(__file__).resolve().parents[2]
OUTAGE_DB = 6  # this module's broker/backend database on the session's throwaway Redis

# A project whose Celery app is loaded with the settings (as <project>/__init__.py does).
PROJECT_SETTINGS = """
from tests.settings import *  # noqa: F403
CELERY_BROKER_URL = {broker!r}
CELERY_RESULT_BACKEND = {backend!r}
import tests.celery_app  # noqa: E402,F401
"""


def closed_port() -> int:
    """A loopback port with nothing listening on it (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def manage(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``manage.py <args>`` for a project with the given broker and result backend."""
    (tmp_path / "remote" / "db").mkdir(parents=True)

    def run(
        *args: str, broker: str = "memory://", backend: str = "cache+memory://", **kw: Any
    ) -> subprocess.CompletedProcess[str]:
        (tmp_path / "outage_settings.py").write_text(
            PROJECT_SETTINGS.format(broker=broker, backend=backend)
        )
        env = {
            **os.environ,
            "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}",
            "DJANGO_SETTINGS_MODULE": "outage_settings",
            "DRC_TEST_DIR": str(tmp_path),
        }
        return subprocess.run(
            [sys.executable, "-m", "django", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            **kw,
        )

    return run


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("CommandError: ")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


@pytest.mark.parametrize("mode", ["--enqueue", "--wait"])
def test_broker_and_result_backend_down_is_one_line(manage: Callable[..., Any], mode: str) -> None:
    port = closed_port()
    started = time.monotonic()
    proc = manage(
        "dbbackup",
        mode,
        broker=f"redis://:broker-pw@127.0.0.1:{port}/0",
        backend=f"redis://:backend-pw@127.0.0.1:{port}/1",
    )
    elapsed = time.monotonic() - started
    line = one_line_error(proc)
    assert f"the Celery broker redis://:**@127.0.0.1:{port}/0 did not answer" in line
    assert "-pw" not in proc.stderr + proc.stdout
    assert "nothing was queued" in line
    assert elapsed < 15, elapsed  # Celery alone retries for ~20 s


@pytest.mark.parametrize("mode", ["--enqueue", "--wait"])
def test_result_backend_down_is_one_line_and_fast(
    manage: Callable[..., Any], redis_server: RedisServer, mode: str
) -> None:
    queue = redis_server.client(OUTAGE_DB)
    queue.delete("celery")
    port = closed_port()
    started = time.monotonic()
    proc = manage(
        "mediabackup",
        mode,
        broker=redis_server.url(OUTAGE_DB),
        backend=f"redis://:secret-pw@127.0.0.1:{port}/1",
    )
    elapsed = time.monotonic() - started
    line = one_line_error(proc)
    assert f"the Celery result backend redis://:**@127.0.0.1:{port}/1 did not answer" in line
    assert "secret-pw" not in proc.stderr + proc.stdout
    assert elapsed < 15, elapsed  # was 20 s and "Retry limit exceeded"
    assert queue.llen("celery") == 0  # refused before anything was sent


def test_admin_back_up_now_with_the_broker_down_shows_a_message(
    db: None, celery_app: Any, remote_dir: Path
) -> None:
    from django.contrib.auth.models import Permission, User

    user = User.objects.create_user("op", password="x", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(codename__in=["view_backuprun", "run_backup"])
    )
    client = Client()
    client.force_login(user)
    down = Celery("down", broker=f"redis://127.0.0.1:{closed_port()}/0", set_as_current=True)
    try:
        response = client.post(
            reverse("admin:django_rclone_celery_backuprun_start"),
            {"database": "default", "keep": "", "run": "db_backup"},
            follow=True,
        )
    finally:
        _state._set_current_app(celery_app)
    assert response.status_code == 200
    messages = [str(m) for m in response.context["messages"]]
    assert any(
        "Could not queue the database backup" in m and "did not answer" in m for m in messages
    ), messages
    assert not BackupRun.objects.exists()
    del down


@pytest.mark.django_db(transaction=True, databases=["default"])  # the queued run's row
def test_wait_says_when_no_worker_takes_the_task_and_times_out(
    celery_app: Any,
    depends_on_current_app: Any,
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No worker consumes the queue: a hint on stderr, then --timeout ends the wait."""
    queue = redis_server.client(EMBEDDED_BROKER_DB)
    queue.delete("celery")
    monkeypatch.setattr(enqueue, "STALLED_AFTER", 0.3)
    out, err = StringIO(), StringIO()
    started = time.monotonic()
    with pytest.raises(CommandError, match=r"stopped waiting for task [0-9a-f]{32} after 1.5 s"):
        call_command("mediabackup", "--wait", "--timeout", "1.5", stdout=out, stderr=err)
    assert 1.5 <= time.monotonic() - started < 10
    hint = err.getvalue()
    assert "No worker has taken task" in hint
    assert "consumes the queue 'celery' (--queues=celery)" in hint
    assert queue.llen("celery") == 1  # the run stays queued for a worker to come
    queue.delete("celery")


def test_timeout_needs_wait_and_a_positive_number() -> None:
    with pytest.raises(CommandError, match="--timeout only applies to --wait"):
        call_command("mediabackup", "--timeout", "5")
    with pytest.raises(CommandError, match="is not a positive number of seconds"):
        call_command("mediabackup", "--wait", "--timeout", "0")


def test_dbrestore_without_a_terminal_refuses_and_keeps_the_data(
    manage: Callable[..., Any], tmp_path: Path
) -> None:
    db = tmp_path / "default.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (v TEXT)")
        conn.execute("INSERT INTO t VALUES ('before')")
    assert manage("migrate", "-v0").returncode == 0  # the run ledger, as in any project
    assert manage("dbbackup", "-d", "default").returncode == 0
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE t SET v = 'after'")
    proc = manage("dbrestore", "-d", "default", stdin=subprocess.DEVNULL)
    assert "no terminal to confirm the restore on" in one_line_error(proc)
    assert "--noinput" in proc.stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT v FROM t").fetchall() == [("after",)]


def test_listbackups_into_a_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    (tmp_path / "remote" / "db").mkdir(parents=True)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DRC_TEST_DIR": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "django", "listbackups"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    proc.stdout.close()  # like `| head` that has read all it wanted
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert "Traceback" not in err, err
    assert "BrokenPipe" not in err, err


@pytest.mark.django_db(transaction=True, databases=["default"])
def test_a_send_deferred_to_commit_that_fails_is_logged_not_raised(
    celery_app: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """ATOMIC_REQUESTS: the broker answers when asked, then dies before the commit."""
    from django.db import transaction

    from tests.helpers.workers import _start_redis

    binary = shutil.which("redis-server")
    assert binary, "redis-server is needed"
    proc, port = _start_redis(binary, tmp_path)
    broker = Celery("dying", broker=f"redis://127.0.0.1:{port}/0", set_as_current=True)
    try:
        with transaction.atomic():
            task_id = enqueue.enqueue_on_commit("media_backup")  # the broker answered
            proc.kill()  # then goes away before the transaction commits
            proc.wait(timeout=10)
        assert task_id
        assert "did not take the task" in caplog.text  # logged by Django's on_commit
    finally:
        _state._set_current_app(celery_app)
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    del broker
