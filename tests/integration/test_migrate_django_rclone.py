"""docs/migrate-from-django-rclone.md, followed for real.

A project keeps its django-rclone settings as they are (docs/examples/
django_rclone_user.py, connector paths included), already has a backup that
django-rclone made, and runs our commands with django-rclone's options.
"""

from __future__ import annotations

import json
import runpy
import subprocess
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connections

from django_rclone_celery import signals
from tests.testapp.models import Author

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "django_rclone_user.py"


def user_settings(tmp_path: Path, *, native: bool) -> dict[str, Any]:
    namespace = runpy.run_path(str(EXAMPLE))
    settings = dict(namespace["DJANGO_RCLONE"])
    if not native:
        settings.pop("COMPRESSION")  # the guide's first step: the settings as they were
    settings["REMOTE"] = settings["REMOTE"].replace("/srv/backups", str(tmp_path))
    return settings


def run(*args: str, **options: Any) -> str:
    out = StringIO()
    call_command(*args, stdout=out, **options)
    return out.getvalue()


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.mark.django_db(transaction=True)
def test_django_rclone_settings_and_backups_work_unchanged(settings: Any, tmp_path: Path) -> None:
    settings.DJANGO_RCLONE = user_settings(tmp_path, native=False)
    settings.MEDIA_ROOT = str(tmp_path / "media")
    remote = tmp_path / "site"
    (remote / "database").mkdir(parents=True)

    # A backup django-rclone made: `sqlite3 NAME .dump` piped into rclone rcat.
    Author.objects.create(name="Before")
    db_file = connections["default"].settings_dict["NAME"]
    dump = subprocess.run(["sqlite3", db_file, ".dump"], capture_output=True, check=True).stdout
    legacy = "default--20240115-120000.sqlite3"
    (remote / "database" / legacy).write_bytes(dump)
    Author.objects.create(name="After")

    listed = run("listbackups", "-d", "default")
    assert legacy in listed

    run("dbrestore", "-d", "default", "-i", legacy, "--noinput")
    assert list(Author.objects.values_list("name", flat=True)) == ["Before"]

    # django-rclone's receivers take (sender, database, path, **kwargs).
    seen: list[tuple[str, str]] = []

    def on_backup(sender: Any, database: str, path: str, **kwargs: Any) -> None:
        seen.append((database, path))

    signals.post_db_backup.connect(on_backup)
    try:
        first = json.loads(run("dbbackup", "--database", "default", "--json"))
        run("dbbackup", "-d", "default", "--clean")
    finally:
        signals.post_db_backup.disconnect(on_backup)
    assert [db for db, _ in seen] == ["default", "default"]
    assert seen[0][1] == first["path"]
    assert first["name"].startswith("default--")
    assert first["name"].endswith(".sqlite3.zst")
    # DB_CLEANUP_KEEP = 2: the old django-rclone backup was the one removed.
    kept = [n for n in names(remote / "database") if not n.endswith(".manifest.json")]
    assert len(kept) == 2
    assert legacy not in kept

    media = Path(settings.MEDIA_ROOT)
    (media / "docs").mkdir(parents=True)
    (media / "docs" / "a.txt").write_text("alpha\n")
    run("mediabackup")
    assert names(remote / "uploads" / "docs") == ["a.txt"]
    (media / "docs" / "a.txt").unlink()
    (media / "docs" / "extra.txt").write_text("not on the remote\n")
    run("mediarestore", "--noinput")
    assert names(media / "docs") == ["a.txt"]  # a mirror: local extras are deleted


@pytest.mark.django_db(transaction=True)
def test_native_compression_writes_what_django_rclone_writes(settings: Any, tmp_path: Path) -> None:
    settings.DJANGO_RCLONE = user_settings(tmp_path, native=True)
    Author.objects.create(name="Plain")
    result = json.loads(run("dbbackup", "--json"))
    assert result["name"].endswith(".sqlite3")  # no .zst: a plain `sqlite3 .dump`
    written = Path(result["path"]).read_bytes()
    assert written.startswith(b"PRAGMA foreign_keys=OFF;")
    assert b"Plain" in written
