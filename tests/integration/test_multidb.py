"""Several databases in one run (#19.1): ``--all``, several ``-d``, ``BACKUP_DATABASES``.

Real servers: the four aliases of the test settings are three engines
(SQLite ``default``, PostgreSQL ``pg`` and PostGIS ``gis``, MariaDB ``maria``).
One alias is made to fail by pointing it at a MariaDB database that was
created and dropped again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import ManagementUtility, call_command
from django.core.management.base import CommandError
from django.db import connections

from django_rclone_celery import registry
from django_rclone_celery.conf import validate
from django_rclone_celery.models import BackupRun
from django_rclone_celery.operations import list_backups
from django_rclone_celery.schedules import schedule_problems
from tests.helpers.databases import populate
from tests.helpers.remotes import remote_files

ALL = ["default", "pg", "gis", "maria"]
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.mysql,
    pytest.mark.django_db(transaction=True, databases=ALL),
]


def call(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def exit_status(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run a command as ``manage.py`` does: exit status, stdout and stderr."""
    try:
        ManagementUtility(["manage.py", *argv]).execute()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def dropped_maria() -> Iterator[str]:
    """``maria`` pointed at a database that existed and was dropped; put back afterwards."""
    connection = connections["maria"]
    gone = f"{connection.settings_dict['NAME']}_gone"[:64]
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{gone}`")
        cursor.execute(f"DROP DATABASE `{gone}`")
    connection.close()
    live = connection.settings_dict["NAME"]
    connection.settings_dict["NAME"] = gone
    try:
        yield gone
    finally:
        connection.close()
        connection.settings_dict["NAME"] = live


def test_all_backs_up_four_aliases_and_a_dropped_database_fails_only_itself(
    remote_dir: Path, dropped_maria: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for alias in ("default", "pg", "gis"):
        populate(alias)
    code, out, err = exit_status(["dbbackup", "--all"], capsys)
    assert code == 1
    # Each failure on its own line, then one line naming every failed alias.
    lines = err.strip().splitlines()
    assert lines[-1] == "CommandError: Backup failed for 1 of 4 databases: maria"
    assert any(line.startswith("maria: ") and dropped_maria in line for line in lines), err
    assert "Traceback" not in err
    for alias in ("default", "pg", "gis"):
        [backup] = list_backups(alias)
        assert f"Backed up {alias} to {backup.path}" in out
    assert list_backups("maria") == []
    rows = {row.database: row for row in BackupRun.objects.filter(operation="db_backup")}
    assert sorted(rows) == sorted(ALL)
    assert rows["maria"].status == "failed"
    assert dropped_maria in rows["maria"].error
    assert all(rows[a].status == "succeeded" for a in ("default", "pg", "gis"))
    # Every alias its own run: its own row and manifest.
    assert len({row.task_id for row in rows.values()}) == 4
    manifests = [f for f in remote_files(remote_dir) if f.endswith(".manifest.json")]
    assert len(manifests) == 3


def test_several_d_and_json_give_one_document(remote_dir: Path) -> None:
    populate("pg")
    out, _ = call("dbbackup", "-d", "pg", "-d", "default", "--json")
    document = json.loads(out)
    assert list(document["databases"]) == ["pg", "default"]
    assert document["failed"] == []
    assert document["succeeded"] == ["pg", "default"]
    for alias in ("pg", "default"):
        entry = document["databases"][alias]
        assert entry["status"] == "succeeded"
        assert entry["database"] == alias
        [backup] = list_backups(alias)
        assert entry["path"] == backup.path
    assert list_backups("gis") == list_backups("maria") == []


def test_backup_databases_is_what_all_means(remote_dir: Path, drc_config: Any) -> None:
    drc_config(BACKUP_DATABASES=["pg", "maria"])
    populate("pg")
    populate("maria")
    out, _ = call("dbbackup", "--all")
    assert "Backed up pg" in out
    assert "Backed up maria" in out
    assert {b.database for b in list_backups()} == {"pg", "maria"}
    # verifybackup and cleanupbackups take the same options.
    out, _ = call("verifybackup", "--all", "--json")
    verified = json.loads(out)
    assert verified["succeeded"] == ["pg", "maria"]
    assert "sha256" in verified["databases"]["maria"]["checks"]
    call("dbbackup", "-d", "pg", "-d", "maria")
    drc_config(BACKUP_DATABASES=["pg", "maria"], DB_CLEANUP_KEEP=1)
    out, _ = call("cleanupbackups", "--all", "--dry-run")
    assert "Would delete 1 backups of pg" in out
    assert "Would delete 1 backups of maria" in out
    assert len(list_backups()) == 4
    out, _ = call("cleanupbackups", "-d", "pg", "-d", "maria")
    assert "Cleaned up the backups of pg: kept 1, deleted 1" in out
    assert len(list_backups()) == 2


def test_verifybackup_all_fails_for_an_alias_without_a_backup(remote_dir: Path) -> None:
    call("dbbackup", "-d", "pg")
    out = StringIO()
    err = StringIO()
    with pytest.raises(CommandError, match=r"^Verification failed for 1 of 2 databases: gis$"):
        call_command("verifybackup", "-d", "pg", "-d", "gis", stdout=out, stderr=err)
    assert out.getvalue().startswith("Verified pg-")
    assert err.getvalue().startswith("gis: ")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["dbbackup", "--all", "-d", "pg"], "give --all or -d/--database, not both"),
        (["dbbackup", "-d", "pg", "-d", "pg"], "database 'pg' is named more than once"),
        (["dbbackup", "-d", "pg", "-d", "nope"], "unknown database alias 'nope'"),
        (["verifybackup", "--all", "-i", "x.dump"], "--input-path names one backup"),
        (["cleanupbackups", "--all", "--media"], "--media cleans media points"),
        (["dbrestore", "--all", "--noinput"], "dbrestore replaces one database at a time"),
        (["dbrestore", "-d", "pg", "-d", "gis", "--noinput"], "one database at a time"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    remote_dir: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _out, err = exit_status(argv, capsys)
    assert code == 1
    assert err.count("\n") == 1, err
    assert message in err
    assert remote_files(remote_dir) == []
    assert not BackupRun.objects.exists()


def test_backup_databases_is_checked(settings: Any) -> None:
    def ids(value: Any) -> list[tuple[str, str]]:
        raw = {"REMOTE": "/tmp/x", "BACKUP_DATABASES": value}
        return [(p.id[-4:], p.msg) for p in validate(raw) if not p.warning]

    assert ids(None) == ids(["pg", "default"]) == []
    assert ids("pg")[0][0] == "E003"
    assert ids([])[0][0] == "E080"
    assert ids(["pg", ""])[0][0] == "E080"
    [(check, msg)] = ids(["pg", "nope"])
    assert check == "E081"
    assert "'nope'" in msg
    [(check, msg)] = ids(["pg", "gis", "pg"])
    assert check == "E082"
    assert "['pg']" in msg
    # The settings refuse every command, before any work.
    settings.DJANGO_RCLONE = {**settings.DJANGO_RCLONE, "BACKUP_DATABASES": ["nope"]}
    with pytest.raises(CommandError, match="E081"):
        call("dbbackup", "--all")


def test_the_task_and_schedules_accept_databases() -> None:
    assert registry.problems("db_backup", {"databases": ["pg", "maria"]}) == []
    assert registry.problems("portable_backup", {"databases": ["pg"]}) == []
    assert registry.problems("db_backup", {"databases": ["pg", "nope"]}) == [
        "unknown database alias 'nope' (configured: default, gis, maria, pg)"
    ]
    [both] = registry.problems("db_backup", {"database": "pg", "databases": ["pg"]})
    assert both == "give 'database' or 'databases', not both"
    [twice] = registry.problems("db_backup", {"databases": ["pg", "pg"]})
    assert "more than once" in twice
    [empty] = registry.problems("db_backup", {"databases": []})
    assert "not a non-empty list" in empty
    spec = {"task": "django_rclone_celery.db_backup", "every": 3600}
    good = {"all": {**spec, "kwargs": {"databases": ["default", "pg"]}}}
    bad = {"all": {**spec, "kwargs": {"databases": ["default", "nope"]}}}
    assert schedule_problems(good) == []
    [problem] = schedule_problems(bad)
    assert problem.id.endswith("E026")
    assert "'nope'" in problem.msg
