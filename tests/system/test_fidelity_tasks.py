"""Restore fidelity: every schema object a backup holds comes back, on real engines.

MariaDB: a view, a trigger, a stored function, a procedure and an event,
created with a definer the restoring user cannot set, survive
``dbbackup``/``dbrestore`` run as a user without SUPER. PostgreSQL: a view,
a materialized view, a function, a trigger and an extension.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers.databases import (
    populate,
)


# Time to restore in the run history and the admin ---------------------------
@pytest.mark.django_db(transaction=True, databases=["default", "pg"])
def test_drills_time_to_restore_is_in_the_history_and_the_admin(
    task_app: Any, workers: Any, remote_dir: Path
) -> None:
    from django.contrib.auth.models import Permission, User
    from django.test import Client
    from django.urls import reverse

    from django_rclone_celery.models import BackupRun

    populate("pg")
    workers.start()
    backup = task_app.send_task("django_rclone_celery.db_backup", kwargs={"database": "pg"})
    newest = backup.get(timeout=120)
    drill = task_app.send_task(
        "django_rclone_celery.db_verify", kwargs={"database": "pg", "restore": True}
    )
    value = drill.get(timeout=120)
    assert value["name"] == newest["name"]
    run = BackupRun.objects.get(task_id=drill.id)
    assert run.result is not None
    seconds = run.result["restore_seconds"]
    assert 0 < seconds <= run.result["duration"]
    assert "inventory" in run.result["compared"]

    user = User.objects.create_user("viewer", password="x", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename="view_backuprun"))
    client = Client()
    client.force_login(user)
    changelist = reverse("admin:django_rclone_celery_backuprun_changelist")
    page = client.get(changelist).content.decode()
    drills = page[page.index('id="restore-drills"') :]
    drills = drills[: drills.index("</table>")]
    row = drills[drills.index("<td>pg</td>") :]
    assert newest["path"] in row
    assert run.finished is not None
    assert run.finished.strftime("%Y-%m-%d %H:%M") in row
    assert f"{seconds:.1f} s" in row
    assert f"{seconds:.1f} s" in page[page.index('id="result_list"') :]  # the run's column

    # A newer backup is not proven until a drill restores it.
    task_app.send_task("django_rclone_celery.db_backup", kwargs={"database": "pg"}).get(timeout=120)
    page = client.get(changelist).content.decode()
    row = page[page.index("<td>pg</td>") :]
    assert "not yet" in row[: row.index("</tr>")]
