"""Settings errors that matter only to backups do not stop unrelated commands.

An environment without ``DJANGO_RCLONE["REMOTE"]`` (dev, CI) takes no
backups: its backup settings' problems are warnings there, so ``migrate`` and
``check`` run; the backup commands still refuse in one line. Where ``REMOTE``
is set, the same problems are errors. Each case is a real ``manage.py``
subprocess on its own SQLite file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TYPO = {"nightly": {"task": "db_backup", "crontab": "0 3 * *"}}  # four crontab fields


def manage(tmp_path: Path, django_rclone: object, *args: str) -> subprocess.CompletedProcess[str]:
    lines = ["from tests.settings import *  # noqa: F403"]
    lines.append(
        "del DJANGO_RCLONE" if django_rclone is None else f"DJANGO_RCLONE = {django_rclone!r}"
    )
    (tmp_path / "env_settings.py").write_text("\n".join(lines) + "\n")
    env = {
        **os.environ,
        "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}",
        "DJANGO_SETTINGS_MODULE": "env_settings",
        "DRC_TEST_DIR": str(tmp_path),
    }
    return subprocess.run(
        [sys.executable, "-m", "django", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.mark.parametrize(
    "django_rclone",
    [None, {}, {"REMOTE": ""}, {"SCHEDULES": TYPO}],
    ids=["no-setting", "empty", "empty-remote", "schedules-typo"],
)
def test_without_remote_other_commands_run_and_backups_refuse(
    tmp_path: Path, django_rclone: object
) -> None:
    if django_rclone is None or "SCHEDULES" in django_rclone:  # type: ignore[operator]
        migrate = manage(tmp_path, django_rclone, "migrate", "--database", "default", "-v", "0")
        assert migrate.returncode == 0, migrate.stderr
        assert "django_rclone_celery.E002" in migrate.stderr  # shown, as a warning
        assert "this environment takes no backups" in migrate.stderr
    check = manage(tmp_path, django_rclone, "check")
    assert check.returncode == 0, check.stderr
    backup = manage(tmp_path, django_rclone, "dbbackup")
    assert backup.returncode == 1
    assert "Traceback" not in backup.stderr
    assert "CommandError: DJANGO_RCLONE['REMOTE'] is required." in backup.stderr


def test_with_remote_a_schedules_typo_is_an_error(tmp_path: Path) -> None:
    check = manage(tmp_path, {"REMOTE": str(tmp_path / "remote"), "SCHEDULES": TYPO}, "check")
    assert check.returncode == 1
    assert "ERRORS:" in check.stderr
    assert "django_rclone_celery.E02" in check.stderr
    assert "Traceback" not in check.stderr
