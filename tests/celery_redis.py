"""A throwaway Redis and Celery's embedded test worker, for the entry-point tests.

Import the fixtures into a test module::

    from tests.celery_redis import celery_config, celery_includes, redis_server  # noqa: F401

``redis_server`` (session) runs ``redis-server`` on a free loopback port with
persistence off and stops it by PID. ``celery_config`` points Celery's
``celery_app`` / ``celery_worker`` fixtures (``celery.contrib.pytest``) at it:
messages go through a real broker to a real worker thread, never eager mode.
Tests that only queue (no worker) take ``depends_on_current_app`` as well.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

import django_rclone_celery.tasks  # noqa: F401
from tests.conftest import free_port, wait_for_port

# Imported above, before any test app exists: celery.contrib.pytest forgets
# shared tasks first seen while one of its apps was alive (it restores
# Celery's list of app finalizers after each test).


@dataclass(frozen=True)
class RedisServer:
    port: int
    pid: int

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, db=db)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server not found (apt-get install redis-server)")
    port = free_port()
    workdir: Path = tmp_path_factory.mktemp("redis")
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
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield RedisServer(port=port, pid=proc.pid)
    finally:
        os.kill(proc.pid, 15)
        proc.wait(timeout=30)


@pytest.fixture(scope="session")
def celery_config(redis_server: RedisServer) -> dict[str, Any]:
    return {
        "broker_url": redis_server.url(0),
        "result_backend": redis_server.url(1),
        "broker_transport_options": {"visibility_timeout": 24 * 3600},
        "worker_prefetch_multiplier": 1,
    }


@pytest.fixture(scope="session")
def celery_includes() -> list[str]:
    return ["django_rclone_celery.tasks"]


@pytest.fixture
def no_project_app() -> Iterator[None]:
    """Celery as in a project that never imports its app: only the fallback app exists."""
    from celery import _state

    saved = (_state.default_app, _state._tls.current_app)
    _state.set_default_app(None)
    _state._tls.current_app = None
    try:
        yield
    finally:
        _state.set_default_app(saved[0])
        _state._tls.current_app = saved[1]
