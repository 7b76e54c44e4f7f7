"""Failures leave nothing behind: no partial backup, no half-restored database.

Dump and restore tools are killed mid-stream with SIGKILL, backup objects are
truncated or their checksums broken, and each time the remote and the live
database are compared with what they were.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

from django_rclone_celery import signals
from django_rclone_celery.exceptions import (
    BackupNotFound,
    DjangoRcloneCeleryError,
    InvalidBackup,
    ProcessError,
    RcloneError,
)
from django_rclone_celery.floor.manifest import Manifest
from django_rclone_celery.operations import backup_database, list_backups, restore_database
from tests.helpers.databases import (
    damage,
    db_params,
    drop_table,
    make_big_table,
    populate,
    snapshot,
    staging_leftovers,
)
from tests.helpers.processes import find_pids
from tests.helpers.remotes import remote_files

BIG = "drc_big"
BIG_ROWS = 1_000_000  # ~150 MB: pg_dump's own compression needs a few seconds for it


class Background:
    """Runs an operation on a thread and keeps its result or exception."""

    def __init__(self, func: Callable[[], Any]) -> None:
        self.result: Any = None
        self.error: BaseException | None = None

        def target() -> None:
            try:
                self.result = func()
            except BaseException as exc:
                self.error = exc

        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()

    def join(self) -> None:
        self.thread.join(timeout=120)
        assert not self.thread.is_alive(), "operation did not finish after its tool was killed"


def kill_when(program: str, contains: str, ready: Callable[[], bool], timeout: float = 60) -> int:
    """SIGKILL ``program`` (with an argument containing ``contains``) once ``ready()`` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = find_pids(program, contains)
        if pids and ready():
            os.kill(pids[0], signal.SIGKILL)
            return pids[0]
        time.sleep(0.01)
    raise AssertionError(f"{program} never ran with {contains!r} while streaming")


def partial_bytes(directory: Path) -> int:
    if not directory.exists():
        return 0
    return sum(p.stat().st_size for p in directory.iterdir() if ".partial" in p.name)


# A failed dump ------------------------------------------------------------
@pytest.mark.django_db(transaction=True, databases=["default", "pg"])
def test_killed_dump_leaves_no_partial_and_no_manifest(remote_dir: Path, drc_config: Any) -> None:
    drc_config(COMPRESSION="native")  # pg_dump's zlib: slow enough to catch it mid-stream
    populate("pg")
    make_big_table("pg", BIG, BIG_ROWS)
    try:
        dbname = connections["pg"].settings_dict["NAME"]
        job = Background(lambda: backup_database("pg"))
        pid = kill_when(
            "pg_dump", f"--dbname={dbname}", lambda: partial_bytes(remote_dir / "db") > 0
        )
        job.join()
    finally:
        drop_table("pg", BIG)

    assert isinstance(job.error, ProcessError)
    assert not isinstance(job.error, RcloneError)  # the dump tool is blamed, not rclone
    assert job.error.returncode == -signal.SIGKILL
    assert "pg_dump was killed by signal 9" in str(job.error)
    assert list_backups("pg") == []
    assert remote_files(remote_dir) == []  # no .partial-, no manifest, nothing
    assert find_pids("pg_dump", dbname) == []
    assert pid not in find_pids("pg_dump")


@pytest.mark.django_db(transaction=True, databases=["default", "pg"])
def test_killed_upload_leaves_no_partial(remote_dir: Path, drc_config: Any) -> None:
    """The other side of the stream: rclone dies mid-upload; pg_dump must not linger."""
    drc_config(COMPRESSION="native")
    populate("pg")
    make_big_table("pg", BIG, BIG_ROWS)
    try:
        dbname = connections["pg"].settings_dict["NAME"]
        job = Background(lambda: backup_database("pg"))
        kill_when("rclone", str(remote_dir), lambda: partial_bytes(remote_dir / "db") > 0)
        job.join()
    finally:
        drop_table("pg", BIG)

    assert isinstance(job.error, RcloneError)
    assert job.error.returncode == -signal.SIGKILL
    assert list_backups("pg") == []
    assert remote_files(remote_dir) == []
    assert find_pids("pg_dump", dbname) == []


# A failed restore -----------------------------------------------------------
def _backup_then_damage(alias: str) -> tuple[str, dict[str, Any]]:
    populate(alias)
    name = backup_database(alias).name
    damage(alias)
    return name, snapshot(alias)


def _assert_untouched(alias: str, live: dict[str, Any], remote_dir: Path, name: str) -> None:
    assert snapshot(alias) == live
    assert staging_leftovers(alias) == []
    # The backup itself is never touched by a failed restore.
    assert f"db/{name}" in remote_files(remote_dir)


@pytest.mark.parametrize("compression", ["zstd", "none"])
@pytest.mark.parametrize("alias", db_params("default", "pg", "maria"))
def test_truncated_backup_leaves_live_database_unchanged(
    alias: str, compression: str, remote_dir: Path, drc_config: Any
) -> None:
    drc_config(COMPRESSION=compression)
    name, live = _backup_then_damage(alias)
    stored = remote_dir / "db" / name
    data = stored.read_bytes()
    stored.write_bytes(data[: len(data) * 2 // 3])

    with pytest.raises(DjangoRcloneCeleryError) as caught:
        restore_database(alias)

    if compression == "none":
        # The tool may or may not notice; the checksum always does.
        assert isinstance(caught.value, (InvalidBackup, ProcessError))
    _assert_untouched(alias, live, remote_dir, name)


@pytest.mark.parametrize("alias", db_params("default", "pg", "maria"))
def test_checksum_mismatch_refuses_an_otherwise_valid_backup(alias: str, remote_dir: Path) -> None:
    name, live = _backup_then_damage(alias)
    manifest_path = remote_dir / "db" / f"{name}.manifest.json"
    manifest = Manifest.from_bytes(manifest_path.read_bytes())
    forged = Manifest(**{**manifest.__dict__, "sha256": "0" * 64})
    manifest_path.write_bytes(forged.to_bytes())

    with pytest.raises(InvalidBackup, match="checksum does not match"):
        restore_database(alias)

    _assert_untouched(alias, live, remote_dir, name)


@pytest.mark.parametrize(
    ("alias", "tool"),
    [pytest.param(*p.values, "pg_restore", marks=p.marks, id="pg") for p in db_params("pg")]
    + [pytest.param(*p.values, "mysql", marks=p.marks, id="maria") for p in db_params("maria")],
)
def test_restore_tool_killed_mid_stream_leaves_live_database_unchanged(
    alias: str, tool: str, remote_dir: Path, drc_config: Any
) -> None:
    drc_config(COMPRESSION="none")
    populate(alias)
    make_big_table(alias, BIG, BIG_ROWS // 2)
    try:
        name = backup_database(alias).name
        damage(alias)
        drop_table(alias, BIG)
        live = snapshot(alias)
        target = connections[alias].settings_dict["NAME"] + "__temp"
        job = Background(lambda: restore_database(alias))
        # Kill once the tool has been fed for a moment, i.e. really mid-stream.
        started: list[float] = []

        def fed_a_while() -> bool:
            started.append(time.monotonic())
            return started[-1] - started[0] > 0.5

        kill_when(tool, target, fed_a_while)
        job.join()
    finally:
        drop_table(alias, BIG)

    assert isinstance(job.error, ProcessError)
    assert job.error.returncode == -signal.SIGKILL
    _assert_untouched(alias, live, remote_dir, name)
    assert find_pids(tool, target) == []


# Refusals -------------------------------------------------------------------
@pytest.mark.django_db(transaction=True, databases=["default", "pg"])
@pytest.mark.parametrize("with_manifest", [True, False], ids=["manifest", "legacy"])
def test_restore_across_engines_is_refused(remote_dir: Path, with_manifest: bool) -> None:
    """A SQLite backup renamed to look like one of ``pg`` is refused, manifest or not."""
    populate("default")
    result = backup_database("default")
    populate("pg")
    live = snapshot("pg")
    db = remote_dir / "db"
    disguised = "pg-" + result.name.split("-", 1)[1]
    (db / result.name).rename(db / disguised)
    manifest = db / f"{result.name}.manifest.json"
    if with_manifest:
        manifest.rename(db / f"{disguised}.manifest.json")
    else:
        manifest.unlink()

    with pytest.raises(InvalidBackup) as caught:
        restore_database("pg", input_path=disguised)

    message = str(caught.value)
    assert ("is a sqlite backup" in message) if with_manifest else ("was not made for" in message)
    assert snapshot("pg") == live
    assert staging_leftovers("pg") == []


@pytest.mark.django_db(transaction=True, databases=["default"])
def test_missing_backup_name_is_a_clear_error(remote_dir: Path) -> None:
    populate("default")
    backup_database("default")
    live = snapshot("default")
    with pytest.raises(BackupNotFound, match=r"default-2000-01-01-000000\.sqlite3\.zst"):
        restore_database("default", input_path="default-2000-01-01-000000.sqlite3.zst")
    assert snapshot("default") == live
    assert staging_leftovers("default") == []


@pytest.mark.django_db(transaction=True, databases=["default"])
def test_restore_with_no_backups_at_all(remote_dir: Path) -> None:
    with pytest.raises(BackupNotFound, match="no backups of database 'default'"):
        restore_database("default")


@pytest.mark.django_db(transaction=True, databases=["default"])
@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "db/../../x", "other:bucket/x", ""])
def test_input_path_cannot_escape_the_backup_directory(remote_dir: Path, path: str) -> None:
    populate("default")
    backup_database("default")
    live = snapshot("default")
    with pytest.raises(InvalidBackup):
        restore_database("default", input_path=path or "..")
    assert snapshot("default") == live


# Signals on failure ---------------------------------------------------------
@pytest.mark.django_db(transaction=True, databases=["default"])
def test_pre_db_backup_receiver_vetoes_the_backup(remote_dir: Path) -> None:
    class Veto(Exception):
        pass

    def veto(**kwargs: Any) -> None:
        raise Veto("not now")

    signals.pre_db_backup.connect(veto)
    try:
        with pytest.raises(Veto):
            backup_database("default")
    finally:
        signals.pre_db_backup.disconnect(veto)
    assert remote_files(remote_dir) == []


@pytest.mark.django_db(transaction=True, databases=["default"])
def test_stage_failed_carries_the_exception(remote_dir: Path) -> None:
    populate("default")
    name = backup_database("default").name
    (remote_dir / "db" / name).write_bytes(b"not zstd at all")
    seen: list[dict[str, Any]] = []

    def on_failed(sender: Any, **kwargs: Any) -> None:
        seen.append({"sender": sender, **kwargs})

    signals.stage_failed.connect(on_failed)
    try:
        with pytest.raises(DjangoRcloneCeleryError) as caught:
            restore_database("default", run_id="run-f")
    finally:
        signals.stage_failed.disconnect(on_failed)
    [event] = seen
    assert event["operation"] == event["sender"] == "db_restore"
    assert event["stage"] == "restore"
    assert event["database"] == "default"
    assert event["run_id"] == "run-f"
    assert isinstance(event["exception"], Exception)
    # The exception the caller sees is the stage's, or wraps it.
    assert caught.value is event["exception"] or caught.value.__cause__ is event["exception"]
