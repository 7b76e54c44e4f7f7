"""The test suite cleans up after itself: a session's scratch directory goes when it passes.

Each case runs a small pytest session of its own, in a subprocess whose
temporary directory is this test's, and looks at what it left there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _session(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TMPDIR": str(tmp)}
    for name in ("DRC_TEST_DIR", "PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def _left(tmp: Path) -> list[str]:
    return sorted(p.name for p in tmp.iterdir() if p.name.startswith("drc-tests-"))


def test_a_passing_session_removes_its_directory(tmp_path: Path) -> None:
    done = _session(tmp_path, "tests/unit/test_rclone_pure.py")
    assert done.returncode == 0, done.stdout + done.stderr
    assert _left(tmp_path) == []


def test_a_session_that_did_not_pass_keeps_it_and_says_where(tmp_path: Path) -> None:
    done = _session(tmp_path, "tests/unit/test_rclone_pure.py", "-k", "no_such_test")
    assert done.returncode == 5  # nothing ran: not a pass
    [kept] = _left(tmp_path)
    assert f"test files kept in {tmp_path / kept}" in done.stdout


def test_importing_the_settings_outside_a_session_makes_nothing(tmp_path: Path) -> None:
    # As mypy's Django plugin does on every type check.
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    for name in ("DRC_TEST_DIR", "PYTEST_XDIST_WORKER"):
        env.pop(name, None)
    subprocess.run(
        [sys.executable, "-c", "import tests.settings"], cwd=ROOT, env=env, check=True, timeout=60
    )
    assert _left(tmp_path) == []
