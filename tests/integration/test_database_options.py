"""``DATABASE_OPTIONS`` (#19): per-database dump/restore arguments, environment,
tool directory and dump connection, on the real PostgreSQL and MariaDB servers.

Roles are created on the real server with this run's suffix and dropped after.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError, SystemCheckError
from django.db import connections

from django_rclone_celery.checks import TAG
from django_rclone_celery.conf import validate
from django_rclone_celery.connectors import get_connector
from django_rclone_celery.operations import list_backups
from tests.helpers.databases import damage, db_params, populate, snapshot
from tests.helpers.remotes import remote_files

SUFFIX = os.environ.get("DRC_TEST_DB_SUFFIX", "")
SECRET = "hunter2-Zq9"  # a password that must never be shown
AUTHORS = ("testapp_author",)


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text
    assert "Traceback" not in text
    return text


def book_count(alias: str) -> int:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM testapp_book")
        return int(cursor.fetchone()[0])


# DUMP_ARGS that change the dump --------------------------------------------
def exclude_books(alias: str) -> list[str]:
    if alias == "pg":
        return ["--exclude-table-data=testapp_book"]
    name = connections[alias].settings_dict["NAME"]
    return [f"--ignore-table-data={name}.testapp_book"]


@pytest.mark.parametrize("alias", db_params("pg", "maria"))
def test_dump_args_leave_a_tables_rows_out(
    alias: str, remote_dir: Path, drc_config: Callable[..., Any]
) -> None:
    drc_config(DATABASE_OPTIONS={alias: {"DUMP_ARGS": exclude_books(alias)}})
    populate(alias)
    authors = snapshot(alias, AUTHORS)
    assert book_count(alias) > 0
    call_command("dbbackup", "-d", alias)
    damage(alias)
    call_command("dbrestore", "-d", alias, "--noinput")
    assert snapshot(alias, AUTHORS) == authors
    assert book_count(alias) == 0  # the table exists (the count works) and is empty
    [entry] = list_backups(alias)
    manifest = json.loads((remote_dir / "db" / f"{entry.name}.manifest.json").read_text())
    if alias == "pg":  # no counts from a snapshot the arguments may not match
        assert manifest["row_counts"] == {}
    else:  # MariaDB's come from the dump's own stream: no rows of the books in it
        assert manifest["row_counts"].get("testapp_book", 0) == 0
        assert manifest["row_counts"]["testapp_author"] == len(authors["testapp_author"])


# A read-only backup role -------------------------------------------------------
@pytest.fixture
def pg_roles(django_db_blocker: Any) -> Iterator[dict[str, str]]:
    """A role in pg_read_all_data and one without read rights, both with a password."""
    roles = {"reader": f"drc_reader{SUFFIX}", "nobody": f"drc_nobody{SUFFIX}"}
    with django_db_blocker.unblock(), connections["pg"].cursor() as cursor:
        for role in roles.values():
            cursor.execute(f"DROP ROLE IF EXISTS {role}")
            cursor.execute(f"CREATE ROLE {role} LOGIN PASSWORD %s", [SECRET])
        cursor.execute(f"GRANT pg_read_all_data TO {roles['reader']}")
    yield roles
    with django_db_blocker.unblock(), connections["pg"].cursor() as cursor:
        for role in roles.values():
            cursor.execute(f"DROP OWNED BY {role}")
            cursor.execute(f"DROP ROLE IF EXISTS {role}")


@pytest.mark.django_db(transaction=True, databases=["default", "pg"])
def test_a_read_only_role_dumps_and_the_restore_uses_the_aliass_own(
    pg_roles: dict[str, str], remote_dir: Path, drc_config: Callable[..., Any]
) -> None:
    options = {"USER": pg_roles["reader"], "PASSWORD": SECRET}
    drc_config(DATABASE_OPTIONS={"pg": options})
    populate("pg")
    before = snapshot("pg")
    connector = get_connector("pg")
    dump = connector.dump_command(compress=False)
    assert dump.argv[dump.argv.index("--username") + 1] == pg_roles["reader"]
    assert dump.secret_env == {"PGPASSWORD": SECRET}
    assert SECRET not in " ".join(dump.argv)
    restore = connector.restore_command("x")
    assert restore.argv[restore.argv.index("--username") + 1] == connector.user
    call_command("dbbackup", "-d", "pg")
    damage("pg")
    call_command("dbrestore", "-d", "pg", "--noinput")
    assert snapshot("pg") == before


@pytest.mark.django_db(transaction=True, databases=["default", "pg"])
def test_a_role_without_read_rights_fails_in_one_line(
    pg_roles: dict[str, str], remote_dir: Path, drc_config: Callable[..., Any]
) -> None:
    drc_config(DATABASE_OPTIONS={"pg": {"USER": pg_roles["nobody"], "PASSWORD": SECRET}})
    populate("pg")
    with pytest.raises(CommandError) as caught:
        call_command("dbbackup", "-d", "pg")
    message = one_line(caught.value)
    assert message.startswith(
        f"database 'pg': the dump role {pg_roles['nobody']!r} cannot read public."
    )
    assert " more: " in message
    assert f"GRANT pg_read_all_data TO {pg_roles['nobody']};" in message
    assert SECRET not in message
    assert [f for f in remote_files(remote_dir) if not f.endswith(".lock")] == []


@pytest.mark.django_db(transaction=True, databases=["default", "pg"])
def test_env_reaches_the_tools(remote_dir: Path, drc_config: Callable[..., Any]) -> None:
    # libpq reads PGOPTIONS from the environment: a bad one makes the dump fail.
    drc_config(DATABASE_OPTIONS={"pg": {"ENV": {"PGOPTIONS": "-c lock_timeout=bogus"}}})
    with pytest.raises(CommandError, match='invalid value for parameter "lock_timeout"'):
        call_command("dbbackup", "-d", "pg")
    assert get_connector("pg").dump_command(compress=False).env["PGOPTIONS"].endswith("bogus")


# The replica example of docs/many-databases.md, for the alias "pg".
# --8<-- [start:replica]
DATABASE_OPTIONS = {
    "pg": {
        # Dump from the replica, as a read-only role; restores use the alias's own.
        "HOST": "replica.internal",
        "PORT": 5432,
        "USER": "backup_reader",
        "PASSWORD": os.environ.get("BACKUP_READER_PASSWORD", ""),
        "DUMP_ARGS": ["--exclude-table-data=django_session", "--no-comments"],
    },
}
# --8<-- [end:replica]


@pytest.mark.django_db(databases=["default", "pg", "maria"])
def test_host_and_port_change_the_dump_connection_only(
    remote_dir: Path, drc_config: Callable[..., Any]
) -> None:
    maria_options = {"HOST": "replica.internal", "PORT": "3307", "USER": "backup"}
    drc_config(DATABASE_OPTIONS={**DATABASE_OPTIONS, "maria": maria_options})
    assert validate() == []
    pg = get_connector("pg")
    dump = pg.dump_command(compress=False).argv
    at = dump.index("--host")
    assert dump[at : at + 6] == (
        "--host",
        "replica.internal",
        "--port",
        "5432",
        "--username",
        "backup_reader",
    )
    assert dump[-3:] == (
        "--exclude-table-data=django_session",
        "--no-comments",
        f"--dbname={pg.name}",
    )
    restore = pg.restore_command("t").argv
    assert restore[restore.index("--host") + 1] == pg.host
    assert restore[restore.index("--username") + 1] == pg.user
    maria = get_connector("maria")
    argv = maria.dump_command(compress=False).argv
    assert "--host=replica.internal" in argv
    assert "--port=3307" in argv
    assert "--user=backup" in argv
    assert f"--host={maria.host}" in maria.restore_command("t").argv


# Refused arguments -------------------------------------------------------------
FORBIDDEN = [
    ("pg", "DUMP_ARGS", "-f/tmp/out", "-f"),
    ("pg", "DUMP_ARGS", "--file=/tmp/out", "--file"),
    ("pg", "DUMP_ARGS", "--fil=/tmp/out", "--fil"),
    ("pg", "DUMP_ARGS", "-Of/tmp/out", "-f"),
    ("pg", "DUMP_ARGS", f"--dbname=postgresql://u:{SECRET}@other/db", "--dbname"),
    ("pg", "DUMP_ARGS", f"-dpostgresql://u:{SECRET}@other/db", "-d"),
    ("pg", "DUMP_ARGS", "--host=other", "--host"),
    ("pg", "DUMP_ARGS", "--password", "--password"),
    ("pg", "DUMP_ARGS", "--format=plain", "--format"),
    ("pg", "DUMP_ARGS", "--snapshot=00000003-1", "--snapshot"),
    ("pg", "DUMP_ARGS", "otherdb", "a word without a leading '-'"),
    ("pg", "RESTORE_ARGS", "--create", "--create"),
    ("pg", "RESTORE_ARGS", "-C", "-C"),
    ("pg", "RESTORE_ARGS", "--file=/tmp/out", "--file"),
    ("pg", "RESTORE_ARGS", "--list", "--list"),
    ("maria", "DUMP_ARGS", f"-p{SECRET}", "-p"),
    ("maria", "DUMP_ARGS", f"--password={SECRET}", "--password"),
    ("maria", "DUMP_ARGS", "--result-file=/tmp/out", "--result-file"),
    ("maria", "DUMP_ARGS", "-r/tmp/out", "-r"),
    ("maria", "DUMP_ARGS", "--tab=/tmp", "--tab"),
    ("maria", "DUMP_ARGS", "--all-databases", "--all-databases"),
    ("maria", "DUMP_ARGS", "--defaults-file=/etc/other.cnf", "--defaults-file"),
    ("maria", "DUMP_ARGS", "--host=other", "--host"),
    ("maria", "RESTORE_ARGS", "--database=other", "--database"),
    ("maria", "RESTORE_ARGS", "-Dother", "-D"),
    ("maria", "RESTORE_ARGS", "--tee=/tmp/out", "--tee"),
    ("maria", "RESTORE_ARGS", f"-p{SECRET}", "-p"),
]


@pytest.mark.parametrize(("alias", "key", "arg", "shown"), FORBIDDEN)
def test_a_forbidden_argument_is_refused_by_check_and_by_the_command(
    alias: str,
    key: str,
    arg: str,
    shown: str,
    remote_dir: Path,
    drc_config: Callable[..., Any],
) -> None:
    drc_config(DATABASE_OPTIONS={alias: {key: ["--no-comments", arg]}})
    [problem] = [p for p in validate() if not p.warning]
    assert problem.id == "django_rclone_celery.E088"
    assert problem.msg.startswith(f"DATABASE_OPTIONS[{alias!r}][{key!r}]: {shown} ")
    assert SECRET not in problem.msg
    with pytest.raises(SystemCheckError) as checked:
        call_command("check", "--tag", TAG)
    assert "E088" in str(checked.value)
    assert SECRET not in str(checked.value)
    command = "dbbackup" if key == "DUMP_ARGS" else "dbrestore"
    with pytest.raises(CommandError) as caught:
        call_command(command, "-d", alias, *(["--noinput"] if command == "dbrestore" else []))
    message = one_line(caught.value)
    assert f"DATABASE_OPTIONS[{alias!r}][{key!r}]: {shown} " in message
    assert SECRET not in message
    assert remote_files(remote_dir) == []


def test_allowed_arguments_pass() -> None:
    from django_rclone_celery.database_options import RULES, refusal

    for arg in ("--no-comments", "--exclude-table-data=x", "-Ox", "-tpublic.a", "-Z0"):
        assert refusal(arg, RULES[("postgresql", "DUMP_ARGS")]) is None, arg
    for arg in ("--ignore-table-data=db.t", "--skip-extended-insert", "--where=id>1"):
        assert refusal(arg, RULES[("mysql", "DUMP_ARGS")]) is None, arg
    assert refusal("--single-transaction", RULES[("postgresql", "RESTORE_ARGS")]) is None


BAD = [
    ({"nope": {}}, "E085", "DATABASE_OPTIONS names 'nope', which is not in DATABASES."),
    ({"pg": ["--x"]}, "E085", "DATABASE_OPTIONS['pg'] must be a dict."),
    ({"pg": {"DUMP_FLAGS": []}}, "E086", "DATABASE_OPTIONS['pg'] has an unknown key 'DUMP_FLAGS'"),
    ({"pg": {"DUMP_ARGS": "--no-comments"}}, "E087", "['DUMP_ARGS'] must be a list of strings."),
    ({"default": {"DUMP_ARGS": ["-x"]}}, "E087", "sqlite has no tool to pass it to."),
    ({"pg": {"ENV": {"PGPASSWORD": SECRET}}}, "E089", "sets PGPASSWORD: use the PASSWORD key."),
    ({"maria": {"ENV": {"MYSQL_PWD": SECRET}}}, "E089", "sets MYSQL_PWD: use the PASSWORD key."),
    ({"pg": {"ENV": {"A B": "x"}}}, "E089", "has an invalid variable name 'A B'."),
    ({"pg": {"ENV": ["x"]}}, "E089", "['ENV'] must be a dict of strings to strings."),
    ({"pg": {"PORT": "54x"}}, "E090", "['PORT'] must be a port number."),
    ({"pg": {"USER": 5}}, "E090", "['USER'] must be a string."),
    ({"pg": {"TOOL_DIR": "/nonexistent/bin"}}, "E091", "'/nonexistent/bin' is not a directory."),
]


@pytest.mark.parametrize(("options", "check_id", "says"), BAD)
def test_bad_options_are_refused_in_one_line(
    options: dict[str, Any],
    check_id: str,
    says: str,
    remote_dir: Path,
    drc_config: Callable[..., Any],
) -> None:
    drc_config(DATABASE_OPTIONS=options)
    [problem] = [p for p in validate() if not p.warning]
    assert problem.id == f"django_rclone_celery.{check_id}"
    assert says in problem.msg
    assert SECRET not in problem.msg
    with pytest.raises(CommandError) as caught:
        call_command("dbbackup", "-d", "pg")
    assert says in one_line(caught.value)
    assert remote_files(remote_dir) == []


def test_a_tool_dir_without_the_tools_is_refused(
    tmp_path: Path, remote_dir: Path, drc_config: Callable[..., Any]
) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "pg_dump").write_text("#!/bin/sh\nexit 99\n")
    (tmp_path / "bin" / "pg_dump").chmod(0o755)
    drc_config(DATABASE_OPTIONS={"pg": {"TOOL_DIR": str(tmp_path / "bin")}})
    [problem] = [p for p in validate() if not p.warning]
    assert problem.id == "django_rclone_celery.E091"
    assert problem.msg == (
        f"DATABASE_OPTIONS['pg']['TOOL_DIR'] {str(tmp_path / 'bin')!r} has no executable "
        "pg_restore."
    )
    with pytest.raises(CommandError, match="has no executable pg_restore"):
        call_command("dbbackup", "-d", "pg")
    assert remote_files(remote_dir) == []
