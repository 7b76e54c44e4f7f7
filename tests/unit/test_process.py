"""The subprocess gateway: draining, killing and reaping, secret files, redaction.

Child programs are small Python scripts run with this interpreter, so each
test controls exactly what the child writes, when it exits, and what it saw.
A child is "gone" when ``/proc/<pid>`` no longer exists: killed *and* reaped
(an unreaped child would linger as a zombie).
"""

from __future__ import annotations

import ast
import hashlib
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from django_rclone_celery import process
from django_rclone_celery.exceptions import ProcessError, RcloneError
from django_rclone_celery.process import Command
from tests.helpers.processes import python_program

PACKAGE = Path(__file__).resolve().parents[2] / "django_rclone_celery"
SECRET = "s3cr3t-Value!with spaces"

# Preamble shared by child scripts: argv[1] is a directory for pid and marker files.
PRELUDE = (
    "import os, sys, time\n"
    "d = sys.argv[1]\n"
    "name = sys.argv[2]\n"
    "open(os.path.join(d, name + '.tmp'), 'w').write(str(os.getpid()))\n"
    "os.replace(os.path.join(d, name + '.tmp'), os.path.join(d, name + '.pid'))\n"
)
# For a source: do not fail before the sink has started (its pid is what the test checks).
WAIT_FOR_SINK = "while not os.path.exists(os.path.join(d, 'snk.pid')): time.sleep(0.01)\n"


def child(tmp_path: Path, name: str, body: str, **kwargs: Any) -> Command:
    return Command(argv=(*python_program(PRELUDE + body), str(tmp_path), name), **kwargs)


def pid_of(tmp_path: Path, name: str) -> int:
    return int((tmp_path / f"{name}.pid").read_text())


def gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()


def wait_for_file(path: Path) -> None:
    """Let a child start before the test makes the pipe fail, so its pid is known."""
    for _ in range(1000):
        if path.exists() and path.read_text():
            return
        time.sleep(0.01)
    raise AssertionError(f"{path} never appeared")


READ_TO_EOF = (
    "data = sys.stdin.buffer.read()\n"
    "open(os.path.join(d, name + '.eof'), 'w').write(str(len(data)))\n"
)


# Draining ------------------------------------------------------------------
def test_pipe_drains_large_stderr_on_both_sides(tmp_path: Path) -> None:
    """10 MB of stderr from each side while 10 MB flows: no deadlock, a bounded tail kept."""
    source = child(
        tmp_path,
        "src",
        "for i in range(160):\n"
        "    for j in range(64):\n"
        "        line = b'complaint %06d ' % (i * 64 + j) + b'e' * 1000\n"
        "        sys.stderr.buffer.write(line + b'\\n')\n"
        "    sys.stderr.flush()\n"
        "    sys.stdout.buffer.write(bytes([i]) * 65536); sys.stdout.flush()\n"
        "sys.stderr.buffer.write(b'source done\\n')\n",
    )
    sink = child(
        tmp_path,
        "snk",
        "import hashlib\n"
        "h = hashlib.sha256(); n = 0\n"
        "while True:\n"
        "    chunk = sys.stdin.buffer.read(65536)\n"
        "    if not chunk: break\n"
        "    h.update(chunk); n += len(chunk)\n"
        "    sys.stderr.buffer.write(b'f' * 65535 + b'\\n'); sys.stderr.flush()\n"
        "open(os.path.join(d, 'sink.sha'), 'w').write(h.hexdigest())\n"
        "sys.stderr.buffer.write(b'sink done\\n')\n",
    )
    expected = hashlib.sha256(b"".join(bytes([i]) * 65536 for i in range(160))).hexdigest()

    stats = process.pipe(source, sink, timeout=120)

    assert stats.bytes_in == stats.bytes_out == 160 * 65536
    assert stats.sha256 == expected == (tmp_path / "sink.sha").read_text()
    assert stats.source_stderr.endswith("source done\n")
    assert stats.sink_stderr.endswith("sink done\n")
    # Only a tail is kept: memory stays flat however much a tool complains...
    assert 60 * 1024 < len(stats.source_stderr) <= 2 * 64 * 1024
    assert len(stats.sink_stderr) <= 2 * 64 * 1024 + 65536
    # ...and it starts on a line boundary: no half line (or half secret) is shown.
    lines = stats.source_stderr.splitlines()
    assert all(re.fullmatch(r"complaint \d{6} e{1000}", line) for line in lines[:-1])
    assert lines[-2].startswith("complaint 010239 ")
    assert gone(pid_of(tmp_path, "src"))
    assert gone(pid_of(tmp_path, "snk"))


def test_run_captures_large_stdout_and_stderr(tmp_path: Path) -> None:
    cmd = child(
        tmp_path,
        "run",
        "sys.stderr.buffer.write(b'x' * (8 << 20)); sys.stdout.buffer.write(b'y' * (8 << 20))\n",
    )
    done = process.run(cmd, timeout=120)
    assert done.stdout == b"y" * (8 << 20)
    assert len(done.stderr) == 8 << 20


def test_pipe_with_transform_counts_and_hashes_the_chosen_side(tmp_path: Path) -> None:
    class Upper:
        def feed(self, data: memoryview) -> bytes:
            return bytes(data).upper()

        def finish(self) -> bytes:
            return b"!"

    source = child(tmp_path, "src", "sys.stdout.write('abc' * 1000)\n")
    sink = child(
        tmp_path, "snk", "open(os.path.join(d, 'out'), 'wb').write(sys.stdin.buffer.read())\n"
    )
    stats = process.pipe(source, sink, transform=Upper(), digest="source")
    assert (tmp_path / "out").read_bytes() == b"ABC" * 1000 + b"!"
    assert (stats.bytes_in, stats.bytes_out) == (3000, 3001)
    assert stats.sha256 == hashlib.sha256(b"abc" * 1000).hexdigest()


def _held(
    tmp_path: Path, size: int, *, tail: bytes = b"", hold: int = 100, check: Any = None
) -> Any:
    """A pipe of ``size`` bytes (and ``tail`` from the transform's finish) with ``hold``."""

    class Tail:
        def feed(self, data: memoryview) -> bytes:
            return bytes(data)

        def finish(self) -> bytes:
            return tail

    source = child(tmp_path, "src", f"sys.stdout.write('x' * {size})\n")
    sink = child(
        tmp_path, "snk", "open(os.path.join(d, 'out'), 'wb').write(sys.stdin.buffer.read())\n"
    )
    smalls: list[bytes] = []
    stats = process.pipe(
        source, sink, transform=Tail(), hold=hold, small=smalls.append, before_end=check
    )
    return stats, smalls


def test_an_output_within_hold_goes_to_small_and_the_sink_never_starts(tmp_path: Path) -> None:
    stats, smalls = _held(tmp_path, 60, tail=b"end")
    assert smalls == [b"x" * 60 + b"end"]
    assert not (tmp_path / "snk.pid").exists()
    assert stats.bytes_out == 63
    assert stats.sha256 == hashlib.sha256(b"x" * 60 + b"end").hexdigest()


@pytest.mark.parametrize(("size", "tail"), [(5000, b""), (99, b"tail")], ids=["stream", "tail"])
def test_an_output_past_hold_starts_the_sink_with_every_byte(
    tmp_path: Path, size: int, tail: bytes
) -> None:
    stats, smalls = _held(tmp_path, size, tail=tail)
    assert smalls == []
    assert (tmp_path / "out").read_bytes() == b"x" * size + tail
    assert stats.sha256 == hashlib.sha256(b"x" * size + tail).hexdigest()


def test_a_refused_output_within_hold_is_written_nowhere(tmp_path: Path) -> None:
    def refuse() -> None:
        raise ValueError("cut short")

    with pytest.raises(ValueError, match="cut short"):
        _held(tmp_path, 60, check=refuse)
    assert not (tmp_path / "snk.pid").exists()


def test_a_failing_source_within_hold_writes_nothing(tmp_path: Path) -> None:
    source = child(tmp_path, "src", "sys.stdout.write('x' * 10); sys.stdout.flush(); sys.exit(3)\n")
    sink = child(tmp_path, "snk", READ_TO_EOF)
    smalls: list[bytes] = []
    with pytest.raises(ProcessError):
        process.pipe(source, sink, hold=100, small=smalls.append)
    assert smalls == []
    assert not (tmp_path / "snk.pid").exists()


# Kill and reap -------------------------------------------------------------
def test_failing_source_kills_the_sink_before_it_sees_end_of_stream(tmp_path: Path) -> None:
    """A restore tool must never see a clean EOF of a truncated stream."""
    source = child(
        tmp_path,
        "src",
        WAIT_FOR_SINK + "sys.stdout.buffer.write(b'z' * (1 << 20)); sys.stdout.flush()\n"
        "sys.stderr.write('boom: disk on fire\\n'); sys.exit(3)\n",
    )
    sink = child(tmp_path, "snk", READ_TO_EOF)

    with pytest.raises(ProcessError) as caught:
        process.pipe(source, sink, sink_error=RcloneError)

    error = caught.value
    assert type(error) is ProcessError  # the source's error type, not the sink's
    assert error.returncode == 3
    assert "boom: disk on fire" in error.stderr
    assert "exited with status 3" in str(error)
    assert error.argv == source.argv
    assert not (tmp_path / "snk.eof").exists()
    assert gone(pid_of(tmp_path, "src"))
    assert gone(pid_of(tmp_path, "snk"))


def test_failing_sink_stops_an_endless_source(tmp_path: Path) -> None:
    source = child(tmp_path, "src", "while True:\n    sys.stdout.buffer.write(b'q' * 65536)\n")
    sink = child(
        tmp_path,
        "snk",
        "sys.stdin.buffer.read(10)\nsys.stderr.write('quota exceeded\\n')\nsys.exit(5)\n",
    )
    with pytest.raises(RcloneError) as caught:
        process.pipe(source, sink, sink_error=RcloneError)
    assert caught.value.returncode == 5
    assert caught.value.transient  # rclone's exit code 5: "temporary error"
    assert "quota exceeded" in str(caught.value)
    assert gone(pid_of(tmp_path, "src"))
    assert gone(pid_of(tmp_path, "snk"))


def test_pipe_timeout_kills_and_reaps_both(tmp_path: Path) -> None:
    source = child(
        tmp_path,
        "src",
        WAIT_FOR_SINK + "sys.stdout.write('x'); sys.stdout.flush(); time.sleep(600)\n",
    )
    sink = child(tmp_path, "snk", READ_TO_EOF)
    with pytest.raises(ProcessError, match="timed out after 2 s"):
        process.pipe(source, sink, timeout=2)
    assert not (tmp_path / "snk.eof").exists()
    assert gone(pid_of(tmp_path, "src"))
    assert gone(pid_of(tmp_path, "snk"))


def test_error_inside_the_stream_loop_kills_both(tmp_path: Path) -> None:
    """A failing transform (e.g. a corrupt zstd frame) or progress callback."""

    class Corrupt:
        def feed(self, data: memoryview) -> bytes:
            wait_for_file(tmp_path / "snk.pid")
            raise ValueError("corrupt frame")

        def finish(self) -> bytes:
            return b""

    source = child(tmp_path, "src", "while True:\n    sys.stdout.buffer.write(b'q' * 65536)\n")
    sink = child(tmp_path, "snk", READ_TO_EOF)
    with pytest.raises(ValueError, match="corrupt frame"):
        process.pipe(source, sink, transform=Corrupt())
    assert not (tmp_path / "snk.eof").exists()
    assert gone(pid_of(tmp_path, "src"))
    assert gone(pid_of(tmp_path, "snk"))


def test_interrupt_from_progress_callback_kills_both(tmp_path: Path) -> None:
    def interrupt(done: int) -> None:
        wait_for_file(tmp_path / "snk.pid")
        raise KeyboardInterrupt

    source = child(tmp_path, "src", "while True:\n    sys.stdout.buffer.write(b'q' * 65536)\n")
    sink = child(tmp_path, "snk", READ_TO_EOF)
    with pytest.raises(KeyboardInterrupt):
        process.pipe(source, sink, progress=interrupt)
    assert not (tmp_path / "snk.eof").exists()
    assert gone(pid_of(tmp_path, "src"))
    assert gone(pid_of(tmp_path, "snk"))


def test_run_timeout_kills_and_reaps(tmp_path: Path) -> None:
    with pytest.raises(ProcessError, match="timed out after 2 s"):
        process.run(child(tmp_path, "run", "time.sleep(600)\n"), timeout=2)
    assert gone(pid_of(tmp_path, "run"))


def test_read_from_left_early_kills_the_program(tmp_path: Path) -> None:
    source = child(tmp_path, "src", "while True:\n    sys.stdout.buffer.write(b'q' * 65536)\n")
    got = b""
    with pytest.raises(RuntimeError), process.read_from(source) as stream:  # noqa: PT012
        got = stream.read(10)
        raise RuntimeError("consumer gave up")
    assert got == b"q" * 10
    assert gone(pid_of(tmp_path, "src"))


def test_read_from_reports_a_failing_program(tmp_path: Path) -> None:
    source = child(tmp_path, "src", "sys.stdout.write('partial'); sys.exit(7)\n")
    with pytest.raises(ProcessError) as caught, process.read_from(source) as stream:
        assert stream.read() == b"partial"
    assert caught.value.returncode == 7


def test_pipe_into_reports_a_failing_sink(tmp_path: Path) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield b"c" * 65536

    sink = child(tmp_path, "snk", "sys.stdin.buffer.read(5)\nsys.exit(4)\n")
    with pytest.raises(RcloneError) as caught:
        process.pipe_into(sink, chunks, error=RcloneError)
    assert caught.value.returncode == 4
    assert gone(pid_of(tmp_path, "snk"))


def test_missing_program_is_a_process_error() -> None:
    with pytest.raises(ProcessError) as caught:
        process.run(Command(argv=("drc-no-such-program", "--version")))
    assert caught.value.returncode == 127
    assert "program not found: drc-no-such-program" in str(caught.value)


def test_argv_is_never_given_to_a_shell(tmp_path: Path) -> None:
    done = process.run(Command(argv=("echo", "$HOME; touch pwned", "`id`")), timeout=30)
    assert done.stdout == b"$HOME; touch pwned `id`\n"


def test_rclone_is_found_beside_the_interpreter_without_path(monkeypatch: Any) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    found = process.find_program("rclone")
    assert found is not None
    assert Path(found).name == "rclone"
    assert os.access(found, os.X_OK)


# Secret files ---------------------------------------------------------------
# The child reports what it was handed: the path, its mode, what it names in
# the file system (an anonymous memory file has no name: "/memfd:... (deleted)"),
# its content and the child's own argv.
REPORT_SECRET_FILE = (
    "import json, stat\n"
    "path = sys.argv[3].split('=', 1)[1]\n"
    "info = {'path': path, 'mode': stat.S_IMODE(os.stat(path).st_mode),\n"
    "        'target': os.path.realpath(path),\n"
    "        'links': os.stat(path).st_nlink,\n"
    "        'content': open(path).read(),\n"
    "        'cmdline': open('/proc/self/cmdline', 'rb').read().decode()}\n"
    "open(os.path.join(d, name + '.json'), 'w').write(json.dumps(info))\n"
)


def secret_file_command(tmp_path: Path, name: str, extra: str = "") -> Command:
    base = child(tmp_path, name, REPORT_SECRET_FILE + extra)
    return Command(
        argv=(*base.argv, "--defaults-extra-file=@@TOKEN@@"),
        secret_files={"@@TOKEN@@": f"[client]\npassword={SECRET}\n"},
        redact=(SECRET,),
    )


def held_secret_files() -> list[str]:
    """Anonymous secret files this (test) process still has open."""
    held = []
    for entry in os.scandir("/proc/self/fd"):
        try:
            target = os.readlink(entry.path)
        except OSError:
            continue
        if target.startswith("/memfd:drc-secret"):
            held.append(target)
    return held


def test_secret_file_is_private_and_never_on_disk(tmp_path: Path, monkeypatch: Any) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where a file would go
    process.run(secret_file_command(tmp_path, "run"))
    info = json.loads((tmp_path / "run.json").read_text())
    assert info["mode"] == 0o600
    assert info["content"] == f"[client]\npassword={SECRET}\n"
    # A descriptor, not a file: nothing to remove, nothing a SIGKILL can leave behind.
    assert info["path"].startswith("/dev/fd/")
    assert info["target"].startswith("/memfd:drc-secret")
    assert info["links"] == 0
    assert SECRET not in info["cmdline"]
    assert "@@TOKEN@@" not in info["cmdline"]
    assert held_secret_files() == []
    assert list(scratch.iterdir()) == []


def test_secret_file_is_released_when_the_program_fails(tmp_path: Path) -> None:
    with pytest.raises(ProcessError):
        process.run(secret_file_command(tmp_path, "run", "sys.exit(1)\n"))
    info = json.loads((tmp_path / "run.json").read_text())
    assert info["target"].startswith("/memfd:drc-secret")
    assert held_secret_files() == []


def test_secret_file_in_a_pipe(tmp_path: Path) -> None:
    source = child(tmp_path, "src", "sys.stdout.write('data')\n")
    sink = secret_file_command(tmp_path, "snk", "sys.stdin.read()\n")
    process.pipe(source, sink)
    info = json.loads((tmp_path / "snk.json").read_text())
    assert info["mode"] == 0o600
    assert SECRET not in info["cmdline"]
    assert info["target"].startswith("/memfd:drc-secret")
    assert held_secret_files() == []


def test_a_secret_file_reaches_only_its_own_program(tmp_path: Path) -> None:
    """The source of a pipe cannot read the sink's secret file (close-on-exec)."""
    probe = (
        "import json\n"
        "fds = {}\n"
        "for f in os.listdir('/proc/self/fd'):\n"
        "    try: fds[f] = os.readlink('/proc/self/fd/' + f)\n"
        "    except OSError: pass  # the listing's own descriptor\n"
        "open(os.path.join(d, 'fds.json'), 'w').write(json.dumps(fds))\n"
        "sys.stdout.write('data')\n"
    )
    source = child(tmp_path, "src", probe)
    sink = secret_file_command(tmp_path, "snk", "sys.stdin.read()\n")
    process.pipe(source, sink)
    seen = json.loads((tmp_path / "fds.json").read_text()).values()
    assert not [target for target in seen if "memfd:drc-secret" in target]


# Redaction ------------------------------------------------------------------
# The child proves it received the secret (stdout, never redacted) and then leaks it to stderr.
LEAK = (
    "secret = os.environ.get('DRC_SECRET', '')\n"
    "sys.stdout.write('received %d chars' % len(secret))\n"
    "sys.stderr.write('password was ' + secret + '\\n')\n"
    "sys.exit(2)\n"
)


def test_secret_env_reaches_the_child_and_never_the_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    cmd = child(tmp_path, "run", LEAK, secret_env={"DRC_SECRET": SECRET})
    assert "DRC_SECRET" not in os.environ

    done = process.run(cmd, check=False)
    assert done.returncode == 2
    assert done.stdout == f"received {len(SECRET)} chars".encode()
    assert SECRET not in done.stderr
    assert "password was ********" in done.stderr

    with pytest.raises(ProcessError) as caught:
        process.run(cmd)
    assert SECRET not in str(caught.value)
    assert SECRET not in caught.value.stderr
    assert SECRET not in repr(caught.value.argv)
    assert "password was ********" in str(caught.value)
    assert SECRET not in caplog.text
    assert SECRET not in repr(cmd)


def test_pipe_errors_are_redacted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    source = child(tmp_path, "src", LEAK, secret_env={"DRC_SECRET": SECRET})
    sink = child(tmp_path, "snk", READ_TO_EOF, redact=(SECRET,))
    with pytest.raises(ProcessError) as caught:
        process.pipe(source, sink)
    assert caught.value.returncode == 2
    assert SECRET not in str(caught.value)
    assert "password was ********" in caught.value.stderr
    assert SECRET not in caplog.text


def test_truncated_stderr_never_shows_part_of_a_secret(tmp_path: Path) -> None:
    """When only the tail of a long stderr is kept, its cut never splits a secret."""
    source = child(
        tmp_path,
        "src",
        "line = ('pw=' + os.environ['DRC_SECRET'] + '\\n').encode()\n"
        "for _ in range(20000):\n"
        "    sys.stderr.buffer.write(line)\n"
        "sys.exit(1)\n",
        secret_env={"DRC_SECRET": SECRET},
    )
    with pytest.raises(ProcessError) as caught:
        process.pipe(source, child(tmp_path, "snk", READ_TO_EOF))
    lines = caught.value.stderr.splitlines()
    assert len(lines) > 1000
    assert set(lines) == {"pw=********"}


def test_redact_replaces_every_secret_longest_first() -> None:
    assert process.redact("pw=abcdef and abc", ["abcdef", "abc"]) == "pw=******** and ********"


MULTILINE = "first-Line q\"'\\ $x #y\nsecond-line z9\n  third-line  "


def test_every_line_of_a_multiline_secret_is_masked(tmp_path: Path) -> None:
    """A tool that misreads a multi-line secret may print one line of it alone."""
    cmd = child(
        tmp_path,
        "run",
        "s = os.environ['DRC_SECRET']\n"
        "sys.stderr.write('unknown option ' + s.splitlines()[1] + '\\n')\n"
        "sys.stderr.write('value ' + s.splitlines()[2].strip() + ' ignored\\n')\n"
        "sys.stderr.write('escaped ' + s.encode('unicode_escape').decode() + '\\n')\n"
        "sys.stderr.write('whole ' + s + '\\n')\n"
        "sys.exit(3)\n",
        secret_env={"DRC_SECRET": MULTILINE},
    )
    with pytest.raises(ProcessError) as caught:
        process.run(cmd)
    text = str(caught.value)
    for part in ("first-Line", "second-line", "third-line", "z9"):
        assert part not in text, text
    assert "unknown option ********" in text
    assert "value ******** ignored" in text


# Children die with the run ----------------------------------------------------
# A run in its own Python process: the pipe is started on a helper thread (as a
# worker's thread pool might), the pids of both programs are written, then it
# waits for ever. The test SIGKILLs that process and nothing else.
ORPHAN_RUN = """
import sys, threading
sys.path.insert(0, {root!r})
from django_rclone_celery import process
from django_rclone_celery.process import Command
prelude, d = sys.argv[1], sys.argv[2]
def prog(name, body):
    return Command(argv=(sys.executable, '-c', prelude + body, d, name))
source = prog('src', 'import signal\\nsignal.signal(signal.SIGPIPE, signal.SIG_IGN)\\n'
              'while True:\\n    sys.stdout.write(\\'x\\' * 10)\\n    sys.stdout.flush()\\n'
              '    time.sleep(0.05)\\n')
sink = prog('snk', 'import signal\\nsignal.signal(signal.SIGPIPE, signal.SIG_IGN)\\n'
            'time.sleep(3600)\\n')
threading.Thread(target=process.pipe, args=(source, sink), daemon=True).start()
threading.Event().wait()
"""


def state(pid: int) -> str:
    """The kernel's state letter for ``pid``: "Z" for a zombie, "" once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


@pytest.mark.skipif(not process._prctl, reason="PR_SET_PDEATHSIG is Linux only")
def test_programs_die_when_the_run_is_sigkilled(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    script = ORPHAN_RUN.format(root=str(PACKAGE.parent))
    run = subprocess.Popen([sys.executable, "-c", script, PRELUDE, str(tmp_path)])
    try:
        wait_for_file(tmp_path / "src.pid")
        wait_for_file(tmp_path / "snk.pid")
        pids = [pid_of(tmp_path, "src"), pid_of(tmp_path, "snk")]
        time.sleep(0.3)  # both programs are well into their work, not starting
        assert all(state(pid) not in ("", "Z") for pid in pids)
    finally:
        os.kill(run.pid, signal.SIGKILL)
        run.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(state(pid) not in ("", "Z") for pid in pids):
        time.sleep(0.02)
    alive = [pid for pid in pids if state(pid) not in ("", "Z")]
    for pid in alive:  # do not leave them behind if the test fails
        os.kill(pid, signal.SIGKILL)
    assert alive == []


# The gateway is the only door -------------------------------------------------
BANNED = {"subprocess", "pty", "multiprocessing"}


def subprocess_uses(path: Path) -> list[str]:
    """Ways ``path`` could start a program without the gateway."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.split(".")[0] in BANNED]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in BANNED:
            found.append(f"from {node.module} import")
        elif isinstance(node, ast.Call):
            dotted = ast.unparse(node.func)
            if (
                dotted in ("os.system", "os.popen")
                or dotted.startswith(("os.exec", "os.spawn"))
                or (
                    dotted.endswith(("__import__", "import_module"))
                    and any(
                        isinstance(arg, ast.Constant) and str(arg.value).split(".")[0] in BANNED
                        for arg in node.args
                    )
                )
            ):
                found.append(dotted)
    return found


def test_subprocess_is_used_only_by_the_gateway() -> None:
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "process.py":
            continue
        uses = subprocess_uses(path)
        if uses:
            offenders[str(path.relative_to(PACKAGE.parent))] = uses
    assert offenders == {}
    assert subprocess_uses(PACKAGE / "process.py") == ["import subprocess"]


def test_the_guard_catches_every_spelling(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import subprocess\n"
        "from subprocess import run\n"
        "import os\n"
        "os.system('x')\n"
        "os.execvp('x', ['x'])\n"
        "importlib.import_module('subprocess')\n"
        "__import__('pty')\n"
    )
    assert subprocess_uses(sample) == [
        "import subprocess",
        "from subprocess import",
        "os.system",
        "os.execvp",
        "importlib.import_module",
        "__import__",
    ]
