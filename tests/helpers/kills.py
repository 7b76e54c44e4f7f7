"""Killing a command mid-stream, and what it may leave behind (tests/system/test_faults.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.db import connections

from django_rclone_celery import naming
from tests.helpers.processes import cmdline

ROOT = Path(__file__).resolve().parents[2]
GRACE = 1.0  # seconds a killed run's programs get to disappear
DEATH_TIMES: list[float] = []  # per kill: seconds until the last program was gone


def state(pid: int) -> str:
    """The kernel's state letter: "Z" for a zombie, "" once the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def alive(pid: int) -> bool:
    return state(pid) not in ("", "Z")


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, whichever of its threads started it."""
    found: list[int] = []
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            threads = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for tid in threads:
            try:
                text = Path(f"/proc/{current}/task/{tid}/children").read_text()
            except OSError:
                continue
            for child in map(int, text.split()):
                found.append(child)
                todo.append(child)
    return found


def held_secret_files(pids: list[int]) -> list[str]:
    """Which of ``pids`` hold one of the gateway's anonymous secret files.

    Only these: a parallel test session may hold its own for a moment.
    """
    held = []
    for pid in pids:
        try:
            fds = os.scandir(f"/proc/{pid}/fd")
        except OSError:
            continue
        with fds:
            for fd in fds:
                try:
                    if os.readlink(fd.path).startswith("/memfd:drc-secret"):
                        held.append(f"{pid}: {fd.name}")
                except OSError:
                    continue
    return held


def secret_dirs(tmp: Path) -> list[str]:
    """Anything the runs left in their private temporary directory."""
    return sorted(p.name for p in tmp.iterdir())


def command_env(
    tmp: Path | None = None, accounts: dict[str, dict[str, str]] | None = None
) -> dict[str, str]:
    """A ``manage.py`` process that sees this test's databases and settings.

    ``accounts`` replaces the USER/PASSWORD of some aliases (a refused login).
    """
    config = {
        "databases": {alias: connections[alias].settings_dict["NAME"] for alias in connections},
        "accounts": {
            alias: {key: connections[alias].settings_dict.get(key) for key in ("USER", "PASSWORD")}
            for alias in connections
        }
        | (accounts or {}),
        "django_rclone": dict(settings.DJANGO_RCLONE),
        "media_root": str(settings.MEDIA_ROOT),
    }
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.worker_settings",
        "DRC_WORKER_CONFIG": json.dumps(config),
        "PYTHONPATH": str(ROOT),
        # Its own temporary directory: only what these runs leave shows up there.
        **({"TMPDIR": str(tmp)} if tmp else {}),
    }


def manage(*args: str, log: Path) -> subprocess.Popen[bytes]:
    tmp = log.parent / "tmp"
    tmp.mkdir(exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "django", *args],
            cwd=ROOT,
            env=command_env(tmp),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def streaming(pid: int, verb: str) -> bool:
    """The stream runs below ``pid``: ``rclone <verb>`` of the backup (rcat for a
    backup, cat for a restore; not of its manifest) beside the engine's tool."""
    argvs = [cmdline(child) for child in descendants(pid)]
    stream = [a for a in argvs if a[1:2] == [verb] and not a[2].endswith(naming.MANIFEST_SUFFIX)]
    return bool(stream) and len([a for a in argvs if a]) >= 2


def kill_mid_stream(args: tuple[str, ...], verb: str, log: Path, delay: float) -> list[str]:
    """Start a command, SIGKILL its Python process mid-stream; returns what went wrong."""
    proc = manage(*args, log=log)
    problems: list[str] = []
    tools: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while not streaming(proc.pid, verb) and proc.poll() is None:
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        time.sleep(delay)
        tools = descendants(proc.pid)
        names = [os.path.basename(cmdline(pid)[0]) for pid in tools if cmdline(pid)]
        if proc.poll() is not None or not tools:
            problems.append(f"the run ended before the kill: {log.read_text()[-2000:]}")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    # The kernel kills them as their parent exits; a second covers a busy machine.
    # Without that they linger until a broken pipe or the end of their input.
    killed = time.monotonic()
    while time.monotonic() < killed + GRACE and any(alive(pid) for pid in tools):
        time.sleep(0.005)
    DEATH_TIMES.append(time.monotonic() - killed)
    survivors = [pid for pid in tools if alive(pid)]
    if survivors:
        problems.append(f"programs of the run outlived it: {survivors} of {names}")
    ours = [os.getpid(), *descendants(os.getpid()), *tools]
    problems += [f"secret file still open: {h}" for h in held_secret_files(ours)]
    for pid in survivors:  # leave nothing running for the next round
        os.kill(pid, signal.SIGKILL)
    return problems
