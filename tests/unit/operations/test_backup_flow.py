"""The control flow of a database backup, with every program replaced.

``process.using_runner`` routes each program start to a
:class:`~tests.helpers.processes.RecordingRunner`: no dump tool, no rclone, no
remote. The tests see which programs an operation starts, in which order, and
what it does when one of them fails.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest

from django_rclone_celery import naming, process
from django_rclone_celery.exceptions import (
    IncompleteBackup,
    ProcessError,
    RcloneError,
)
from django_rclone_celery.operations import backup_database
from tests.helpers.processes import RecordingRunner

pytestmark = pytest.mark.django_db(transaction=True)

DUMP = b"PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\nCREATE TABLE t (x);\nCOMMIT;\n"


@pytest.fixture
def runner(drc_config: Callable[..., Any]) -> RecordingRunner:
    drc_config(REMOTE="unit:backups", COMPRESSION="none")
    fake = RecordingRunner()
    fake.on("rclone", "lsjson", stdout=b"[]")
    return fake


def partials(runner: RecordingRunner) -> set[str]:
    """Every partial name an upload was started under."""
    return {argv[-1] for argv in runner.started("rclone", "rcat", naming.PARTIAL_MARKER)}


def test_a_failing_dump_tool_deletes_the_partial_and_publishes_nothing(
    runner: RecordingRunner,
) -> None:
    runner.on("sqlite3", ".dump", returncode=1, stderr="Error: disk I/O error")
    with process.using_runner(runner), pytest.raises(ProcessError, match="disk I/O error") as err:
        backup_database("default")
    assert not isinstance(err.value, RcloneError)  # the dump's error, not rclone's
    [partial] = partials(runner)
    assert runner.started("rclone", "deletefile", partial)
    assert runner.started("rclone", "moveto") == []
    assert not any(argv[-1].endswith(naming.MANIFEST_SUFFIX) for argv in runner.calls)


def test_a_failing_upload_fails_the_run_and_deletes_the_partial(runner: RecordingRunner) -> None:
    runner.on("sqlite3", ".dump", stdout=DUMP)
    runner.on("rclone", "rcat", naming.PARTIAL_MARKER, returncode=7, stderr="quota exceeded")
    with process.using_runner(runner), pytest.raises(RcloneError, match="quota exceeded"):
        backup_database("default")
    [partial] = partials(runner)
    assert runner.started("rclone", "deletefile", partial)
    assert runner.started("rclone", "moveto") == []


def test_a_dump_cut_short_is_refused_before_it_is_published(runner: RecordingRunner) -> None:
    runner.on("sqlite3", ".dump", stdout=DUMP.replace(b"COMMIT;\n", b""))
    with process.using_runner(runner), pytest.raises(IncompleteBackup, match="COMMIT"):
        backup_database("default")
    [partial] = partials(runner)
    assert runner.started("rclone", "deletefile", partial)
    assert runner.started("rclone", "moveto") == []


def test_a_whole_dump_is_published_after_its_manifest(runner: RecordingRunner) -> None:
    runner.on("sqlite3", ".dump", stdout=DUMP)
    with process.using_runner(runner):
        result = backup_database("default")
    [partial] = partials(runner)
    [move] = runner.started("rclone", "moveto", partial)
    assert move[-1] == f"unit:backups/db/{result.name}"
    manifest_uploads = [a for a in runner.calls if a[-1].endswith(naming.MANIFEST_SUFFIX)]
    [manifest_upload] = manifest_uploads
    # The manifest lands first: a published backup always has one.
    assert runner.calls.index(manifest_upload) < runner.calls.index(move)
    manifest = json.loads(runner.inputs[manifest_upload])
    sent = runner.received[next(a for a in runner.calls if a[-1] == partial)]
    assert sent == DUMP  # COMPRESSION="none": the dump itself
    assert manifest["sha256"] == hashlib.sha256(sent).hexdigest() == result.sha256
    assert manifest["size"] == len(DUMP) == result.size
    assert runner.started("rclone", "deletefile") == []


def test_the_runner_is_only_used_inside_its_block() -> None:
    fake = RecordingRunner()
    fake.on("no-such-program", returncode=3, stderr="canned")
    command = process.Command(argv=("no-such-program", "--flag"))

    def fail_inside() -> None:
        with process.using_runner(fake):
            with pytest.raises(ProcessError, match="canned"):
                process.run(command)
            raise RuntimeError("leaves the block")

    with pytest.raises(RuntimeError):
        fail_inside()
    assert fake.calls == [("no-such-program", "--flag")]
    with pytest.raises(ProcessError):  # the real gateway again: no such program
        process.run(command)
    assert len(fake.calls) == 1
