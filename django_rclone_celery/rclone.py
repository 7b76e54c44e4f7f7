"""The rclone transport: argv builders and the few calls the operations need."""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from tempfile import TemporaryDirectory

from . import process
from .conf import Settings
from .exceptions import RcloneError
from .process import Command


def join(base: str, *parts: str) -> str:
    """Join an rclone path (``remote:dir``, ``remote:``, ``/local``) with relative parts."""
    kept = [p.strip("/") for p in parts if p.strip("/")]
    rest = posixpath.join(*kept) if kept else ""
    if not rest:
        return base
    if base.endswith(":") or base.endswith("/"):
        return base + rest
    return f"{base}/{rest}"


def split(path: str) -> tuple[str, str]:
    """An rclone path's parent and last part: ``remote:dir/name`` -> (``remote:dir``, ``name``)."""
    head, slash, name = path.rpartition("/")
    if slash:
        # "remote:/name" lives in "remote:/" (an absolute path), not "remote:".
        return (head + "/" if not head or head.endswith(":") else head, name)
    remote, colon, name = path.rpartition(":")
    return remote + colon, name


@dataclass(frozen=True)
class Entry:
    """One object from ``rclone lsjson``."""

    name: str
    path: str
    size: int
    modified: datetime
    is_dir: bool

    @classmethod
    def from_json(cls, item: dict[str, object]) -> Entry:
        stamp = str(item.get("ModTime") or "1970-01-01T00:00:00Z")
        return cls(
            name=str(item["Name"]),
            path=str(item.get("Path") or item["Name"]),
            size=int(item.get("Size") or 0),  # type: ignore[call-overload]
            modified=_parse_time(stamp),
            is_dir=bool(item.get("IsDir")),
        )


def _parse_time(stamp: str) -> datetime:
    # rclone prints RFC 3339 with up to nanoseconds; Python takes microseconds.
    head, _, tail = stamp.partition(".")
    if tail:
        # Only the leading digits: an offset such as "+01:00" has digits too.
        digits = tail[: len(tail) - len(tail.lstrip("0123456789"))]
        zone = tail[len(digits) :]
        stamp = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _files_from(files: Iterable[str] | None) -> tuple[bytes | None, list[str]]:
    if files is None:
        return None, []
    return "".join(f"{name}\n" for name in files).encode("utf-8", "surrogateescape"), [
        "--files-from-raw",
        "-",
    ]


def lsjson_args(path: str, *, recursive: bool, modtime: bool, dirs: bool) -> list[str]:
    args = ["lsjson", path] if dirs else ["lsjson", path, "--files-only"]
    if recursive:
        args.append("--recursive")
    if not modtime:
        args += ["--no-modtime", "--no-mimetype"]
    return args


def entries(listed: bytes | RcloneError) -> list[Entry]:
    """``lsjson``'s output, or its failure: a missing directory lists as empty."""
    if isinstance(listed, RcloneError):
        if listed.not_found or "directory not found" in listed.stderr:
            return []
        raise listed
    return [Entry.from_json(item) for item in json.loads(listed or b"[]")]


# The lists ``--differ`` and friends write, by ``--combined`` mark (see Rclone.changes).
_REPORTS = {"+": "missing-on-dst", "*": "differ", "-": "missing-on-src", "!": "error"}


def report_args(lists: str) -> list[str]:
    """Flags making a sync or copy write what differed into the directory ``lists``.

    One attempt: a retried pass would repeat its lines.
    """
    names = [arg for mark, name in _REPORTS.items() for arg in (f"--{name}", f"{lists}/{mark}")]
    return [*names, "--retries", "1"]


def read_report(lists: str) -> list[tuple[str, str]]:
    marks = []
    for mark in _REPORTS:
        text = Path(lists, mark).read_bytes().decode("utf-8", "surrogateescape")
        marks += [(mark, line) for line in text.split("\n") if line]
    return marks


# Go collects garbage from the first megabytes on; a call that never nears
# this limit collects none: about a fifth less CPU per short call (an lsjson
# of 50 files: 53.5 and 50.5 ms against the bare 64.9 and 65.3 ms, two runs of
# bench/rclone_calls.py), and the media backup's copy of 10,000 files went from
# 1.36-1.41x to 1.20-1.32x the bare sync (bench/media.py). Memory stays near
# the limit; only a directory whose listing alone outgrows it collects often.
QUIET_GC = {"GOGC": "off", "GOMEMLIMIT": "256MiB"}


def quiet_gc(command: Command) -> Command:
    """``command`` with :data:`QUIET_GC`, unless the environment sets Go's own."""
    if "GOGC" in os.environ or "GOMEMLIMIT" in os.environ:
        return command
    return replace(command, env={**command.env, **QUIET_GC})


class Rclone:
    """Builds rclone commands from settings and runs them through the gateway."""

    def __init__(self, settings: Settings) -> None:
        self.binary = settings.rclone_binary
        self.config = settings.rclone_config
        self.flags = tuple(settings.rclone_flags)

    def command(self, *args: str) -> Command:
        argv = [self.binary, *args]
        if self.config:
            argv += ["--config", self.config]
        argv += self.flags
        return Command(argv=tuple(argv))

    # Streams -----------------------------------------------------------
    def rcat(self, path: str) -> Command:
        return self.command("rcat", path)

    def cat(self, path: str) -> Command:
        return self.command("cat", path)

    # Calls -------------------------------------------------------------
    def _run(self, *args: str, input: bytes | None = None) -> bytes:
        # Short calls by construction: their output is held in memory.
        command = quiet_gc(self.command(*args))
        return process.run(command, input=input, error=RcloneError).stdout

    def put_bytes(self, path: str, data: bytes) -> None:
        self._run("rcat", path, input=data)

    def get_bytes(self, path: str) -> bytes:
        return self._run("cat", path)

    def lsjson(
        self, path: str, *, recursive: bool = False, modtime: bool = True, dirs: bool = False
    ) -> list[Entry]:
        """List a directory's files (with ``dirs``, its directories too); missing is empty.

        ``modtime=False`` skips modification times (on S3 each one costs a request).
        """
        try:
            raw = self._run(*lsjson_args(path, recursive=recursive, modtime=modtime, dirs=dirs))
        except RcloneError as exc:
            return entries(exc)
        return entries(raw)

    def sizes(self, path: str, files: Iterable[str] | None = None) -> dict[str, int]:
        """Every file under ``path`` (recursive; or only ``files``) with its size.

        A missing directory is empty. ``lsf`` prints a name that is not UTF-8 as
        its bytes, as ``--combined`` and ``--files-from-raw`` do (``lsjson``
        replaces them).
        """
        listed, args = _files_from(files)
        try:
            raw = self._run(
                "lsf",
                path,
                "-R",
                "--files-only",
                "--format",
                "sp",
                "--separator",
                ";",
                *args,
                input=listed,
            )
        except RcloneError as exc:
            if exc.not_found or "directory not found" in exc.stderr:
                return {}
            raise
        found = {}
        for line in raw.decode("utf-8", "surrogateescape").split("\n"):
            size, _, name = line.partition(";")
            if name:
                found[name] = int(size)
        return found

    def moveto(self, src: str, dst: str) -> None:
        self._run("moveto", src, dst)

    def deletefile(self, path: str) -> None:
        self._run("deletefile", path)

    def delete_many(self, directory: str, names: Iterable[str]) -> None:
        """Delete several files of one directory in a single rclone call."""
        listed = "\n".join(names)
        if listed:
            self._run("delete", directory, "--files-from-raw", "-", input=listed.encode() + b"\n")

    def sync(self, src: str, dst: str, *extra: str) -> None:
        self._run("sync", src, dst, *extra)

    def copy(self, src: str, dst: str, *extra: str) -> None:
        self._run("copy", src, dst, *extra)

    def transfer(
        self, verb: str, src: str, dst: str, files: Iterable[str] | None, *extra: str
    ) -> None:
        """``rclone sync|copy|move|delete`` limited to ``files`` (paths relative to ``src``).

        An empty ``files`` runs nothing: rclone would read an empty list as no filter.
        """
        if files is not None:
            files = list(files)
            if not files:
                return
        listed, args = _files_from(files)
        self._run(verb, src, *([dst] if dst else []), *args, *extra, input=listed)

    def changes(
        self,
        verb: str,
        src: str,
        dst: str,
        *extra: str,
        files: Iterable[str] | None = None,
        dry_run: bool = True,
    ) -> list[tuple[str, str]]:
        """What ``rclone sync|copy src dst`` would do (with ``dry_run``) or did, as (mark, path).

        Marks as in ``--combined``: ``=`` same, ``+`` only in src (copied), ``*``
        different (replaced), ``-`` only in dst (deleted by a sync), ``!`` error.
        """
        listed, args = _files_from(files)
        if dry_run:
            args.append("--dry-run")
        # One attempt: a retried pass would repeat its lines.
        out = self._run(
            verb, src, dst, *args, *extra, "--combined", "-", "--retries", "1", input=listed
        )
        marks = []
        for line in out.decode("utf-8", "surrogateescape").split("\n"):
            if len(line) > 2 and line[1] == " " and line[0] in "=+*-!":
                marks.append((line[0], line[2:]))
        return marks

    def differences(self, verb: str, src: str, dst: str, *extra: str) -> list[tuple[str, str]]:
        """Run ``rclone sync|copy src dst`` and report what differed, as ``changes`` does,
        without the ``=`` lines: listing every unchanged file costs rclone about a third
        more CPU on a tree where little changed."""
        with TemporaryDirectory(prefix="drc-rclone-") as lists:
            self._run(verb, src, dst, *extra, *report_args(lists))
            return read_report(lists)

    def start(self, *args: str, first: bytes = b"") -> AbstractContextManager[process.Started]:
        """``rclone args`` started now and finished later (see :func:`process.started`).

        With :data:`QUIET_GC`: the media backup's copy, whose listings allocate
        steadily from a small heap, so Go's default collects many times.
        """
        return process.started(quiet_gc(self.command(*args)), first=first, error=RcloneError)

    def version(self) -> str:
        first = self._run("version").decode("utf-8", "replace").splitlines()
        return first[0].split()[-1] if first else "unknown"
