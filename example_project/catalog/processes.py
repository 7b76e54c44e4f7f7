"""Start and stop the example's long-running processes (worker, beat, web) by PID.

The commands come from the project's ``Procfile``, so what the demo runs is
exactly what the docs tell you to run. This is the example project's only
module that starts processes; the package itself goes through
``django_rclone_celery.process``, which runs programs to completion and has
no place for a server that must outlive the call.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

PROJECT_DIR = Path(__file__).resolve().parent.parent
PROCFILE = PROJECT_DIR / "Procfile"


def procfile(path: Path = PROCFILE) -> dict[str, list[str]]:
    """``name: command`` lines as argv lists, run with this interpreter."""
    entries: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, command = line.partition(":")
        argv = shlex.split(command)
        if argv[0] == "python":
            argv = [sys.executable, *argv[1:]]
        elif argv[0] == "celery":
            argv = [sys.executable, "-m", "celery", *argv[1:]]
        entries[name.strip()] = argv
    return entries


@dataclass
class Service:
    name: str
    argv: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self, env: dict[str, str] | None = None) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            self.argv,
            cwd=PROJECT_DIR,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            # Its own session: a Ctrl-C in the terminal reaches only us, and
            # we stop it in order.
            start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for(self, marker: str, timeout: float) -> None:
        """Block until ``marker`` appears in the log; fail if the process dies."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if marker in self.log():
                return
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited early; its log:\n{self.log()[-3000:]}")
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f} s:\n{self.log()[-3000:]}")

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM (a warm shutdown for Celery), then SIGKILL if it lingers."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()
        return self.proc.returncode


def service(name: str, log_dir: Path, extra: list[str] | None = None) -> Service:
    return Service(name, [*procfile()[name], *(extra or [])], log_dir / f"{name}.log")
