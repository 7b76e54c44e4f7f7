"""What the reference page says about direct calls: a direct call of an operation
runs it alone (no ledger row), a command goes through the run guard."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import call_command

import django_rclone_celery
from django_rclone_celery.models import BackupRun


@pytest.mark.django_db(transaction=True, databases=["default"])
def test_a_direct_call_runs_the_operation_alone_and_a_command_is_guarded(remote_dir: Path) -> None:
    result = django_rclone_celery.backup_database("default")
    assert any(remote_dir.rglob(result.name))
    assert not BackupRun.objects.exists()
    call_command("dbbackup", "--database", "default", verbosity=0)
    row = BackupRun.objects.get()
    assert row.operation == "db_backup"
    assert row.slot.startswith("manual:")
