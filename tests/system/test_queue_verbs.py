"""``--enqueue``/``--wait`` on ``cleanupbackups`` and every ``pgclone`` verb; ``pgclone ls`` names.

The runs go through the real Redis broker to a real ``celery worker``
subprocess (``tests/helpers/workers.py``); the command runs in the pytest process.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections

from django_rclone_celery import naming, pgclone
from django_rclone_celery.conf import get_settings
from django_rclone_celery.connectors import get_connector
from tests.helpers.databases import damage, populate, snapshot

TASK_ID = re.compile(r"Queued (\w+) as task ([0-9a-f]{32})")


def call(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_pgclone_ls_prints_bare_names_like_django_pgclone(tmp_path: Path, settings: Any) -> None:
    store = tmp_path / "store"
    for key in (
        "web1/app/none/2026-01-02-03-04-05-000001.dump",
        "web2/app/full/2026-01-02-03-04-05-000002.dump",
        "web2/reports/none/2026-01-02-03-04-05-000003.dump",
    ):
        (store / key).parent.mkdir(parents=True, exist_ok=True)
        (store / key).write_bytes(b"x")
    settings.PGCLONE_STORAGE_LOCATION = str(store)
    assert pgclone.ls(instances=True) == ["web1", "web2"]
    assert pgclone.ls(databases=True) == ["app", "reports"]
    assert pgclone.ls(configs=True) == ["full", "none"]
    assert call("pgclone", "ls", "--databases").split() == ["app", "reports"]
    assert call("pgclone", "ls", "--configs").split() == ["full", "none"]


@pytest.mark.django_db(transaction=True, databases=["default"])
def test_cleanupbackups_waits_for_a_worker(
    task_app: Any, workers: Any, remote_dir: Path, drc_config: Any
) -> None:
    drc_config(DB_CLEANUP_KEEP=1)
    db = remote_dir / "db"
    db.mkdir()
    now = datetime.now(timezone.utc)
    names = [
        naming.render(get_settings(), database="default", ext="sqlite3", when=now - timedelta(i))
        for i in range(3)
    ]
    for name in names:
        (db / name).write_bytes(b"backup")
    with pytest.raises(CommandError, match="--dry-run runs here only"):
        call("cleanupbackups", "--dry-run", "--enqueue")
    workers.start()
    out = call("cleanupbackups", "-d", "default", "--wait")
    assert TASK_ID.search(out)
    assert "succeeded" in out
    assert sorted(p.name for p in db.iterdir()) == [names[0]]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, databases=["default", "pg"])
def test_every_pgclone_verb_can_be_handed_to_a_worker(
    task_app: Any, workers: Any, remote_dir: Path, settings: Any
) -> None:
    settings.PGCLONE_DATABASE = "pg"
    populate("pg")
    original = snapshot("pg")
    snap = f":drc_pgq_{connections['pg'].settings_dict['NAME']}"[:60]
    workers.start()
    try:
        out = call("pgclone", "dump", "-d", "pg", "-i", "q", "--wait")
        key = out.split()[-1]  # the key, last, as a plain `pgclone dump` prints it
        assert key.startswith("q/pg/none/")
        assert TASK_ID.search(out).group(1) == "pgclone_dump"  # type: ignore[union-attr]
        assert pgclone.ls() == [key]

        damage("pg")
        connections["pg"].close()
        out = call("pgclone", "restore", "q/", "-d", "pg", "--pre-swap-hook", "--wait")
        assert out.split()[-1] == key
        assert snapshot("pg") == original

        connections["pg"].close()
        out = call("pgclone", "copy", snap, "-d", "pg", "--enqueue")
        match = TASK_ID.search(out)
        assert match
        assert match.group(1) == "pgclone_copy"
        copied = task_app.AsyncResult(match.group(2)).get(timeout=180)
        assert copied["dump_key"] == snap
        assert snap in pgclone.ls(local=True)
    finally:
        connections["pg"].close()
        connector = get_connector("pg")
        live = connections["pg"].settings_dict["NAME"]
        with connector.cursor("postgres") as cursor:
            cursor.execute(
                "SELECT datname FROM pg_database WHERE datname = %s OR datname LIKE %s",
                [snap[1:], live + "__%"],
            )
            for (name,) in cursor.fetchall():
                connector.drop(cursor, name)  # type: ignore[attr-defined]
