"""Processes: read ``/proc`` to find running programs; stand-in programs."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def cmdline(pid: int) -> list[str]:
    """argv of a running process ([] if it is gone or unreadable)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def all_cmdlines() -> dict[int, bytes]:
    """Raw ``/proc/<pid>/cmdline`` of every process this user can see."""
    found = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                found[int(entry.name)] = Path(entry.path, "cmdline").read_bytes()
            except OSError:
                continue
    return found


def find_pids(name: str, contains: str | None = None) -> list[int]:
    """PIDs of live processes whose program is ``name`` (basename of argv[0]).

    ``contains``: only those with an argument containing this string.
    Zombies are left out: they are dead already.
    """
    pids = []
    for pid, raw in all_cmdlines().items():
        argv = [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]
        if not argv or os.path.basename(argv[0]) != name:
            continue
        if contains is not None and not any(contains in arg for arg in argv):
            continue
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            pids.append(pid)
    return pids


def python_program(code: str) -> tuple[str, ...]:
    """argv running ``code`` with this interpreter: a portable stand-in for a tool."""
    return (sys.executable, "-c", code)
