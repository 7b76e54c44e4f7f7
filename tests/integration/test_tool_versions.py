"""The right tool for each server (#19): versions compared before anything runs.

Only one PostgreSQL client major is installed here (Debian's repositories
hold no other), so another major is a ``TOOL_DIR`` (or a PATH entry) of tiny
tools that answer ``--version`` with it and otherwise leave a mark and fail
loudly: a refusal must come before any of them is run for real. The server
and the side-by-side client of /usr/lib/postgresql/<N>/bin are the real ones.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError, SystemCheckError

from django_rclone_celery import tools
from django_rclone_celery.checks import TAG
from django_rclone_celery.connectors import get_connector
from django_rclone_celery.operations import list_backups
from tests.helpers.databases import damage, populate, snapshot
from tests.helpers.remotes import remote_files

MARK = "ran-for-real"


def fake_tools(where: Path, lines: dict[str, str]) -> Path:
    """``where/<tool>``: prints ``line`` for --version; anything else marks ``where`` and fails."""
    where.mkdir(parents=True, exist_ok=True)
    for tool, line in lines.items():
        script = where / tool
        script.write_text(
            "#!/bin/sh\n"
            f'if [ "$1" = "--version" ]; then echo \'{line}\'; exit 0; fi\n'
            f"touch '{where / MARK}'\n"
            f'echo "fake {tool} must not run: $*" >&2\n'
            "exit 99\n"
        )
        script.chmod(0o755)
    return where


def pg14(where: Path) -> Path:
    return fake_tools(
        where,
        {
            "pg_dump": "pg_dump (PostgreSQL) 14.9",
            "pg_restore": "pg_restore (PostgreSQL) 14.9",
            "psql": "psql (PostgreSQL) 14.9",
        },
    )


def server_major() -> int:
    return get_connector("pg").server_version()[0]


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text
    assert "Traceback" not in text
    return text


@pytest.mark.django_db(transaction=True, databases=["default", "pg"])
def test_an_older_tool_dir_is_refused_before_the_dump(
    tmp_path: Path, remote_dir: Path, drc_config: Callable[..., Any]
) -> None:
    tool_dir = pg14(tmp_path / "pg14")
    drc_config(DATABASE_OPTIONS={"pg": {"TOOL_DIR": str(tool_dir)}})
    populate("pg")
    major = server_major()
    with pytest.raises(CommandError) as caught:
        call_command("dbbackup", "-d", "pg")
    message = one_line(caught.value)
    assert f"pg_dump 14.9 ({tool_dir}/pg_dump) is older than the PostgreSQL {major}." in message
    assert f"server of database 'pg': install postgresql-client-{major} " in message
    assert f"/usr/lib/postgresql/{major}/bin" in message
    assert not (tool_dir / MARK).exists()
    assert remote_files(remote_dir) == []


@pytest.mark.django_db(transaction=True, databases=["default", "pg"])
def test_an_older_tool_dir_is_refused_before_the_restore(
    tmp_path: Path, remote_dir: Path, drc_config: Callable[..., Any]
) -> None:
    populate("pg")
    call_command("dbbackup", "-d", "pg")
    damage("pg")
    before = snapshot("pg")
    tool_dir = pg14(tmp_path / "pg14")
    drc_config(DATABASE_OPTIONS={"pg": {"TOOL_DIR": str(tool_dir)}})
    with pytest.raises(CommandError) as caught:
        call_command("dbrestore", "-d", "pg", "--noinput")
    message = one_line(caught.value)
    assert "pg_restore 14.9" in message
    assert f"install postgresql-client-{server_major()}" in message
    assert not (tool_dir / MARK).exists()
    assert snapshot("pg") == before  # the live database untouched


@pytest.mark.skipif(
    not (tools.DEBIAN_ROOT / "15" / "bin" / "pg_dump").exists(),
    reason="needs the Debian layout of the installed client",
)
@pytest.mark.django_db(transaction=True, databases=["default", "pg"])
def test_an_older_tool_on_path_gives_way_to_the_one_beside_it(
    tmp_path: Path, remote_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_path = pg14(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{on_path}{os.pathsep}{os.environ['PATH']}")
    populate("pg")
    before = snapshot("pg")
    # In streams too: their psql is the chosen client's, never the older one on PATH.
    call_command("dbbackup", "-d", "pg", "--jobs", "2")
    damage("pg")
    call_command("dbrestore", "-d", "pg", "--noinput", "--jobs", "2")
    assert snapshot("pg") == before
    assert not (on_path / MARK).exists()
    [entry] = list_backups("pg")
    manifest = json.loads((remote_dir / "db" / f"{entry.name}.manifest.json").read_text())
    major = server_major()
    assert manifest["tool_versions"]["pg_dump"].startswith(f"pg_dump (PostgreSQL) {major}.")


@pytest.mark.django_db(transaction=True, databases=["default", "pg"])
def test_no_client_beside_it_either_refuses_naming_the_package(
    tmp_path: Path, remote_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_path = pg14(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{on_path}{os.pathsep}{os.environ['PATH']}")
    # A Debian layout holding only an older client (the same fake).
    older = tmp_path / "lib" / "postgresql"
    pg14(older / "14" / "bin")
    monkeypatch.setattr(tools, "DEBIAN_ROOT", older)
    with pytest.raises(CommandError) as caught:
        call_command("dbbackup", "-d", "pg")
    message = one_line(caught.value)
    assert f"pg_dump 14.9 ({on_path}/pg_dump) is older than" in message
    assert f"postgresql-client-{server_major()}" in message
    assert not (on_path / MARK).exists()
    assert not (older / "14" / "bin" / MARK).exists()
    assert remote_files(remote_dir) == []


def test_side_by_side_prefers_the_servers_own_major(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "postgresql"
    for major in ("13", "16", "17"):
        fake_tools(root / major / "bin", {"pg_dump": f"pg_dump (PostgreSQL) {major}.2"})
    monkeypatch.setattr(tools, "DEBIAN_ROOT", root)
    on_path = pg14(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{on_path}{os.pathsep}{os.environ['PATH']}")
    choice = tools.choose_pg_tool("pg", "pg_dump", (16, 4))
    assert (choice.path, choice.version) == (str(root / "16" / "bin" / "pg_dump"), (16, 2))
    # No 15 beside it: the closest newer one (a newer pg_dump reads older servers).
    assert tools.choose_pg_tool("pg", "pg_dump", (15, 4)).path == str(
        root / "16" / "bin" / "pg_dump"
    )
    newer = tools.choose_pg_tool("pg", "pg_dump", (17, 0))
    assert newer.path == str(root / "17" / "bin" / "pg_dump")
    with pytest.raises(Exception, match=r"postgresql-client-18 "):
        tools.choose_pg_tool("pg", "pg_dump", (18, 1))


def fake_wrapper(where: Path, version: str) -> Path:
    """A Debian-like ``bin`` whose pg_dump and pg_restore link to one ``pg_wrapper``
    that answers ``--version`` by the name it was called as."""
    share = where / "share"
    share.mkdir(parents=True)
    wrapper = share / "pg_wrapper"
    wrapper.write_text(f'#!/bin/sh\necho "$(basename "$0") (PostgreSQL) {version}"\n')
    wrapper.chmod(0o755)
    bin_dir = where / "bin"
    bin_dir.mkdir()
    for tool in ("pg_dump", "pg_restore"):
        (bin_dir / tool).symlink_to(wrapper)
    return bin_dir


def test_debians_wrapper_gives_way_to_the_client_it_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_path = fake_wrapper(tmp_path, "15.3")
    monkeypatch.setenv("PATH", f"{on_path}{os.pathsep}{os.environ['PATH']}")
    root = tmp_path / "postgresql"
    monkeypatch.setattr(tools, "DEBIAN_ROOT", root)
    # One file, two names: each answers for itself (the cache once mixed them up).
    assert tools.version_line(str(on_path / "pg_dump")) == "pg_dump (PostgreSQL) 15.3"
    assert tools.version_line(str(on_path / "pg_restore")) == "pg_restore (PostgreSQL) 15.3"
    # No client of the major it named: the wrapper itself, by its plain name.
    assert tools.choose_pg_tool("pg", "pg_dump", (15, 4)).path == "pg_dump"
    fake_tools(root / "15" / "bin", {"pg_dump": "pg_dump (PostgreSQL) 15.3"})
    choice = tools.choose_pg_tool("pg", "pg_dump", (15, 4))
    assert (choice.path, choice.version) == (str(root / "15" / "bin" / "pg_dump"), (15, 3))
    assert tools.choose_pg_tool("pg", "pg_dump", (14, 9)).path == choice.path
    # A client that is not the wrapper keeps its plain name.
    plain = fake_tools(tmp_path / "plain", {"pg_dump": "pg_dump (PostgreSQL) 15.3"})
    monkeypatch.setenv("PATH", f"{plain}{os.pathsep}{os.environ['PATH']}")
    assert tools.choose_pg_tool("pg", "pg_dump", (15, 4)).path == "pg_dump"


@pytest.mark.skipif(
    os.path.basename(os.path.realpath(shutil.which("pg_dump") or "")) != "pg_wrapper",
    reason="needs Debian's pg_wrapper on PATH",
)
@pytest.mark.django_db(transaction=True, databases=["default", "pg"])
def test_a_run_calls_the_client_debians_wrapper_names(remote_dir: Path) -> None:
    populate("pg")
    before = snapshot("pg")
    connector = get_connector("pg")
    connector.prepare_tools()
    named = tools.pg_version(tools.version_line(shutil.which("pg_dump") or ""))
    assert named is not None
    client = f"{tools.DEBIAN_ROOT}/{named[0]}/bin"
    assert connector.program("pg_dump") == f"{client}/pg_dump"
    assert connector.program("psql") == f"{client}/psql"  # the streams' (--jobs)
    call_command("dbbackup", "-d", "pg", "--jobs", "2")
    damage("pg")
    call_command("dbrestore", "-d", "pg", "--noinput", "--jobs", "2")
    assert snapshot("pg") == before
    [entry] = list_backups("pg")
    manifest = json.loads((remote_dir / "db" / f"{entry.name}.manifest.json").read_text())
    assert manifest["tool_versions"]["pg_dump"].startswith("pg_dump (PostgreSQL) ")
    assert manifest["tool_versions"]["pg_restore"].startswith("pg_restore (PostgreSQL) ")


def test_runs_at_once_ask_a_tool_its_version_once(tmp_path: Path) -> None:
    tool = tmp_path / "pg_dump"
    asked = tmp_path / "asked"
    tool.write_text(
        f"#!/bin/sh\necho x >> '{asked}'\nsleep 0.2\necho 'pg_dump (PostgreSQL) 15.3'\n"
    )
    tool.chmod(0o755)
    with ThreadPoolExecutor(4) as pool:
        lines = list(pool.map(lambda _: tools.version_line(str(tool)), range(4)))
    assert lines == ["pg_dump (PostgreSQL) 15.3"] * 4
    assert asked.read_text() == "x\n"


def test_server_version_numbers() -> None:
    assert tools.pg_server_version(160004) == (16, 4)
    assert tools.pg_server_version(90624) == (9, 6, 24)
    assert tools.pg_major((9, 6, 24)) == (9, 6)
    assert tools.pg_version("pg_dump (PostgreSQL) 17.2 (Debian 17.2-1)") == (17, 2)
    assert tools.pg_version("pg_dump (PostgreSQL) 18beta1") == (18,)


@pytest.mark.django_db(databases=["default", "pg"])
def test_check_database_and_check_deploy_report_the_mismatch(
    tmp_path: Path, remote_dir: Path, drc_config: Callable[..., Any]
) -> None:
    tool_dir = pg14(tmp_path / "pg14")
    call_command("check", "--database", "pg", "--tag", TAG)  # the installed client fits
    drc_config(DATABASE_OPTIONS={"pg": {"TOOL_DIR": str(tool_dir)}})
    call_command("check", "--tag", TAG)  # plain check: local, no server asked
    for args in (("--database", "pg"), ("--deploy",)):
        with pytest.raises(SystemCheckError) as caught:
            call_command("check", *args, "--tag", TAG)
        text = str(caught.value)
        assert "django_rclone_celery.E071" in text
        assert "pg_dump 14.9" in text
        assert "pg_restore 14.9" in text
        assert f"postgresql-client-{server_major()}" in text
    assert not (tool_dir / MARK).exists()


@pytest.mark.django_db(databases=["default", "maria"])
def test_a_mysql_tool_against_mariadb_is_said_and_given_its_flag(
    tmp_path: Path, remote_dir: Path, drc_config: Callable[..., Any]
) -> None:
    line = "mysqldump  Ver 8.0.36 for Linux on x86_64 (MySQL Community Server - GPL)"
    tool_dir = fake_tools(
        tmp_path / "mysql8",
        {"mysqldump": line, "mysql": "mysql  Ver 8.0.36 for Linux on x86_64 (MySQL Community)"},
    )
    drc_config(DATABASE_OPTIONS={"maria": {"TOOL_DIR": str(tool_dir)}})
    out = StringIO()
    call_command("check", "--database", "maria", "--tag", TAG, stderr=out, stdout=out)
    text = out.getvalue()
    assert "E071" in text
    assert "mysqldump is MySQL's but database 'maria' is a MariaDB server" in text
    connector = get_connector("maria")
    connector.prepare_tools()
    argv = connector.dump_command(compress=False).argv
    assert argv[0] == f"{tool_dir}/mysqldump"
    assert "--column-statistics=0" in argv
    assert not (tool_dir / MARK).exists()
