"""Processes: read ``/proc`` to find running programs; stand-in programs."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from django_rclone_celery.exceptions import ProcessError
from django_rclone_celery.process import Command, Completed, PipeStats


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


# A stand-in for the process gateway (``process.using_runner``) ----------------
@dataclass(frozen=True)
class Canned:
    """What a program "does" under :class:`RecordingRunner`."""

    stdout: bytes = b""
    returncode: int = 0
    stderr: str = ""


@dataclass
class RecordingRunner:
    """Records the argv of every program an operation starts; answers from rules.

    ``on("pg_dump", returncode=1, stderr="boom")`` makes the first program whose
    argv contains every one of the given words (the program's basename counts
    as a word) answer that way; a program no rule matches succeeds silently.
    ``received`` keeps what each pipe sink was sent, ``inputs`` the stdin of each
    short command, by argv.
    """

    rules: list[tuple[tuple[str, ...], Canned]] = field(default_factory=list)
    calls: list[tuple[str, ...]] = field(default_factory=list)
    received: dict[tuple[str, ...], bytes] = field(default_factory=dict)
    inputs: dict[tuple[str, ...], bytes] = field(default_factory=dict)

    def on(self, *words: str, stdout: bytes = b"", returncode: int = 0, stderr: str = "") -> None:
        self.rules.append((words, Canned(stdout, returncode, stderr)))

    def started(self, *words: str) -> list[tuple[str, ...]]:
        """The recorded argvs that contain every one of ``words``."""
        return [argv for argv in self.calls if _matches(argv, words)]

    def _answer(self, cmd: Command) -> Canned:
        self.calls.append(cmd.argv)
        for words, canned in self.rules:
            if _matches(cmd.argv, words):
                return canned
        return Canned()

    # The four entry points of the gateway.
    def run(self, cmd: Command, **options: Any) -> Completed:
        canned = self._answer(cmd)
        if options.get("input") is not None:
            self.inputs[cmd.argv] = options["input"]
        if options.get("check", True) and canned.returncode != 0:
            raise options.get("error", ProcessError)(cmd.argv, canned.returncode, canned.stderr)
        return Completed(canned.returncode, canned.stdout, canned.stderr)

    def pipe(self, source: Command, sink: Command, **options: Any) -> PipeStats:
        sink_canned = self._answer(sink)
        src = self._answer(source)
        source_error = options.get("source_error") or ProcessError
        sink_error = options.get("sink_error") or ProcessError
        if src.returncode != 0:  # the real pipe kills the sink first
            raise source_error(source.argv, src.returncode, src.stderr)
        transform, tap = options.get("transform"), options.get("tap")
        tap_side = options.get("tap_side", "source")
        data = memoryview(src.stdout)
        if tap and tap_side == "source":
            tap(data)
        out = bytes(transform.feed(data)) + transform.finish() if transform else bytes(data)
        if tap and tap_side == "sink":
            tap(memoryview(out))
        if options.get("progress"):
            options["progress"](len(src.stdout))
        if options.get("before_end"):
            options["before_end"]()
        self.received[sink.argv] = out
        if sink_canned.returncode != 0:
            raise sink_error(sink.argv, sink_canned.returncode, sink_canned.stderr)
        hashed = src.stdout if options.get("digest") == "source" else out
        digest = hashlib.sha256(hashed).hexdigest()
        return PipeStats(len(src.stdout), len(out), digest, src.stderr, sink_canned.stderr)

    def pipe_into(
        self, sink: Command, chunks: Callable[[], Iterator[bytes]], **options: Any
    ) -> PipeStats:
        canned = self._answer(sink)
        data = b"".join(chunks())
        self.received[sink.argv] = data
        if canned.returncode != 0:
            raise options.get("error", ProcessError)(sink.argv, canned.returncode, canned.stderr)
        return PipeStats(len(data), len(data), hashlib.sha256(data).hexdigest(), "", "")

    @contextmanager
    def read_from(self, source: Command, **options: Any) -> Iterator[IO[bytes]]:
        canned = self._answer(source)
        yield io.BytesIO(canned.stdout)
        if canned.returncode != 0:
            raise options.get("error", ProcessError)(source.argv, canned.returncode, canned.stderr)


def _matches(argv: tuple[str, ...], words: tuple[str, ...]) -> bool:
    """Every word is a substring of some argument (or of the program's basename)."""
    haystack = (os.path.basename(argv[0]), *argv) if argv else ()
    return all(any(word in arg for arg in haystack) for word in words)


class ArgvWatcher:
    """Reads every process's cmdline in a loop until stopped.

    Records any process whose cmdline contains ``secret``, and every run of the
    watched ``tools`` on this test's database (to prove the scan overlapped the dump). For a
    ``--defaults-extra-file`` it also records the option file's mode while the
    tool runs.
    """

    def __init__(self, secret: str, tools: set[str], contains: str) -> None:
        self.secret = secret.encode()
        self.tools = tools
        self.contains = contains  # other test runs may use the same tools meanwhile
        self.leaks: list[str] = []
        self.seen: dict[int, list[str]] = {}
        self.file_modes: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        # A short pause between scans leaves the GIL to the operation being watched.
        while not self._stop.wait(0.003):
            for pid, raw in all_cmdlines().items():
                if self.secret in raw:
                    self.leaks.append(raw.decode("utf-8", "replace"))
                argv = [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]
                if (
                    argv
                    and os.path.basename(argv[0]) in self.tools
                    and any(self.contains in a for a in argv)
                ):
                    self.seen[pid] = argv
                    for arg in argv:
                        if arg.startswith("--defaults-extra-file="):
                            path = arg.split("=", 1)[1]
                            # /dev/fd/N is the tool's descriptor N, not ours.
                            if path.startswith("/dev/fd/"):
                                path = f"/proc/{pid}/fd/{path.rsplit('/', 1)[1]}"
                            try:
                                mode = os.stat(path).st_mode
                                self.file_modes.add(stat.S_IMODE(mode))
                            except OSError:
                                pass

    def __enter__(self) -> ArgvWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
