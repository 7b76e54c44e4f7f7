"""The admin: run history, runs started from the browser, restore behind its permission.

Django's test client against a real Redis broker and a real (embedded) worker.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from django_rclone_celery.models import BackupRun
from django_rclone_celery.operations import backup_database
from tests.celery_redis import (  # noqa: F401
    celery_config,
    celery_includes,
    no_project_app,
)
from tests.helpers.admin import START, queued, staff

pytestmark = pytest.mark.django_db(transaction=True, databases=["default"])

CHANGELIST = "admin:django_rclone_celery_backuprun_changelist"
RESTORE = "admin:django_rclone_celery_backuprun_restore"


@pytest.fixture
def operator() -> Client:
    return staff("operator", "view_backuprun", "run_backup", "run_restore")


@pytest.fixture
def backup_only() -> Client:
    return staff("backup_only", "view_backuprun", "run_backup")


def finished_run(celery_app: Any, task_id: str) -> BackupRun:
    celery_app.AsyncResult(task_id).get(timeout=60)
    return BackupRun.objects.get(task_id=task_id)


def succeeded_backup_row() -> BackupRun:
    """A real backup of "default" on the remote, recorded the way a task records it."""
    result = backup_database("default")
    now = timezone.now()
    return BackupRun.objects.create(
        operation="db_backup",
        database="default",
        slot="task:seed",
        task_id="seed",
        status="succeeded",
        stage="publish",
        started=now - timedelta(seconds=65),
        finished=now,
        path=result.path,
        size=2048,
        result=result.as_dict(),
    )


# --- history --------------------------------------------------------------------------------


def test_changelist_shows_status_stage_size_and_duration(
    operator: Client, remote_dir: Path
) -> None:
    run = succeeded_backup_row()
    BackupRun.objects.create(
        operation="db_backup",
        database="default",
        slot="task:running",
        task_id="running",
        status="running",
        stage="dump",
        bytes_done=1024 * 1024,
        bytes_total=2 * 1024 * 1024,
    )
    page = operator.get(reverse(CHANGELIST)).content.decode()
    for text in ("succeeded", "publish", "2.0 KB", "1:05", run.task_id, "Start a run"):
        assert text in page
    assert "1.0 MB / 2.0 MB" in page
    assert "Add run" not in page  # read-only history
    assert operator.get(reverse(CHANGELIST) + "?q=nothing-like-this").status_code == 200


# --- starting runs --------------------------------------------------------------------------


def test_start_page_lists_databases_and_backs_up_now(
    operator: Client, celery_app: Any, celery_worker: Any, remote_dir: Path
) -> None:
    page = operator.get(reverse(START)).content.decode()
    for alias in ("default", "pg", "gis", "maria"):
        assert f'<option value="{alias}"' in page
    for button in ("Back up now", "Clean up", "Media backup", "Restore…"):
        assert button in page

    response = operator.post(
        reverse(START), {"database": "default", "keep": "", "run": "db_backup"}, follow=True
    )
    assert response.redirect_chain[-1][0] == reverse(CHANGELIST)
    [(what, task_id)] = queued(response)
    assert what == "database backup of &#x27;default&#x27;"
    run = finished_run(celery_app, task_id)
    assert (run.operation, run.database, run.status) == ("db_backup", "default", "succeeded")
    assert (remote_dir / "db" / run.result["name"]).is_file()
    # The run is in the history, found by its task id as the message's link does.
    assert task_id in operator.get(reverse(CHANGELIST), {"q": task_id}).content.decode()


def test_a_run_no_worker_has_taken_is_in_the_history_as_queued(
    operator: Client, celery_app: Any, depends_on_current_app: Any, remote_dir: Path
) -> None:
    """No worker consumes the queue: the run is listed as queued at once, not missing."""
    # depends_on_current_app: with no worker to make it current, the admin would queue
    # on whichever app an earlier test on this xdist worker left current.
    response = operator.post(
        reverse(START), {"database": "default", "keep": "", "run": "db_backup"}, follow=True
    )
    assert queued(response), [str(m) for m in response.context["messages"]]
    [(_, task_id)] = queued(response)
    run = BackupRun.objects.get(task_id=task_id)
    assert (run.operation, run.database, run.status) == ("db_backup", "default", "queued")
    assert run.slot == f"task:{task_id}"  # the slot the worker computes: it takes this row
    page = operator.get(reverse(CHANGELIST)).content.decode()
    assert task_id in page
    assert "queued" in page


def test_actions_repeat_runs_for_the_selected_databases(
    operator: Client, celery_app: Any, celery_worker: Any, remote_dir: Path, media_root: Path
) -> None:
    seed = succeeded_backup_row()
    (media_root / "logo.png").write_bytes(b"png")

    def act(action: str) -> list[tuple[str, str]]:
        response = operator.post(
            reverse(CHANGELIST), {"action": action, "_selected_action": [seed.pk]}, follow=True
        )
        return queued(response)

    [(what, backup_id)] = act("backup_now")
    assert what == "database backup of &#x27;default&#x27;"
    assert finished_run(celery_app, backup_id).status == "succeeded"

    [(what, media_id)] = act("media_backup")
    assert what == "media backup"
    assert finished_run(celery_app, media_id).status == "succeeded"
    assert (remote_dir / "media" / "logo.png").read_bytes() == b"png"

    [(what, cleanup_id)] = act("clean_up")
    assert what == "cleanup of old backups of &#x27;default&#x27;"
    cleanup = finished_run(celery_app, cleanup_id)
    assert (cleanup.operation, cleanup.status) == ("db_cleanup", "succeeded")


def test_clean_up_from_the_start_page_keeps_what_was_asked(
    operator: Client, celery_app: Any, celery_worker: Any, remote_dir: Path
) -> None:
    for _ in range(3):
        backup_database("default")
    response = operator.post(
        reverse(START), {"database": "default", "keep": "1", "run": "db_cleanup"}, follow=True
    )
    [(_, task_id)] = queued(response)
    run = finished_run(celery_app, task_id)
    assert run.status == "succeeded"
    assert len(run.result["kept"]) == 1
    assert len(run.result["deleted"]) == 2


def test_verify_latest_from_the_start_page_and_a_selected_backup_as_an_action(
    operator: Client, celery_app: Any, celery_worker: Any, remote_dir: Path
) -> None:
    seed = succeeded_backup_row()
    response = operator.post(
        reverse(START), {"database": "default", "keep": "", "run": "db_verify"}, follow=True
    )
    [(what, task_id)] = queued(response)
    assert what == "backup verification of &#x27;default&#x27;"
    run = finished_run(celery_app, task_id)
    assert (run.operation, run.status) == ("db_verify", "succeeded")
    assert run.result["name"] == seed.result["name"]

    # A newer backup exists, but the action checks the selected one: damage it.
    backup_database("default")
    damaged = remote_dir / "db" / seed.result["name"]
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    response = operator.post(
        reverse(CHANGELIST),
        {"action": "verify_backups", "_selected_action": [seed.pk]},
        follow=True,
    )
    [(what, task_id)] = queued(response)
    with pytest.raises(Exception, match="sha256"):
        celery_app.AsyncResult(task_id).get(timeout=60)
    failed = BackupRun.objects.get(task_id=task_id)
    assert (failed.operation, failed.status) == ("db_verify", "failed")


# --- restore --------------------------------------------------------------------------------


def test_restore_needs_its_own_permission(backup_only: Client, remote_dir: Path) -> None:
    seed = succeeded_backup_row()
    url = reverse(RESTORE) + "?database=default"
    assert backup_only.get(url).status_code == 403
    assert backup_only.post(url, {"database": "default", "confirm": "default"}).status_code == 403
    assert "Restore…" not in backup_only.get(reverse(START)).content.decode()
    start = backup_only.post(reverse(START), {"database": "default", "run": "db_restore"})
    assert start.status_code == 403
    page = backup_only.get(reverse(CHANGELIST)).content.decode()
    assert "restore_backup" not in page
    assert "backup_now" in page
    # Posting the hidden action anyway does nothing.
    response = backup_only.post(
        reverse(CHANGELIST), {"action": "restore_backup", "_selected_action": [seed.pk]}
    )
    assert response.status_code in (200, 302)
    assert not response.headers.get("Location", "").startswith(reverse(RESTORE))


def test_staff_without_run_permissions_get_403_on_the_start_page(remote_dir: Path) -> None:
    viewer = staff("viewer", "view_backuprun")
    assert viewer.get(reverse(START)).status_code == 403
    page = viewer.get(reverse(CHANGELIST)).content.decode()
    assert "Start a run" not in page
    assert "backup_now" not in page


def test_restore_confirmation_names_the_database_then_queues(
    operator: Client, celery_app: Any, depends_on_current_app: Any, remote_dir: Path
) -> None:
    seed = succeeded_backup_row()
    name = seed.result["name"]
    response = operator.post(
        reverse(CHANGELIST), {"action": "restore_backup", "_selected_action": [seed.pk]}
    )
    assert response.status_code == 302
    page_url = response.headers["Location"]
    page = operator.get(page_url)
    text = page.content.decode()
    assert 'This overwrites database <strong id="restore-database">default</strong>' in text
    assert "SQLite database " in text
    assert "test-default.sqlite3" in text
    assert f'<strong id="restore-backup">{name}</strong>' in text

    connection = celery_app.connection_for_read()
    channel = connection.default_channel
    wrong = operator.post(page_url, {"database": "default", "input_path": name, "confirm": "pg"})
    assert wrong.status_code == 200
    assert "does not match" in wrong.content.decode()
    assert channel.basic_get("celery") is None  # nothing queued

    done = operator.post(
        page_url, {"database": "default", "input_path": name, "confirm": "default"}, follow=True
    )
    [(what, task_id)] = queued(done)
    assert what == "database restore of &#x27;default&#x27;"
    message = channel.basic_get("celery")
    assert message.headers["id"] == task_id
    assert message.headers["task"] == "django_rclone_celery.db_restore"
    assert message.decode()[1] == {"database": "default", "input_path": name}
    connection.close()


def test_restore_latest_from_the_start_page(operator: Client, remote_dir: Path) -> None:
    newest = backup_database("default")
    response = operator.post(reverse(START), {"database": "default", "run": "db_restore"})
    assert response.status_code == 302
    page = operator.get(response.headers["Location"]).content.decode()
    assert f'<strong id="restore-backup">{newest.name}</strong>' in page


def test_restore_without_backups_explains(operator: Client, remote_dir: Path) -> None:
    response = operator.get(reverse(RESTORE) + "?database=default", follow=True)
    messages = [str(m) for m in response.context["messages"]]
    assert any("Cannot restore 'default'" in m and "no backups" in m for m in messages)


def test_admin_says_when_celery_is_not_configured(
    operator: Client,
    no_project_app: None,  # noqa: F811
    remote_dir: Path,
) -> None:
    response = operator.post(
        reverse(START), {"database": "default", "run": "db_backup"}, follow=True
    )
    messages = [str(m) for m in response.context["messages"]]
    refused = [m for m in messages if "Could not queue" in m and "Celery app is not loaded" in m]
    assert refused, messages


# --- pgclone copy ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True, databases=["default", "pg"])
def test_copy_now_makes_a_local_copy_of_a_postgresql_database(
    operator: Client, celery_app: Any, celery_worker: Any, remote_dir: Path
) -> None:
    from django.conf import settings
    from django.db import connections

    assert "Copy now" in operator.get(reverse(START)).content.decode()
    name = f"drc_admin_copy{settings.DB_SUFFIX}"
    try:
        response = operator.post(
            reverse(START),
            {"database": "pg", "keep": "", "copy_as": name, "run": "pgclone_copy"},
            follow=True,
        )
        [(what, task_id)] = queued(response)
        assert what == "pgclone copy of &#x27;pg&#x27;"
        run = finished_run(celery_app, task_id)
        assert (run.operation, run.database, run.status) == ("pgclone_copy", "pg", "succeeded")
        connections["pg"].close()  # the copy ended every session on the source
        with connections["pg"].cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            assert cursor.fetchone() == (1,)
    finally:
        connections["pg"].close()
        with connections["pg"].cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')

    # Not PostgreSQL: refused with an explanation, nothing queued.
    response = operator.post(
        reverse(START), {"database": "default", "keep": "", "run": "pgclone_copy"}, follow=True
    )
    assert queued(response) == []
    assert any("needs PostgreSQL" in str(m) for m in response.context["messages"])
