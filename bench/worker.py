"""A warm Celery worker: the scheduled path, timed from the task's sending to its result.

A backup in production is a ``db_backup`` task that beat sends to a worker
that is already running, so no run pays for starting Python, Django and
Celery (about 0.4 s on the bench machine, ``startup=`` in the bench log).
``manage.py dbbackup`` pays for it every time. :class:`WarmWorker` starts a
throwaway Redis on loopback (broker and result backend) and one worker
(``celery -A bench.celery_app worker``, the default prefork pool, one
child), and :meth:`WarmWorker.run` sends a task and waits for its result.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The test suite's own throwaway Redis, and how it stops a process it started.
from tests.helpers.workers import _start_redis, _stop  # noqa: E402


class WarmWorker:
    """A Redis and a worker of their own, stopped (by PID) on exit."""

    def __init__(self, env: dict[str, str], work: Path) -> None:
        self.env = env
        self.work = work
        self.processes: list[subprocess.Popen[bytes]] = []

    @staticmethod
    def available() -> bool:
        return shutil.which("redis-server") is not None

    def __enter__(self) -> WarmWorker:
        from celery import Celery

        binary = shutil.which("redis-server")
        assert binary is not None
        redis, port = _start_redis(binary, self.work)
        self.processes.append(redis)
        url = f"redis://127.0.0.1:{port}/0"
        self.log = (self.work / "worker.log").open("wb")
        worker_argv = [sys.executable, "-m", "celery", "-A", "bench.celery_app", "worker"]
        worker_argv += ["--concurrency", "1", "--without-mingle", "--without-gossip"]
        worker_argv += ["-l", "warning"]
        worker = subprocess.Popen(
            worker_argv,
            cwd=ROOT,
            env={**self.env, "DRC_BENCH_BROKER": url},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.processes.append(worker)
        self.client = Celery("drc_bench_client", broker=url, backend=url)
        return self

    def run(self, **kwargs: Any) -> float:
        """Seconds from sending ``db_backup(**kwargs)`` to its result; fails unless it succeeded."""
        started = time.monotonic()
        result = self.client.send_task("django_rclone_celery.db_backup", kwargs=kwargs)
        outcome = result.get(timeout=3600)
        elapsed = time.monotonic() - started
        if not isinstance(outcome, dict) or outcome.get("status") != "succeeded":
            raise RuntimeError(f"db_backup{kwargs} did not succeed: {outcome!r}")
        return elapsed

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for proc in reversed(self.processes):  # the worker first, then its broker
            _stop(proc)
        if hasattr(self, "log"):
            self.log.close()
        if hasattr(self, "client"):
            self.client.close()
