"""Several databases on real Celery workers (#19.1).

A schedule naming ``databases`` is sent as beat sends it and fans out into
one ``db_backup`` per alias; ``--all --enqueue --wait`` queues a group that
two workers share.
"""

from __future__ import annotations

import json
import re
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from django_rclone_celery.enqueue import enqueue, follow
from django_rclone_celery.models import BackupRun
from django_rclone_celery.operations import list_backups
from django_rclone_celery.schedules import load_specs
from tests.helpers.databases import populate
from tests.helpers.workers import Worker, wait_for

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True, databases=["default", "pg", "gis"]),
]
QUEUED = re.compile(r"Queued db_backup of (\w+) as task ([0-9a-f]{32})")


def test_a_schedule_with_databases_backs_up_each_alias_on_a_worker(
    task_app: Any, workers: Any, remote_dir: Path, drc_config: Any
) -> None:
    populate("pg")
    drc_config(
        SCHEDULES={
            "nightly-all": {
                "task": "django_rclone_celery.db_backup",
                "crontab": "30 2 * * *",
                "kwargs": {"databases": ["default", "pg"], "clean": True},
            }
        }
    )
    [spec] = load_specs()
    workers.start("w1", concurrency=2)

    def tick() -> dict[str, Any]:
        # What beat sends for a due schedule: its task, kwargs and headers.
        sent = task_app.send_task(
            spec.task,
            kwargs=dict(spec.kwargs),
            headers=spec.headers,
            expires=spec.expire_seconds,
        )
        result: dict[str, Any] = sent.get(timeout=120)
        return result

    first = tick()
    assert first["status"] == "dispatched"
    assert first["databases"] == ["default", "pg"]
    assert first["slot"].startswith("beat:django_rclone_celery: nightly-all:")
    children = {a: task_app.AsyncResult(t).get(timeout=180) for a, t in first["tasks"].items()}
    for alias, result in children.items():
        assert result["status"] == "succeeded", result
        assert result["database"] == alias
        [backup] = list_backups(alias)
        assert result["path"] == backup.path
    rows = BackupRun.objects.filter(operation="db_backup").order_by("database")
    assert [(r.database, r.status, r.slot) for r in rows] == [
        ("default", "succeeded", first["slot"]),
        ("pg", "succeeded", first["slot"]),
    ]
    # A second message for the same tick queues nothing new.
    again = tick()
    assert again["slot"] == first["slot"]
    assert again["tasks"] == {"default": None, "pg": None}
    assert BackupRun.objects.count() == 2
    assert len(list_backups()) == 2
    # Queued from code (enqueue, as the commands and the admin do): no row of its
    # own, only its alias's run.
    task_id = enqueue("db_backup", databases=["pg"], idempotency_key="before-deploy")
    dispatched = follow(task_id, lambda update: None)
    assert dispatched["slot"] == "key:before-deploy"
    child = task_app.AsyncResult(dispatched["tasks"]["pg"]).get(timeout=180)
    assert child["status"] == "succeeded"
    assert not BackupRun.objects.filter(task_id=task_id).exists()
    assert BackupRun.objects.get(slot="key:before-deploy").database == "pg"
    assert len(list_backups("pg")) == 2


def test_all_enqueue_wait_runs_on_two_workers_and_fails_if_one_fails(
    task_app: Any, workers: Any, remote_dir: Path, drc_config: Any, tmp_path: Path
) -> None:
    populate("pg")
    populate("gis")
    drc_config(BACKUP_DATABASES=["pg", "gis"])
    first, second = workers.start("w1"), workers.start("w2")
    out, err = StringIO(), StringIO()
    call_command("dbbackup", "--all", "--wait", "--json", stdout=out, stderr=err)
    queued = dict(QUEUED.findall(err.getvalue()))
    assert sorted(queued) == ["gis", "pg"]
    document = json.loads(out.getvalue())
    assert document["succeeded"] == ["pg", "gis"]
    for alias in ("pg", "gis"):
        assert document["databases"][alias]["task_id"] == queued[alias]
        [backup] = list_backups(alias)
        assert document["databases"][alias]["path"] == backup.path
    # One message each, and with one task per worker at a time, both workers took one.
    rows = BackupRun.objects.filter(operation="db_backup")
    assert {r.task_id for r in rows} == set(queued.values())
    hosts = {r.worker.split("@")[0] for r in rows}
    assert hosts == {first.name, second.name}, workers.logs()

    # --enqueue only queues; a failing alias fails --wait and is named.
    out = StringIO()
    call_command("dbbackup", "-d", "pg", "-d", "gis", "--enqueue", stdout=out)
    ids = dict(QUEUED.findall(out.getvalue()))
    for task_id in ids.values():
        assert task_app.AsyncResult(task_id).get(timeout=180)["status"] == "succeeded"
    wait_for(lambda: len(list_backups()) == 4, what="four backups")
    for worker in workers.started:
        worker.stop()
    # A worker whose gis database is gone: that alias fails, pg does not.
    env = workers.env()
    config = json.loads(env["DRC_WORKER_CONFIG"])
    config["databases"]["gis"] = "drc_no_such_database_multidb"
    broken = Worker("w3", {**env, "DRC_WORKER_CONFIG": json.dumps(config)}, tmp_path / "w3.log")
    workers.started.append(broken)
    broken.start()
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError, match=r"^Backup failed for 1 of 2 databases: gis$"):
        call_command("dbbackup", "--all", "--wait", stdout=out, stderr=err)
    assert "gis: task " in err.getvalue()
    assert "drc_no_such_database_multidb" in err.getvalue()
    assert "pg: succeeded" in out.getvalue()
    assert BackupRun.objects.get(operation="db_backup", status="failed").database == "gis"
