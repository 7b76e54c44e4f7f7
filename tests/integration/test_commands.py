"""The management commands: django-rclone's options, exit status and output."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from django_rclone_celery.operations import backup_database, list_backups
from tests.helpers.databases import damage, populate, snapshot, staging_leftovers
from tests.helpers.prompts import Prompts
from tests.helpers.remotes import remote_files

REPO = Path(__file__).resolve().parents[2]


def run_manage(*args: str) -> subprocess.CompletedProcess[str]:
    """Run a command in a fresh interpreter, as a user would (exit status included)."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    return subprocess.run(
        [sys.executable, "-m", "django", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def call(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def copy_backup(db: Path, name: str, stamp: str) -> str:
    """Copy a real backup and its manifest under another timestamp (an older backup)."""
    alias, rest = name.split("-", 1)
    new = f"{alias}-{stamp}.{rest.split('.', 1)[1]}"
    shutil.copy(db / name, db / new)
    shutil.copy(db / f"{name}.manifest.json", db / f"{new}.manifest.json")
    return new


@pytest.mark.django_db(transaction=True, databases=["default"])
def test_dbbackup_then_dbrestore_noinput(remote_dir: Path) -> None:
    populate("default")
    before = snapshot("default")
    text = call("dbbackup")
    [backup] = list_backups("default")
    assert f"Backed up default to {backup.path}" in text
    damage("default")

    text = call("dbrestore", "-d", "default", "--noinput")

    assert f"Restored default from {backup.name}" in text
    assert snapshot("default") == before


@pytest.mark.django_db(transaction=True, databases=["default"])
def test_dbbackup_json_and_compression_option(remote_dir: Path) -> None:
    populate("default")
    result = json.loads(call("dbbackup", "--json", "--compression", "none"))
    assert result["status"] == "succeeded"
    assert result["compression"] == "none"
    assert result["name"].endswith(".sqlite3")
    stored = remote_dir / "db" / result["name"]
    assert stored.stat().st_size == result["size"]
    assert stored.read_bytes().startswith(b"PRAGMA foreign_keys=OFF;")


@pytest.mark.django_db(transaction=True, databases=["default"])
def test_dbbackup_clean_keeps_exactly_n_with_their_manifests(
    remote_dir: Path, drc_config: Any
) -> None:
    drc_config(DB_CLEANUP_KEEP=2)
    populate("default")
    first = backup_database("default").name
    db = remote_dir / "db"
    older = [copy_backup(db, first, f"2024-01-0{day}-120000") for day in (1, 2, 3, 4)]
    (db / first).unlink()  # only a source for the copies: "now" is taken by the next backup
    (db / f"{first}.manifest.json").unlink()
    stranger = db / "maria-2020-01-01-000000.sql"  # another alias: never cleaned with default
    stranger.write_bytes(b"-- not ours")

    output = call("dbbackup", "--clean")

    newest = list_backups("default")[0].name
    assert "removed 3 old backups" in output
    assert [b.name for b in list_backups("default")] == [newest, older[3]]
    assert remote_files(remote_dir) == sorted(
        [
            f"db/{newest}",
            f"db/{newest}.manifest.json",
            f"db/{older[3]}",
            f"db/{older[3]}.manifest.json",
            "db/maria-2020-01-01-000000.sql",
        ]
    )


@pytest.mark.django_db(transaction=True, databases=["default"])
def test_dbrestore_refuses_path_escape_and_changes_nothing(remote_dir: Path) -> None:
    populate("default")
    call("dbbackup")
    damage("default")
    live = snapshot("default")
    files = remote_files(remote_dir)

    with pytest.raises(CommandError, match=r"'\.\./x'.*must not contain '\.\.'"):
        call("dbrestore", "-d", "default", "-i", "../x", "--noinput")

    assert snapshot("default") == live
    assert remote_files(remote_dir) == files
    assert staging_leftovers("default") == []


@pytest.mark.django_db(transaction=True, databases=["default"])
def test_unknown_alias_fails_and_writes_nothing(remote_dir: Path) -> None:
    with pytest.raises(CommandError, match="unknown database alias 'nope'"):
        call("dbbackup", "-d", "nope")
    with pytest.raises(CommandError, match="unknown database alias 'nope'"):
        call("dbrestore", "-d", "nope", "--noinput")
    assert remote_files(remote_dir) == []


def test_bad_input_exits_non_zero_from_the_shell() -> None:
    """A real ``django-admin`` process: exit status 1 and a one-line reason on stderr."""
    proc = run_manage("dbbackup", "-d", "nope")
    assert proc.returncode == 1
    assert "CommandError: unknown database alias 'nope'" in proc.stderr
    assert "Traceback" not in proc.stderr

    proc = run_manage("dbrestore", "-d", "default", "-i", "../x", "--noinput")
    assert proc.returncode == 1
    assert "CommandError: backup path '../x' must not contain" in proc.stderr


@pytest.mark.django_db(transaction=True, databases=["default"])
def test_dbrestore_prompt_defaults_to_no(remote_dir: Path, prompts: Prompts) -> None:
    populate("default")
    before = snapshot("default")
    call("dbbackup")
    damage("default")
    live = snapshot("default")

    prompts.reply("")
    assert "Restore cancelled." in call("dbrestore", "-d", "default")
    assert snapshot("default") == live
    assert "[y/N]" in prompts.questions[0]

    prompts.reply("y")
    assert "Restored default" in call("dbrestore", "-d", "default")
    assert snapshot("default") == before


def test_dbrestore_needs_an_alias_when_several_are_configured() -> None:
    with pytest.raises(CommandError, match="several databases are configured"):
        call("dbrestore", "--noinput")


@pytest.mark.django_db(transaction=True, databases=["default"])
def test_dbrestore_missing_backup_is_a_clear_error(remote_dir: Path) -> None:
    with pytest.raises(CommandError, match="no backups of database 'default'"):
        call("dbrestore", "-d", "default", "--noinput")


@pytest.mark.django_db(transaction=True, databases=["default", "pg"])
def test_listbackups_text_and_json(remote_dir: Path) -> None:
    populate("default")
    populate("pg")
    first = backup_database("default").name
    db = remote_dir / "db"
    old = copy_backup(db, first, "2024-01-15-120000")
    pg = backup_database("pg").name
    (db / "default-2024-01-16-120000.sqlite3.zst.partial-abc").write_bytes(b"x")

    rows = json.loads(call("listbackups", "--json"))
    names = [r["name"] for r in rows]
    assert set(names) == {first, old, pg}
    assert names.index(old) == 2  # oldest last
    mine = next(r for r in rows if r["name"] == first)
    assert mine["database"] == "default"
    assert mine["has_manifest"] is True
    assert mine["size"] == (db / first).stat().st_size

    only_default = json.loads(call("listbackups", "--json", "-d", "default"))
    assert [r["name"] for r in only_default] == [first, old]

    text = call("listbackups", "-d", "default")
    lines = text.splitlines()
    assert lines[0].startswith("Name")
    assert "Created (UTC)" in lines[0]
    assert lines[2].startswith(first)
    assert lines[3].startswith(old)
    assert "2024-01-15 12:00:00" in lines[3]
    assert ".partial" not in text
    assert "manifest" not in text


def _example(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The example project's manage.py, as a user runs it, with its files under tmp_path."""
    outside = {
        k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE" and "DRC_" not in k
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO / "example_project",
        env={**outside, "BOOKSHOP_VAR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_remote_that_does_not_exist_is_one_line(tmp_path: Path) -> None:
    assert _example(tmp_path, "migrate", "-v0").returncode == 0
    done = _example(
        tmp_path, "dbbackup", "-v0", BACKUP_REMOTE="nosuchremote:bucket", RCLONE_CONFIG="/dev/null"
    )
    assert done.returncode == 1
    lines = done.stderr.splitlines()  # the example project logs each stage too
    assert lines[-1] == (
        "CommandError: rclone exited with status 1: Failed to create file system for "
        '"nosuchremote:bucket/db/": didn\'t find section in config file ("nosuchremote")'
    )
    # Nothing to clean up there either: no "could not remove" warning before the error.
    assert not [line for line in lines if "could not remove" in line]


def test_a_ledger_database_that_is_down_is_one_line(tmp_path: Path) -> None:
    done = _example(tmp_path, "dbbackup", DATABASE_URL="postgres://postgres@127.0.0.1:1/shop")
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert line.startswith("CommandError: cannot record the run in the ledger on 'default' (")
    assert "Is the server running on that host" in line
    assert line.endswith("has `manage.py migrate` been run?")


def test_the_example_project_migrates_into_a_new_folder_with_redis(tmp_path: Path) -> None:
    # With a Redis broker no broker folder is made, yet the database still lives there.
    var = tmp_path / "new" / "var"
    done = _example(var, "migrate", "-v0", REDIS_URL="redis://127.0.0.1:1/0")
    assert done.returncode == 0, done.stderr
    assert (var / "bookshop.sqlite3").is_file()
