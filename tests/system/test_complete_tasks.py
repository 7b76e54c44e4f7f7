"""A backup that says "succeeded" restores in full (#20, #16 item 7).

Real SQLite, PostgreSQL and MariaDB, the real dump tools and rclone on a
local-directory remote. A dump that did not end (a writer's lock, a tool that
prints an error and exits 0, a cut stream) is never published, and a restore
refuses it, with or without a manifest, before the live database is touched.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from django_rclone_celery.models import BackupRun
from tests.helpers.databases import (
    populate,
)
from tests.helpers.remotes import remote_files
from tests.helpers.workers import wait_for

BACKUP = "django_rclone_celery.db_backup"


# A tool that prints an error and exits 0 ------------------------------------------
WRAPPERS = {
    # The message sqlite3 prints for a lock or a bad page, then exit 0.
    "sqlite3": (
        "printf 'PRAGMA foreign_keys=OFF;\\nBEGIN TRANSACTION;\\n"
        "/**** ERROR: (11) database disk image is malformed *****/\\n"
        "ROLLBACK; -- due to errors\\n'\nexit 0\n"
    ),
    # Half a dump, an error on stderr, exit 0.
    "mysqldump": '"$REAL" "$@" | head -c 3000\necho "mysqldump: Got error 2013" >&2\nexit 0\n',
    "pg_dump": '"$REAL" "$@" | head -c 6000\necho "pg_dump: error: connection lost" >&2\nexit 0\n',
}


def install_wrapper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tool: str) -> None:
    real = shutil.which(tool)
    assert real
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / tool
    body = WRAPPERS[tool]
    script.write_text(
        f'#!/bin/sh\nREAL="{real}"\ncase "$1" in --version) exec "$REAL" "$@";; esac\n{body}'
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")


@pytest.mark.django_db(transaction=True, databases=["default"])
def test_the_task_fails_its_ledger_row_with_the_reason(
    task_app: Any,
    workers: Any,
    remote_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    populate("default", authors=2, books=1)
    install_wrapper(tmp_path, monkeypatch, "sqlite3")
    workers.start()
    result = task_app.send_task(BACKUP, kwargs={"database": "default"})
    with pytest.raises(Exception) as caught:
        result.get(timeout=120)
    assert type(caught.value).__name__ == "IncompleteBackup"
    run = wait_for(
        lambda: BackupRun.objects.filter(task_id=result.id, status="failed").first(),
        what="a failed ledger row",
        pool=workers,
    )
    assert "database disk image is malformed" in run.error
    failed = [s for s in workers.signals() if s["signal"] == "stage_failed"]
    assert [s["exception"] for s in failed] == ["IncompleteBackup"]
    assert remote_files(remote_dir) == []
