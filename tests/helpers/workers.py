"""A throwaway Redis server and real ``celery worker`` processes, for the task tests.

The fixtures built on these (``redis_server``, ``task_app``, ``lock_config``,
``workers``) are in ``tests/conftest.py``: request them by name.

How a worker sees the test's world: :func:`worker_config` snapshots the
pytest process's live settings (the ``test_...`` database names pytest-django
created, ``DJANGO_RCLONE``, ``MEDIA_ROOT``) and the Redis URLs into the JSON
environment variable ``DRC_WORKER_CONFIG``; ``tests/worker_settings.py``
applies it. So start workers *after* changing settings in a test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings
from django.db import connections

from tests.helpers.network import free_port

ROOT = Path(__file__).resolve().parents[2]
# One Redis serves every kind of Celery test; each kind keeps to its own
# databases, so leftovers of one (say, a message a killed worker never acked)
# never reach the queue another kind of test reads.
BROKER_DB, BACKEND_DB, LOCK_DB = 0, 1, 2  # task_app and the worker subprocesses
EMBEDDED_BROKER_DB, EMBEDDED_BACKEND_DB = 3, 4  # celery.contrib.pytest (tests/celery_redis.py)
DEMO_DB = 5  # the example project's demo (tests/system/test_demo.py)
# 6: tests/system/test_outages.py; 7 and 8: tests/system/test_first_hour.py (their own constants).


@dataclass(frozen=True)
class RedisServer:
    port: int
    pid: int

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, db=db)


def _start_redis(binary: str, directory: Path) -> tuple[subprocess.Popen[bytes], int]:
    """``redis-server`` on 127.0.0.1 and a free port; retried if another program took the port."""
    for _attempt in range(3):
        port = free_port()
        with open(directory / "redis.log", "ab") as log:
            proc = subprocess.Popen(
                [
                    binary,
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(directory),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            probe = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)
            try:
                server_pid = probe.info("server")["process_id"]
            except redis.ConnectionError:  # not listening yet
                time.sleep(0.05)
                continue
            except redis.RedisError:  # something else answers on this port
                break
            finally:
                probe.close()
            # Our server, not another program that took the port first.
            if server_pid == proc.pid:
                return proc, port
            break
        _stop(proc)
    log_text = (directory / "redis.log").read_text(errors="replace")
    pytest.fail(f"redis-server did not start:\n{log_text[-3000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    with _suppress_lookup():
        os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with _suppress_lookup():
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


def worker_config(redis_server: RedisServer, **extra: Any) -> dict[str, Any]:
    """What a worker must share with this test (see the module docstring)."""
    return {
        "databases": {alias: connections[alias].settings_dict["NAME"] for alias in connections},
        # The account too: a test may point an alias at a password-protected one.
        "accounts": {
            alias: {key: connections[alias].settings_dict.get(key) for key in ("USER", "PASSWORD")}
            for alias in connections
        },
        "django_rclone": dict(django_settings.DJANGO_RCLONE),
        "media_root": str(django_settings.MEDIA_ROOT),
        "broker_url": redis_server.url(BROKER_DB),
        "result_backend": redis_server.url(BACKEND_DB),
        **extra,
    }


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


@dataclass
class Worker:
    name: str
    env: dict[str, str]
    log_path: Path
    concurrency: int = 1
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self, timeout: float = 90) -> Worker:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "tests.celery_app",
                    "worker",
                    "-P",
                    "prefork",
                    "-c",
                    str(self.concurrency),
                    "-n",
                    f"{self.name}@%h",
                    "--loglevel=INFO",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, killed as one
            )
        offset = 0
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log()
            if " ready." in text[offset:]:
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker {self.name} exited:\n{text[-3000:]}")
            time.sleep(0.2)
        raise RuntimeError(f"worker {self.name} not ready after {timeout} s:\n{self.log()[-3000:]}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def pool_children(self) -> list[int]:
        return _children(self.pid)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole worker: main process, pool children and their programs."""
        with _suppress_lookup():
            os.killpg(self.pid, signal.SIGKILL)
        assert self.proc is not None
        self.proc.wait()

    def stop(self) -> None:
        if not self.alive():
            return
        assert self.proc is not None
        with _suppress_lookup():
            os.killpg(self.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()
        with _suppress_lookup():  # pool children that outlived the main process
            os.killpg(self.pid, signal.SIGKILL)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


class _suppress_lookup:
    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        return exc_type is not None and issubclass(exc_type, ProcessLookupError)


class Workers:
    def __init__(self, redis_server: RedisServer, log_dir: Path) -> None:
        self.redis_server = redis_server
        self.log_dir = log_dir
        self.started: list[Worker] = []
        self.signal_log = log_dir / "signals.jsonl"

    def signals(self) -> list[dict[str, Any]]:
        """Every signal the workers sent, in order (see ``tests/celery_app.py``)."""
        if not self.signal_log.exists():
            return []
        return [json.loads(line) for line in self.signal_log.read_text().splitlines()]

    def start(
        self,
        name: str = "w1",
        *,
        concurrency: int = 1,
        visibility_timeout: float = 3600,
        annotations: dict[str, Any] | None = None,
        settings: dict[str, Any] | None = None,
    ) -> Worker:
        worker = Worker(
            name,
            self.env(visibility_timeout, annotations, settings),
            self.log_dir / f"{name}.log",
            concurrency,
        )
        self.started.append(worker)
        return worker.start()

    def env(
        self,
        visibility_timeout: float = 3600,
        annotations: dict[str, Any] | None = None,
        settings: dict[str, Any] | None = None,
    ) -> dict[str, str]:
        """The environment of a worker (or beat) process; ``settings``: extra Django settings."""
        config = worker_config(
            self.redis_server,
            visibility_timeout=visibility_timeout,
            annotations=annotations or {},
            settings=settings or {},
        )
        return {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.worker_settings",
            "DRC_WORKER_CONFIG": json.dumps(config),
            "PYTHONPATH": str(ROOT),
            "DRC_SIGNAL_LOG": str(self.signal_log),
        }

    def logs(self) -> str:
        return "\n".join(f"--- {w.name}\n{w.log()[-4000:]}" for w in self.started)


def wait_for(
    predicate: Callable[[], Any],
    timeout: float = 60,
    *,
    what: str = "condition",
    interval: float = 0.1,
    pool: Workers | None = None,
) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail with the workers' logs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    logs = pool.logs() if pool else ""
    raise AssertionError(f"timed out waiting for {what}\n{logs}")
