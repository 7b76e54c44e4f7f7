"""Preflight (``manage.py check --deploy``): the remote, the tools' versions, the restore rights.

Real parts only: the real rclone binary with a remote name that is not in its
config (a typo), a fake older dump tool first on PATH (a script reporting
another version), and database accounts without the rights a restore needs,
created on the real servers with this run's suffix.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core import checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import connections

from django_rclone_celery import preflight
from django_rclone_celery.checks import TAG
from django_rclone_celery.connectors import get_connector

SUFFIX = os.environ.get("DRC_TEST_DB_SUFFIX", "")


def deploy_ids() -> list[str]:
    found = checks.run_checks(tags=[TAG], include_deployment_checks=True)
    return [m.id for m in found if m.id]


def test_a_remote_typo_fails_check_deploy_but_not_check(
    tmp_path: Path, drc_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RCLONE_CONFIG", str(tmp_path / "rclone.conf"))  # no remote named valt
    drc_config(REMOTE="valt:backups")
    call_command("check", "--tag", TAG)  # plain check stays local and cheap: it passes
    [problem] = preflight.remote_problems(preflight.get_settings())
    assert problem.id == "django_rclone_celery.E070"
    assert "'valt:backups' did not answer" in problem.msg
    assert "valt" in problem.msg
    with pytest.raises(SystemCheckError, match="E070"):
        call_command("check", "--deploy", "--tag", TAG)


def test_a_local_remote_not_created_yet_passes(tmp_path: Path, drc_config: Any) -> None:
    drc_config(REMOTE=str(tmp_path / "not-yet" / "backups"))
    assert preflight.remote_problems(preflight.get_settings()) == []


def test_without_remote_check_deploy_says_no_backups_are_taken(drc_config: Any) -> None:
    drc_config(REMOTE="")
    assert "django_rclone_celery.E073" in deploy_ids()


@pytest.fixture
def older_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``pg_dump`` 9.6 and ``mysqldump`` of MariaDB 10.3 first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool, line in {
        "pg_dump": "pg_dump (PostgreSQL) 9.6.24",
        "mysqldump": "mysqldump  Ver 10.19 Distrib 10.3.39-MariaDB, for debian-linux-gnu",
    }.items():
        script = bin_dir / tool
        script.write_text(f"#!/bin/sh\necho '{line}'\n")
        script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


@pytest.mark.django_db(databases=["pg", "maria"])
def test_a_dump_tool_older_than_its_server_is_found(older_tools: None) -> None:
    # PostgreSQL: the run would use the client installed side by side
    # (/usr/lib/postgresql/<N>/bin), so there is nothing to report; the
    # refusals are in tests/integration/test_tool_versions.py.
    assert preflight.postgres_problems(get_connector("pg")) == []
    [maria] = preflight.mysql_problems(get_connector("maria"))
    assert (maria.id, maria.level) == ("django_rclone_celery.E071", checks.WARNING)
    assert maria.msg.startswith("mysqldump 10.3 is older than the MariaDB 1")
    assert "server of database 'maria'" in maria.msg


@pytest.mark.django_db(databases=["pg", "maria"])
def test_the_real_tools_and_admin_accounts_pass() -> None:
    assert preflight.postgres_problems(get_connector("pg")) == []
    assert preflight.mysql_problems(get_connector("maria")) == []


@pytest.fixture
def pg_without_createdb(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    role = f"drc_nocreatedb{SUFFIX}"
    with connections["pg"].cursor() as cursor:
        cursor.execute(f"DROP ROLE IF EXISTS {role}")
        cursor.execute(f"CREATE ROLE {role} LOGIN NOCREATEDB")
    connections["pg"].close()
    monkeypatch.setitem(connections.settings["pg"], "USER", role)
    yield role
    monkeypatch.undo()
    connections["pg"].close()
    with connections["pg"].cursor() as cursor:
        cursor.execute(f"DROP ROLE IF EXISTS {role}")


@pytest.mark.django_db(transaction=True, databases=["pg"])
def test_a_postgres_user_without_createdb_is_found(pg_without_createdb: str) -> None:
    [problem] = preflight.postgres_problems(get_connector("pg"))
    assert problem.id == "django_rclone_celery.E072"
    assert f"the user {pg_without_createdb!r} of database 'pg' cannot create databases" in (
        problem.msg
    )
    assert problem.hint == f"ALTER ROLE {pg_without_createdb} CREATEDB;"


@pytest.mark.django_db(transaction=True, databases=["pg"])
def test_a_scratch_copy_left_beside_a_postgres_database_is_reported() -> None:
    import psycopg

    connector = get_connector("pg")
    leftover = f"{connector.name}__old"
    restore_point = f"{connector.name}__pre"  # kept on purpose (pgclone --reversible)
    admin = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{leftover}"')
        conn.execute(f'CREATE DATABASE "{restore_point}"')
    try:
        [problem] = preflight.postgres_problems(connector)
        assert problem.id == "django_rclone_celery.W074"
        assert f"database {leftover!r} is a scratch copy" in problem.msg
        assert problem.hint == f"Unless a restore of 'pg' is running: DROP DATABASE \"{leftover}\";"
        assert "django_rclone_celery.W074" in deploy_ids()
        # While a drop of it runs (as after a swap) it is not reported. A
        # session on the copy makes the drop wait for it, up to 5 s, then fail.
        holder = psycopg.connect(f"host=127.0.0.1 port=5432 user=postgres dbname={leftover}")
        failed: list[Exception] = []

        def drop() -> None:
            with psycopg.connect(admin, autocommit=True) as conn:
                try:
                    conn.execute(f'DROP DATABASE "{leftover}"')
                except psycopg.Error as exc:
                    failed.append(exc)

        dropping = threading.Thread(target=drop)
        dropping.start()
        try:
            deadline = time.monotonic() + 4
            while time.monotonic() < deadline and not _drop_running(leftover):
                time.sleep(0.02)
            assert _drop_running(leftover)
            assert preflight.postgres_problems(connector) == []
        finally:
            dropping.join()
            holder.close()
        assert failed  # the drop gave up: the copy is still there, and reported again
        assert [p.id for p in preflight.postgres_problems(connector)] == [problem.id]
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{leftover}"')
            conn.execute(f'DROP DATABASE IF EXISTS "{restore_point}"')
    assert preflight.postgres_problems(connector) == []


def _drop_running(name: str) -> bool:
    with connections["pg"].cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
            "AND query ILIKE 'DROP DATABASE%%' AND strpos(query, %s) > 0",
            [f'"{name}"'],
        )
        return bool(cursor.fetchone()[0])


@pytest.fixture
def maria_without_temp_rights(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    user = f"drc_notemp{SUFFIX}"
    live = connections["maria"].settings_dict["NAME"]
    with connections["maria"].cursor() as cursor:
        cursor.execute("DROP USER IF EXISTS %s@'%%'", [user])
        cursor.execute("CREATE USER %s@'%%'", [user])
        cursor.execute(f"GRANT ALL PRIVILEGES ON `{live}`.* TO %s@'%%'", [user])
    connections["maria"].close()
    monkeypatch.setitem(connections.settings["maria"], "USER", user)
    yield user
    monkeypatch.undo()
    connections["maria"].close()
    with connections["maria"].cursor() as cursor:
        cursor.execute("DROP USER IF EXISTS %s@'%%'", [user])


@pytest.mark.django_db(transaction=True, databases=["maria"])
def test_a_mariadb_user_without_rights_on_the_staged_copy_is_found(
    maria_without_temp_rights: str,
) -> None:
    connector = get_connector("maria")
    [problem] = preflight.mysql_problems(connector)
    assert problem.id == "django_rclone_celery.E072"
    assert f"lacks CREATE and DROP on '{connector.name}__temp'" in problem.msg
