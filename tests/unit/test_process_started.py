"""``process.started``: a command started ahead of need, given its input later (#12)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from django_rclone_celery import process
from django_rclone_celery.exceptions import ProcessError
from django_rclone_celery.process import Command

# Writes what it read to a file, but only after a clean end of its input.
COPY_STDIN = (
    "import sys; data = sys.stdin.buffer.read(); "
    "open(sys.argv[1], 'wb').write(data); print(len(data))"
)


def copier(path: Path) -> Command:
    return Command(argv=(sys.executable, "-c", COPY_STDIN, str(path)))


def test_finish_sends_the_rest_and_returns_the_output(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with process.started(copier(out), first=b"first\n") as handle:
        done = handle.finish(b"rest\n")
    assert out.read_bytes() == b"first\nrest\n"
    assert done.stdout == b"11\n"


def test_left_unfinished_it_is_killed_never_given_an_end_of_input(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), process.started(copier(out), first=b"first\n"):
        raise RuntimeError("a guard refused")
    assert not out.exists()


def test_a_failure_raises_the_given_error_with_its_stderr(tmp_path: Path) -> None:
    fails = Command(argv=(sys.executable, "-c", "import sys; sys.exit('no such remote')"))
    with pytest.raises(ProcessError, match="no such remote"), process.started(fails) as handle:
        handle.finish()
