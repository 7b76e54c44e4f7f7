"""Connectors: how each engine's tools are invoked, and that no password reaches argv.

The first half checks the argv builders (the one place mocking-free unit tests
suffice). The second half runs real dumps with password-protected accounts and
reads ``/proc/*/cmdline`` of every process while they run.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import pytest

from django_rclone_celery import process
from django_rclone_celery.conf import get_settings
from django_rclone_celery.connectors import get_connector, resolve_path
from django_rclone_celery.connectors.mongodb import MongoConnector
from django_rclone_celery.connectors.mysql import MysqlConnector
from django_rclone_celery.connectors.postgresql import PostgisConnector, PostgresConnector
from django_rclone_celery.connectors.sqlite import SqliteConnector
from django_rclone_celery.exceptions import ConfigurationError
from django_rclone_celery.process import Command
from tests.helpers.processes import python_program

PASSWORD = 'Drc pw "q" \\ #x 7f3a9c-found'
SERVER = {"HOST": "db.example", "PORT": "6543", "USER": "app", "PASSWORD": PASSWORD}


def flat(cmd: Command) -> str:
    return "\0".join(cmd.argv)


# PostgreSQL -------------------------------------------------------------------
def test_pg_dump_argv() -> None:
    c = PostgresConnector("x", {"NAME": "shop", **SERVER, "OPTIONS": {"sslmode": "require"}})
    cmd = c.dump_command(compress=False)
    assert cmd.argv == (
        "pg_dump",
        "--format=custom",
        "--no-password",
        "--host",
        "db.example",
        "--port",
        "6543",
        "--username",
        "app",
        "--compress=0",  # our zstd compresses instead
        "--dbname=shop",
    )
    assert "--compress=0" not in c.dump_command(compress=True).argv  # "native"
    assert dict(cmd.secret_env) == {"PGPASSWORD": PASSWORD}
    assert dict(cmd.env) == {"PGSSLMODE": "require"}
    assert PASSWORD not in flat(cmd)
    assert PASSWORD not in repr(cmd)


def test_pg_restore_argv() -> None:
    c = PostgresConnector("x", {"NAME": "shop", **SERVER})
    cmd = c.restore_command("shop__temp")
    assert cmd.argv[0] == "pg_restore"
    assert {"--no-owner", "--no-acl", "--exit-on-error", "--no-password"} <= set(cmd.argv)
    assert cmd.argv[-1] == "--dbname=shop__temp"
    assert dict(cmd.secret_env) == {"PGPASSWORD": PASSWORD}
    assert PASSWORD not in flat(cmd)


def test_pg_without_password_sets_no_secret() -> None:
    cmd = PostgresConnector("x", {"NAME": "shop"}).dump_command(compress=False)
    assert cmd.secret_env == {}
    assert "--host" not in cmd.argv


# MySQL / MariaDB ----------------------------------------------------------------
def test_mysqldump_argv_and_option_file() -> None:
    c = MysqlConnector("x", {"NAME": "shop", **SERVER, "OPTIONS": {"charset": "latin1"}})
    cmd = c.dump_command(compress=False)
    [token] = cmd.secret_files
    assert cmd.argv[0] == "mysqldump"
    assert cmd.argv[1] == f"--defaults-extra-file={token}"  # must be the first option
    assert cmd.argv[-1] == "shop"
    assert {
        "--host=db.example",
        "--port=6543",
        "--user=app",
        "--default-character-set=latin1",
        "--single-transaction",
        "--quick",
        "--hex-blob",
    } <= set(cmd.argv)
    assert cmd.secret_files[token] == '[client]\npassword="Drc pw \\"q\\" \\\\ #x 7f3a9c-found"\n'
    assert PASSWORD not in flat(cmd)
    assert PASSWORD in cmd.secrets()


def test_mysql_restore_argv_and_socket() -> None:
    c = MysqlConnector("x", {"NAME": "shop", "HOST": "/run/mysqld/mysqld.sock", "USER": "app"})
    cmd = c.restore_command("shop__temp")
    assert cmd.argv[0] == "mysql"
    assert "--socket=/run/mysqld/mysqld.sock" in cmd.argv
    assert cmd.argv[-1] == "--database=shop__temp"
    assert "--default-character-set=utf8mb4" in cmd.argv
    assert list(cmd.secret_files.values()) == ["[client]\n"]


@pytest.mark.parametrize(
    "password",
    ["two\nlines", "q\"uo'te\\ $HOME #x  sp ", "tab\there\r\nand\\n-literal"],
    ids=["newline", "quotes-backslash-dollar-hash-space", "tab-crlf-backslash-n"],
)
def test_mysql_option_file_keeps_any_password_whole(password: str) -> None:
    """The real client parses the value back to exactly the password, line breaks included."""
    if process.find_program("my_print_defaults") is None:
        pytest.skip("my_print_defaults (MariaDB client) is not installed")
    cmd = MysqlConnector("x", {"NAME": "shop", **SERVER, "PASSWORD": password}).dump_command(
        compress=False
    )
    probe = Command(
        argv=("my_print_defaults", cmd.argv[1], "client"), secret_files=cmd.secret_files
    )
    out = process.run(probe).stdout.decode()
    assert out == f"--password={password}\n"


def test_mysql_password_with_nul_is_a_configuration_error() -> None:
    c = MysqlConnector("x", {"NAME": "shop", **SERVER, "PASSWORD": "a\0b"})
    with pytest.raises(ConfigurationError, match="NUL"):
        c.dump_command(compress=False)


# SQLite --------------------------------------------------------------------------
def test_sqlite_argv(drc_config: Any) -> None:
    c = SqliteConnector("x", {"NAME": "/srv/app.sqlite3"})
    # .timeout: the dump waits SQLITE_LOCK_TIMEOUT (60 s by default) for a writer's lock.
    assert c.dump_command(compress=False).argv == (
        "sqlite3",
        "-readonly",
        "-cmd",
        ".timeout 60000",
        "/srv/app.sqlite3",
        ".dump",
    )
    drc_config(SQLITE_LOCK_TIMEOUT=5)
    assert c.dump_command(compress=False).argv[2:4] == ("-cmd", ".timeout 5000")
    assert c.restore_command("/srv/app.sqlite3.restore-tmp").argv == (
        "sqlite3",
        "-bail",
        "/srv/app.sqlite3.restore-tmp",
    )


@pytest.mark.parametrize("name", ["", ":memory:", "file:memdb?mode=memory"])
def test_sqlite_in_memory_cannot_be_backed_up(name: str) -> None:
    with pytest.raises(ConfigurationError, match="is not a SQLite file"):
        SqliteConnector("x", {"NAME": name}).dump_command(compress=False)


# MongoDB ---------------------------------------------------------------------------
MONGO = {
    "NAME": "shop",
    "HOST": "mongo.example",
    "PORT": "27018",
    "USER": "app",
    "PASSWORD": PASSWORD,
}


def test_mongodump_argv() -> None:
    c = MongoConnector("x", {**MONGO, "AUTH_SOURCE": "admin"})
    cmd = c.dump_command(compress=True)
    [token] = cmd.secret_files
    assert cmd.argv == (
        "mongodump",
        "--host=mongo.example:27018",
        "--username=app",
        "--authenticationDatabase=admin",
        f"--config={token}",
        "--db=shop",
        "--archive",  # to stdout; no --gzip, like django-rclone's archives
    )
    assert cmd.secret_files[token] == 'password: "Drc pw \\"q\\" \\\\ #x 7f3a9c-found"\n'
    assert PASSWORD not in flat(cmd)
    assert PASSWORD in cmd.secrets()


def test_mongorestore_argv() -> None:
    c = MongoConnector("x", {**MONGO, "OPTIONS": {"authSource": "users"}})
    same = c.restore_command("shop")
    assert same.argv[0] == "mongorestore"
    assert {"--archive", "--drop", "--authenticationDatabase=users"} <= set(same.argv)
    assert not any(a.startswith("--ns") for a in same.argv)
    renamed = c.restore_command("other")
    assert renamed.argv[-2:] == ("--nsFrom=shop.*", "--nsTo=other.*")
    assert PASSWORD not in flat(renamed)


def test_mongo_without_password_has_no_config_file() -> None:
    cmd = MongoConnector("x", {"NAME": "shop"}).dump_command(compress=False)
    assert cmd.secret_files == {}
    assert cmd.argv == ("mongodump", "--host=localhost:27017", "--db=shop", "--archive")


def test_mongo_password_file_is_private_when_the_tool_runs(tmp_path: Path) -> None:
    """Run the built command through the gateway with a stand-in for mongodump."""
    cmd = MongoConnector("x", MONGO).dump_command(compress=False)
    report = tmp_path / "report.json"
    stand_in = python_program(
        "import json, os, stat, sys\n"
        "path = next(a.split('=', 1)[1] for a in sys.argv if a.startswith('--config='))\n"
        "json.dump({'mode': stat.S_IMODE(os.stat(path).st_mode), 'path': path,\n"
        "           'content': open(path).read(),\n"
        "           'cmdline': open('/proc/self/cmdline', 'rb').read().decode()},\n"
        f"          open({str(report)!r}, 'w'))\n"
    )
    process.run(dataclasses.replace(cmd, argv=(*stand_in, *cmd.argv[1:])))
    seen = json.loads(report.read_text())
    assert seen["mode"] == 0o600
    assert PASSWORD not in seen["cmdline"]
    assert seen["content"].startswith("password: ")
    assert not os.path.exists(seen["path"])


# Connector resolution -------------------------------------------------------------
@pytest.mark.parametrize(
    ("alias", "cls"),
    [
        ("default", SqliteConnector),
        ("pg", PostgresConnector),
        ("gis", PostgisConnector),
        ("maria", MysqlConnector),
    ],
)
def test_default_mapping(alias: str, cls: type) -> None:
    assert type(get_connector(alias)) is cls


def test_connectors_and_mapping_overrides(drc_config: Any) -> None:
    drc_config(
        CONNECTORS={"pg": "django_rclone.db.postgresql.PgDumpGisConnector"},  # django-rclone's path
        CONNECTOR_MAPPING={
            "django.db.backends.mysql": "django_rclone_celery.connectors.sqlite.SqliteConnector"
        },
    )
    assert resolve_path("pg") == "django_rclone_celery.connectors.postgresql.PostgisConnector"
    assert type(get_connector("pg")) is PostgisConnector
    assert type(get_connector("maria")) is SqliteConnector  # engine-wide override
    assert type(get_connector("gis")) is PostgisConnector  # untouched


def test_bad_connector_settings_are_configuration_errors(drc_config: Any) -> None:
    with pytest.raises(ConfigurationError, match="unknown database alias 'nope'"):
        get_connector("nope")
    drc_config(CONNECTORS={"pg": "no.such.Module"})
    with pytest.raises(ConfigurationError, match=r"cannot import connector 'no\.such\.Module'"):
        get_connector("pg")
    drc_config(CONNECTORS={"pg": "django_rclone_celery.conf.Settings"})
    with pytest.raises(ConfigurationError, match="is not a Connector subclass"):
        get_connector("pg")
    assert get_settings().connectors == {"pg": "django_rclone_celery.conf.Settings"}
