"""The Celery tasks, run by real ``celery worker`` processes through a real Redis broker.

Nothing here runs eagerly: every task is sent with ``send_task`` to the
throwaway Redis of ``tests/helpers/workers.py`` and executed by a worker subprocess
that shares the test databases (see ``tests/worker_settings.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

from django_rclone_celery.models import BackupRun
from django_rclone_celery.operations import list_backups
from tests.helpers.databases import (
    APP_TABLES,
    damage,
    drop_table,
    make_big_table,
    populate,
    snapshot,
)
from tests.helpers.remotes import remote_files
from tests.helpers.tasks import BACKUP, RESTORE, SLOW_STREAM
from tests.helpers.workers import wait_for

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "pg"])


def test_backup_task_returns_the_result_and_records_the_run(
    task_app: Any, workers: Any, remote_dir: Path
) -> None:
    populate("pg")
    workers.start()
    result = task_app.send_task(BACKUP, kwargs={"database": "pg"})
    value = result.get(timeout=120)
    assert value["status"] == "succeeded"
    assert value["operation"] == "db_backup"
    assert value["database"] == "pg"
    assert value["task_id"] == result.id
    [backup] = list_backups("pg")
    assert value["path"] == backup.path
    assert value["size"] == backup.size > 0
    run = BackupRun.objects.get(task_id=result.id)
    assert (run.status, run.path, run.size, run.attempts) == (
        "succeeded",
        backup.path,
        backup.size,
        1,
    )
    assert run.slot == f"task:{result.id}"
    assert run.started
    assert run.finished
    assert run.started <= run.finished
    assert remote_files(remote_dir / "db") == sorted([backup.name, backup.name + ".manifest.json"])


def test_portable_backup_task_writes_a_portable_backup_that_restores(
    task_app: Any, workers: Any, remote_dir: Path
) -> None:
    from tests.testapp.models import Book

    populate("pg")
    before = sorted(Book.objects.using("pg").values_list("pk", "title", "price"))
    assert before
    workers.start()
    value = task_app.send_task(
        "django_rclone_celery.portable_backup", kwargs={"database": "pg"}
    ).get(timeout=120)
    assert (value["status"], value["format"], value["compression"]) == (
        "succeeded",
        "portable",
        "zstd",
    )
    [backup] = list_backups("pg")
    assert backup.name.endswith(".portable.jsonl.zst")
    Book.objects.using("pg").all().delete()
    restored = task_app.send_task("django_rclone_celery.db_restore", kwargs={"database": "pg"}).get(
        timeout=120
    )
    assert (restored["status"], restored["format"]) == ("succeeded", "portable")
    assert sorted(Book.objects.using("pg").values_list("pk", "title", "price")) == before


def test_progress_is_visible_as_task_state_and_in_the_ledger(
    task_app: Any, workers: Any, remote_dir: Path, drc_config: Any
) -> None:
    make_big_table("pg", "drc_big", 50_000)
    drc_config(**SLOW_STREAM)
    workers.start()
    result = task_app.send_task(BACKUP, kwargs={"database": "pg"})

    def streaming() -> Any:
        return result.state == "PROGRESS" and result.info["bytes_done"] > 0 and result.info

    info = wait_for(streaming, what="PROGRESS with bytes", pool=workers)
    assert info["stage"] == "dump"
    assert info["operation"] == "db_backup"
    assert info["database"] == "pg"
    assert "bytes_total" in info

    def ledger_streaming() -> Any:
        run = BackupRun.objects.filter(task_id=result.id).first()
        return run if run and run.stage == "dump" and run.bytes_done > 0 else None

    run = wait_for(ledger_streaming, what="ledger row with bytes", pool=workers)
    assert run.status == "running"
    assert result.get(timeout=120)["status"] == "succeeded"
    run.refresh_from_db()
    assert (run.status, run.stage) == ("succeeded", "publish")


def test_a_parallel_backup_and_restore_report_progress_from_their_streams_on_a_worker(
    task_app: Any, workers: Any, remote_dir: Path, drc_config: Any
) -> None:
    # Each stream reports its bytes from a thread of its own, where Celery's
    # current request is not the task's: the task's state must still be set.
    populate("pg")
    make_big_table("pg", "drc_big", 50_000)
    drc_config(**SLOW_STREAM)
    before = snapshot("pg", (*APP_TABLES, "drc_big"))
    workers.start()
    result = task_app.send_task(BACKUP, kwargs={"database": "pg", "jobs": 2})

    def streaming() -> Any:
        return result.state == "PROGRESS" and result.info["bytes_done"] > 0 and result.info

    info = wait_for(streaming, what="PROGRESS with bytes", pool=workers)
    assert (info["stage"], info["database"]) == ("dump", "pg")
    outcome = result.get(timeout=120)
    assert outcome["status"] == "succeeded", outcome
    [backup] = list_backups("pg")
    manifest = json.loads((remote_dir / "db" / f"{backup.name}.manifest.json").read_text())
    assert len(manifest["streams"]) == 2

    damage("pg")
    drop_table("pg", "drc_big")
    restored = task_app.send_task(RESTORE, kwargs={"database": "pg", "jobs": 2})
    assert restored.get(timeout=180)["status"] == "succeeded"
    connections["pg"].close()  # it was to the copy the swap replaced
    assert snapshot("pg", (*APP_TABLES, "drc_big")) == before
    assert [r.status for r in BackupRun.objects.order_by("pk")] == ["succeeded", "succeeded"]


def test_a_failure_outside_any_stage_fails_the_task_and_sends_stage_failed(
    task_app: Any, workers: Any, remote_dir: Path
) -> None:
    workers.start()
    result = task_app.send_task(BACKUP, kwargs={"database": "nope"})
    with pytest.raises(Exception) as caught:
        result.get(timeout=60)
    assert type(caught.value).__name__ == "ConfigurationError"
    assert result.state == "FAILURE"
    run = BackupRun.objects.get(task_id=result.id)
    assert run.status == "failed"
    assert run.attempts == 1
    assert "ConfigurationError" in run.error
    failed = [s for s in workers.signals() if s["signal"] == "stage_failed"]
    assert len(failed) == 1
    assert failed[0]["exception"] == "ConfigurationError"
    assert failed[0]["run_id"] == result.id
    assert failed[0]["database"] == "nope"


def test_a_permanent_rclone_error_fails_at_once(
    task_app: Any, workers: Any, drc_config: Any
) -> None:
    populate("pg")
    drc_config(REMOTE="nosuchremote:backups")
    workers.start()
    result = task_app.send_task(BACKUP, kwargs={"database": "pg"})
    with pytest.raises(Exception) as caught:
        result.get(timeout=60)
    assert type(caught.value).__name__ == "RcloneError"
    run = BackupRun.objects.get(task_id=result.id)
    assert (run.status, run.attempts) == ("failed", 1)
    # The stage that failed sent it (inside the operation), and only once.
    failed = [s for s in workers.signals() if s["signal"] == "stage_failed"]
    assert [(s["stage"], s["exception"]) for s in failed] == [("dump", "RcloneError")]


def test_a_transient_rclone_error_retries_with_backoff_then_fails(
    task_app: Any, workers: Any, drc_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.helpers.network import free_port

    populate("pg")
    # An S3 endpoint nobody listens on: "connection refused" is transient.
    for key, value in {
        "TYPE": "s3",
        "PROVIDER": "Other",
        "ENV_AUTH": "false",
        "ACCESS_KEY_ID": "x",
        "SECRET_ACCESS_KEY": "y",
        "ENDPOINT": f"http://127.0.0.1:{free_port()}",
    }.items():
        monkeypatch.setenv(f"RCLONE_CONFIG_DEAD_{key}", value)
    drc_config(
        REMOTE="dead:bucket/backups",
        RCLONE_FLAGS=["--retries", "1", "--low-level-retries", "1", "--contimeout", "1s"],
    )
    workers.start(annotations={BACKUP: {"retry_backoff": 1, "retry_backoff_max": 2}})
    result = task_app.send_task(BACKUP, kwargs={"database": "pg"})
    with pytest.raises(Exception) as caught:
        result.get(timeout=120)
    assert type(caught.value).__name__ == "RcloneError"
    assert "connection refused" in str(caught.value)
    run = BackupRun.objects.get(task_id=result.id)
    # TASK_MAX_RETRIES=2 (lock_config): the first run and two retries.
    assert (run.status, run.attempts) == ("failed", 3)
    log = "\n".join(w.log() for w in workers.started)
    assert log.count("transient error, retry in") == 2


def test_media_backup_restore_and_cleanup_tasks(
    task_app: Any, workers: Any, remote_dir: Path, media_root: Path
) -> None:
    (media_root / "photos").mkdir()
    (media_root / "photos" / "cat.jpg").write_bytes(b"\xff\xd8 a cat")
    populate("pg")
    workers.start(concurrency=2)
    backed_up = task_app.send_task("django_rclone_celery.media_backup").get(timeout=120)
    assert (backed_up["status"], backed_up["operation"]) == ("succeeded", "media_backup")
    assert (remote_dir / "media" / "photos" / "cat.jpg").read_bytes() == b"\xff\xd8 a cat"
    (media_root / "photos" / "cat.jpg").unlink()
    restored = task_app.send_task("django_rclone_celery.media_restore").get(timeout=120)
    assert restored["status"] == "succeeded"
    assert (media_root / "photos" / "cat.jpg").read_bytes() == b"\xff\xd8 a cat"

    for _ in range(3):
        task_app.send_task(BACKUP, kwargs={"database": "pg"}).get(timeout=120)
    newest = list_backups("pg")[0]
    cleaned = task_app.send_task(
        "django_rclone_celery.db_cleanup", kwargs={"database": "pg", "keep": 1}
    ).get(timeout=120)
    assert (cleaned["status"], cleaned["kept"], len(cleaned["deleted"])) == (
        "succeeded",
        [newest.name],
        2,
    )
    assert [b.name for b in list_backups("pg")] == [newest.name]
    ops = sorted(BackupRun.objects.values_list("operation", "database", "status"))
    assert ops == sorted(
        [("media_backup", "", "succeeded"), ("media_restore", "", "succeeded")]
        + [("db_backup", "pg", "succeeded")] * 3
        + [("db_cleanup", "pg", "succeeded")]
    )


def test_task_options_follow_the_settings(drc_config: Any) -> None:
    from django_rclone_celery import tasks

    drc_config(TASK_SOFT_TIME_LIMIT=50, TASK_TIME_LIMIT=100)
    for task in (tasks.db_backup, tasks.db_cleanup, tasks.media_backup):
        assert (task.acks_late, task.reject_on_worker_lost) == (True, True)
        assert (task.soft_time_limit, task.time_limit) == (50, 100)
    for task in (tasks.db_restore, tasks.media_restore):
        assert (task.acks_late, task.reject_on_worker_lost) == (False, False)
        assert task.time_limit == 100
    # app.control.time_limit() sets them at run time; that still wins.
    tasks.db_backup.time_limit = 7
    try:
        assert tasks.db_backup.time_limit == 7
    finally:
        tasks.db_backup.time_limit = None
    assert tasks.db_backup.time_limit == 100
    # The sender does not stamp its own limits on messages: the worker's apply.
    assert "time_limit" not in tasks.db_backup._get_exec_options()
    assert "soft_time_limit" not in tasks.db_restore._get_exec_options()


def test_visibility_timeout_check(task_app: Any, drc_config: Any) -> None:
    from django_rclone_celery.celery_checks import check_visibility_timeout

    ids = lambda: [m.id for m in check_visibility_timeout()]  # noqa: E731
    task_app.conf.broker_transport_options = {}  # kombu's default: one hour
    assert ids() == ["django_rclone_celery.W030"]
    # The settings the docs recommend (docs/tasks.md, "Worker configuration checklist").
    task_app.conf.broker_transport_options = {"visibility_timeout": 8 * 3600}
    assert ids() == []
    drc_config(LOCK_RETRY_DELAY=4 * 3600)
    assert ids() == ["django_rclone_celery.W031"]
    drc_config(LOCK_RETRY_DELAY=10, TASK_SOFT_TIME_LIMIT=100, TASK_TIME_LIMIT=200)
    task_app.conf.broker_transport_options = {"visibility_timeout": 700}
    assert ids() == []
    task_app.conf.broker_url = "amqp://guest@127.0.0.1//"
    task_app.conf.broker_transport_options = {"visibility_timeout": 1}
    assert ids() == []  # only Redis redelivers by timeout
