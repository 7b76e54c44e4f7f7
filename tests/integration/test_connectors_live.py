"""Connectors: how each engine's tools are invoked, and that no password reaches argv.

The first half checks the argv builders (the one place mocking-free unit tests
suffice). The second half runs real dumps with password-protected accounts and
reads ``/proc/*/cmdline`` of every process while they run.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

from django_rclone_celery import process
from django_rclone_celery.connectors.mysql import MysqlConnector
from django_rclone_celery.exceptions import ProcessError
from django_rclone_celery.operations import backup_database, restore_database
from django_rclone_celery.process import Command
from tests.helpers.databases import damage, drop_table, make_big_table, populate, snapshot
from tests.helpers.processes import ArgvWatcher

PASSWORD = 'Drc pw "q" \\ #x 7f3a9c-found'
SERVER = {"HOST": "db.example", "PORT": "6543", "USER": "app", "PASSWORD": PASSWORD}


def test_mysql_option_file_is_read_by_the_real_client(tmp_path: Path) -> None:
    """The escaping in the option file is what mysql itself parses back."""
    c = MysqlConnector("x", {"NAME": "shop", **SERVER})
    cmd = c.dump_command(compress=False)
    probe = Command(
        argv=("my_print_defaults", cmd.argv[1], "client"),
        secret_files=cmd.secret_files,
        redact=cmd.redact,
    )
    if process.find_program("my_print_defaults") is None:
        pytest.skip("my_print_defaults (MariaDB client) is not installed")
    out = process.run(probe).stdout.decode()
    assert out.strip() == f"--password={PASSWORD}"


def test_mongodb_round_trip(tmp_path: Path, remote_dir: Path, monkeypatch: Any) -> None:
    """Runs only where MongoDB is installed; skips with its reason elsewhere."""
    missing = [t for t in ("mongod", "mongodump", "mongorestore", "mongosh") if not shutil.which(t)]
    if missing:
        pytest.skip(f"MongoDB is not installed on this machine (missing: {', '.join(missing)})")
    from tests.helpers.network import free_port, wait_for_port

    port = free_port()
    data = tmp_path / "mongo-data"
    data.mkdir()
    mongod = process.Command(
        argv=(
            "mongod",
            "--bind_ip",
            "127.0.0.1",
            "--port",
            str(port),
            "--dbpath",
            str(data),
            "--fork",
            "--logpath",
            str(tmp_path / "mongod.log"),
            "--pidfilepath",
            str(tmp_path / "pid"),
        )
    )
    process.run(mongod, timeout=60)
    try:
        wait_for_port(port)
        monkeypatch.setitem(
            connections.settings,
            "mongo",
            {"ENGINE": "djongo", "NAME": "drc_found", "HOST": "127.0.0.1", "PORT": str(port)},
        )
        url = f"mongodb://127.0.0.1:{port}/drc_found"

        def mongosh(script: str) -> str:
            return (
                process.run(Command(argv=("mongosh", "--quiet", url, "--eval", script)))
                .stdout.decode()
                .strip()
            )

        mongosh("db.books.insertMany([{_id: 1, t: 'a'}, {_id: 2, t: 'ü'}])")
        before = mongosh("JSON.stringify(db.books.find().sort({_id: 1}).toArray())")
        backup_database("mongo")
        mongosh("db.books.deleteOne({_id: 1}); db.books.insertOne({_id: 3, t: 'x'})")
        restore_database("mongo")
        assert mongosh("JSON.stringify(db.books.find().sort({_id: 1}).toArray())") == before
    finally:
        pid = int((tmp_path / "pid").read_text())
        os.kill(pid, 15)


# No password on argv while real dumps run -------------------------------------------
@pytest.fixture
def pg_password_role() -> Iterator[str]:
    role = f"drc_pw{os.environ.get('DRC_TEST_DB_SUFFIX', '')}"
    with connections["pg"].cursor() as cursor:
        cursor.execute(f"DROP ROLE IF EXISTS {role}")
        cursor.execute(f"CREATE ROLE {role} LOGIN SUPERUSER PASSWORD %s", [PASSWORD])
    yield role
    connections["pg"].close()
    with connections["pg"].cursor() as cursor:
        cursor.execute(f"DROP ROLE IF EXISTS {role}")


@pytest.fixture
def maria_password_user() -> Iterator[str]:
    user = f"drc_pw{os.environ.get('DRC_TEST_DB_SUFFIX', '')}"
    hosts = ("%", "localhost", "127.0.0.1")
    with connections["maria"].cursor() as cursor:
        for host in hosts:
            cursor.execute("DROP USER IF EXISTS %s@%s", [user, host])
            cursor.execute("CREATE USER %s@%s IDENTIFIED BY %s", [user, host, PASSWORD])
            cursor.execute("GRANT ALL PRIVILEGES ON *.* TO %s@%s", [user, host])
    yield user
    connections["maria"].close()
    with connections["maria"].cursor() as cursor:
        for host in hosts:
            cursor.execute("DROP USER IF EXISTS %s@%s", [user, host])


def use_account(monkeypatch: Any, alias: str, user: str) -> None:
    """Point the alias (Django's connection and our connectors) at a password account."""
    connections[alias].close()
    monkeypatch.setitem(connections.settings[alias], "USER", user)
    monkeypatch.setitem(connections.settings[alias], "PASSWORD", PASSWORD)


@pytest.mark.django_db(transaction=True, databases=["default", "pg"])
def test_no_password_on_argv_while_pg_dump_runs(
    remote_dir: Path,
    drc_config: Any,
    pg_password_role: str,
    monkeypatch: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    drc_config(COMPRESSION="native")  # slower dump: a longer window to watch it
    populate("pg")
    make_big_table("pg", "drc_pw_big", 300_000)
    caplog.set_level(logging.DEBUG)
    try:
        use_account(monkeypatch, "pg", pg_password_role)
        dbname = connections["pg"].settings_dict["NAME"]
        with ArgvWatcher(PASSWORD, {"pg_dump"}, dbname) as watcher:
            backup_database("pg")
        monkeypatch.setitem(connections.settings["pg"], "NAME", "drc_no_such_database")
        with pytest.raises(ProcessError) as caught:
            backup_database("pg")
    finally:
        monkeypatch.undo()
        connections["pg"].close()
        drop_table("pg", "drc_pw_big")

    assert any(f"--dbname={dbname}" in argv for argv in watcher.seen.values()), (
        "the scan never overlapped pg_dump"
    )
    assert all(pg_password_role in argv for argv in watcher.seen.values())
    assert watcher.leaks == []
    assert PASSWORD not in caplog.text
    assert "drc_no_such_database" in str(caught.value)
    assert PASSWORD not in str(caught.value)
    assert PASSWORD not in caught.value.stderr
    assert PASSWORD not in " ".join(caught.value.argv)


@pytest.mark.django_db(transaction=True, databases=["default", "maria"])
def test_no_password_on_argv_while_mysqldump_and_mysql_run(
    remote_dir: Path,
    maria_password_user: str,
    monkeypatch: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """MariaDB checks this password: success proves it arrived, through a 0600 file."""
    populate("maria")
    before = snapshot("maria")
    make_big_table("maria", "drc_pw_big", 100_000)
    caplog.set_level(logging.DEBUG)
    try:
        use_account(monkeypatch, "maria", maria_password_user)
        dbname = connections["maria"].settings_dict["NAME"]
        with ArgvWatcher(PASSWORD, {"mysqldump", "mysql"}, dbname) as watcher:
            backup_database("maria")
            damage("maria")
            restore_database("maria")
        assert snapshot("maria") == before

        monkeypatch.setitem(connections.settings["maria"], "PASSWORD", PASSWORD + "-wrong")
        with pytest.raises(ProcessError) as caught:
            backup_database("maria")
    finally:
        monkeypatch.undo()
        connections["maria"].close()
        drop_table("maria", "drc_pw_big")

    tools = {os.path.basename(a[0]) for a in watcher.seen.values()}
    assert tools == {"mysqldump", "mysql"}, "the scan never overlapped the dump and the restore"
    assert all(f"--user={maria_password_user}" in a for a in watcher.seen.values())
    assert any(dbname in a for a in watcher.seen.values())
    assert watcher.file_modes == {0o600}
    assert watcher.leaks == []
    assert PASSWORD not in caplog.text
    assert "Access denied" in str(caught.value)
    assert PASSWORD not in str(caught.value)
    assert PASSWORD not in caught.value.stderr
