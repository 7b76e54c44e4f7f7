"""manage.py --enqueue / --wait, through a real Redis broker to a real (embedded) worker."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from celery import Celery, _state
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction

from django_rclone_celery import signals
from django_rclone_celery.enqueue import CeleryNotConfigured, enqueue_on_commit, project_app
from django_rclone_celery.models import BackupRun
from tests.celery_redis import celery_config, celery_includes  # noqa: F401
from tests.helpers.workers import EMBEDDED_BROKER_DB, RedisServer

ROOT = Path(__file__).resolve().parents[2]
TASK_ID = re.compile(r"as task ([0-9a-f]{32})")
DEFAULT_ONLY = pytest.mark.django_db(transaction=True, databases=["default"])


def task_id_in(text: str) -> str:
    match = TASK_ID.search(text)
    assert match, text
    return match.group(1)


class Watched(StringIO):
    """Command output that tells another thread when a line containing ``marker`` appears."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker = marker
        self.seen = threading.Event()

    def write(self, text: str) -> int:
        if self.marker in text:
            self.seen.set()
        return super().write(text)


@DEFAULT_ONLY
def test_enqueue_prints_the_task_id_and_a_worker_runs_it(
    celery_app: Any, celery_worker: Any, remote_dir: Path
) -> None:
    out = StringIO()
    call_command("dbbackup", "--database", "default", "--enqueue", stdout=out)
    task_id = task_id_in(out.getvalue())
    assert out.getvalue().startswith(f"Queued db_backup as task {task_id}")

    result = celery_app.AsyncResult(task_id).get(timeout=60)
    assert result["status"] == "succeeded"
    assert result["task_id"] == task_id
    run = BackupRun.objects.get(task_id=task_id)
    assert (run.operation, run.database, run.status) == ("db_backup", "default", "succeeded")
    assert (remote_dir / "db" / result["name"]).is_file()


@DEFAULT_ONLY
def test_wait_shows_progress_until_the_result(
    celery_app: Any, celery_worker: Any, remote_dir: Path
) -> None:
    out = Watched(marker="dump:")

    def hold_dump(sender: Any, stage: str, **kwargs: Any) -> None:
        # The worker stays in the dump stage until the command has printed it,
        # so the test does not depend on how fast the backup is.
        if stage == "dump":
            assert out.seen.wait(timeout=60), "--wait never showed the dump stage"

    signals.post_stage.connect(hold_dump, weak=False)
    try:
        call_command("dbbackup", "-d", "default", "--wait", stdout=out)
    finally:
        signals.post_stage.disconnect(hold_dump)
    text = out.getvalue()
    task_id = task_id_in(text)
    lines = text.splitlines()
    assert lines[0] == f"Queued db_backup as task {task_id}"
    assert any(re.fullmatch(r"dump: \d+(\.\d)? (B|KB|MB)( / .*)?", line) for line in lines), text
    assert re.search(rf"Task {task_id} succeeded: .*default-.*\.sqlite3", lines[-1]), text
    assert BackupRun.objects.get(task_id=task_id).status == "succeeded"


@DEFAULT_ONLY
def test_wait_exits_non_zero_when_the_run_fails(
    celery_app: Any, celery_worker: Any, remote_dir: Path
) -> None:
    def veto(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("backups are frozen for maintenance")

    signals.pre_db_backup.connect(veto, weak=False)
    out = StringIO()
    try:
        with pytest.raises(CommandError, match=r"failed: .*backups are frozen for maintenance"):
            call_command("dbbackup", "-d", "default", "--wait", stdout=out)
    finally:
        signals.pre_db_backup.disconnect(veto)
    task_id = task_id_in(out.getvalue())
    assert BackupRun.objects.get(task_id=task_id).status == "failed"
    assert not list(remote_dir.rglob("default-*"))


@DEFAULT_ONLY
def test_wait_with_json_keeps_stdout_for_the_result(
    celery_app: Any, celery_worker: Any, media_root: Path, remote_dir: Path
) -> None:
    (media_root / "cover.jpg").write_bytes(b"jpeg")
    out, err = StringIO(), StringIO()
    call_command("mediabackup", "--wait", "--json", stdout=out, stderr=err)
    result = json.loads(out.getvalue())
    assert result["status"] == "succeeded"
    assert result["operation"] == "media_backup"
    assert result["task_id"] == task_id_in(err.getvalue())
    assert (remote_dir / "media" / "cover.jpg").read_bytes() == b"jpeg"


@DEFAULT_ONLY
def test_restore_enqueue_without_input(
    celery_app: Any, depends_on_current_app: Any, remote_dir: Path
) -> None:
    # No worker: the message waits in Redis; its kwargs are what the worker would get.
    out = StringIO()
    call_command("dbrestore", "-d", "default", "--noinput", "--enqueue", stdout=out)
    task_id = task_id_in(out.getvalue())
    with celery_app.connection_for_read() as conn:
        message = conn.default_channel.basic_get("celery")
    assert message.headers["id"] == task_id
    assert message.headers["task"] == "django_rclone_celery.db_restore"
    args, kwargs, _ = message.decode()
    assert (args, kwargs) == ([], {"database": "default", "input_path": None})


@DEFAULT_ONLY
def test_backup_options_travel_with_the_message(
    celery_app: Any, depends_on_current_app: Any, remote_dir: Path
) -> None:
    with celery_app.connection_for_write() as conn:
        conn.default_channel.queue_purge("celery")  # no worker here: start from empty
    out = StringIO()
    argv = ["--format", "portable", "--compression", "none", "--clean", "--enqueue"]
    call_command("dbbackup", *argv, stdout=out)
    task_id = task_id_in(out.getvalue())
    with celery_app.connection_for_read() as conn:
        message = conn.default_channel.basic_get("celery")
    assert message.headers["id"] == task_id
    assert message.headers["task"] == "django_rclone_celery.db_backup"
    args, kwargs, _ = message.decode()
    expected = {"database": "default", "clean": True, "format": "portable", "compression": "none"}
    assert (args, kwargs) == ([], expected)


def test_enqueue_and_wait_are_exclusive() -> None:
    with pytest.raises(CommandError, match="not allowed with argument"):
        call_command("mediabackup", "--enqueue", "--wait")


@pytest.mark.django_db(transaction=True)
def test_on_commit_sends_only_after_commit(
    celery_app: Any,
    depends_on_current_app: Any,
    redis_server: RedisServer,
) -> None:
    queue = redis_server.client(EMBEDDED_BROKER_DB)
    queue.delete("celery")
    with transaction.atomic():
        enqueue_on_commit("media_backup")
        assert queue.llen("celery") == 0
    assert queue.llen("celery") == 1

    try:
        with transaction.atomic():
            enqueue_on_commit("media_backup")
            raise RuntimeError("rolled back")
    except RuntimeError:
        pass
    assert queue.llen("celery") == 1
    queue.delete("celery")


def test_app_without_broker_is_refused(celery_app: Any) -> None:
    Celery("proj", set_as_current=True)
    try:
        with pytest.raises(CeleryNotConfigured, match="'proj' has no broker configured"):
            project_app()
    finally:
        _state._set_current_app(celery_app)


def test_without_the_project_app_the_command_says_so(tmp_path: Path) -> None:
    """A project that never imports its Celery app: a clear message, no broker attempt."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DRC_TEST_DIR": str(tmp_path),
        # Were it used, this broker would refuse connections (and Celery would retry).
        "CELERY_BROKER_URL": "",
    }
    env.pop("CELERY_BROKER_URL")
    proc = subprocess.run(
        [sys.executable, "-m", "django", "dbbackup", "--enqueue"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert "The project's Celery app is not loaded" in proc.stderr
    assert "from .celery import app as celery_app" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


@pytest.mark.celery(result_backend="disabled://")
def test_wait_without_result_backend_queues_nothing(
    celery_app: Any,
    depends_on_current_app: Any,
    redis_server: RedisServer,
) -> None:
    queue = redis_server.client(EMBEDDED_BROKER_DB)
    queue.delete("celery")
    with pytest.raises(CommandError, match="needs a Celery result backend"):
        call_command("mediabackup", "--wait")
    assert queue.llen("celery") == 0
