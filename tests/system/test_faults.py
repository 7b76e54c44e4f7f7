"""Fault suite: runs SIGKILLed in a loop, and a password with every awkward byte.

SIGKILL loops (``@slow``; ``DRC_FAULT_KILLS`` rounds per engine and
operation, default 3): ``manage.py dbbackup`` / ``dbrestore`` run as a
separate Python process on PostgreSQL, MariaDB and SQLite; once its programs
(dump or restore tool, rclone) are streaming, that Python process alone gets
SIGKILL. After every kill: no program of the run is alive, no secret file is
left anywhere (nothing in the run's ``TMPDIR``, no process holding an anonymous
secret file), no partial backup is visible and a restore's live database is
unchanged. After the loop, one clean run succeeds and restores the data.

Password scan: a MariaDB user and a PostgreSQL role whose password holds
quotes, a backslash, ``$``, ``#``, spaces and a newline back up and restore
through a real worker; the whole password and each of its lines are looked
for in every process's argv during the runs, the worker's log, the ledger,
the Celery results and messages in Redis, the admin list page and a
command's stderr.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest
from django.db import connections
from django.urls import reverse

from django_rclone_celery.models import BackupRun
from tests.helpers.databases import damage, make_big_table, populate, snapshot, staging_leftovers
from tests.helpers.kills import (
    DEATH_TIMES,
    GRACE,
    alive,
    command_env,
    descendants,
    kill_mid_stream,
    manage,
    secret_dirs,
    streaming,
)
from tests.helpers.processes import all_cmdlines, cmdline
from tests.helpers.remotes import remote_files
from tests.helpers.tasks import BACKUP, RESTORE, SLOW_STREAM, complete_backups
from tests.helpers.workers import BACKEND_DB, BROKER_DB, wait_for

ROOT = Path(__file__).resolve().parents[2]
KILLS = int(os.environ.get("DRC_FAULT_KILLS", "3"))
SUFFIX = os.environ.get("DRC_TEST_DB_SUFFIX", "")


# Data -------------------------------------------------------------------------------
def make_big_sqlite_table(table: str, rows: int) -> None:
    with connections["default"].cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {table}")
        cursor.execute(f"CREATE TABLE {table} (id integer PRIMARY KEY, a text, b text, c text)")
        cursor.execute(
            f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %s) "
            f"INSERT INTO {table} SELECT i, hex(randomblob(16)), hex(randomblob(16)), "
            f"hex(randomblob(16)) FROM n",
            [rows],
        )


def big_table(alias: str) -> None:
    """~3 MB of dump: three seconds of stream at SLOW_STREAM's 1 MB/s."""
    if alias == "default":
        make_big_sqlite_table("drc_fault_big", 30_000)
    else:
        make_big_table(alias, "drc_fault_big", 30_000)


def kill_params() -> list[Any]:
    return [
        pytest.param(
            alias, marks=pytest.mark.django_db(transaction=True, databases=["default", alias])
        )
        for alias in ("pg", "maria", "default")
    ]


# SIGKILL loops ----------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("alias", kill_params())
def test_sigkill_loop_on_backup_leaves_no_program_no_secret_no_partial(
    alias: str, remote_dir: Path, drc_config: Any, tmp_path: Path, capsys: Any
) -> None:
    populate(alias)
    big_table(alias)
    drc_config(LOCK_URL=f"file://{tmp_path}/locks", **SLOW_STREAM)
    directory = remote_dir / "db"
    failures: list[str] = []
    for i in range(KILLS):
        # Vary where in the stream the kill lands.
        delay = 0.05 + 0.25 * (i % 4)
        problems = kill_mid_stream(("dbbackup", "-d", alias), "rcat", tmp_path / f"b{i}.log", delay)
        problems += [f"secret files left: {d}" for d in secret_dirs(tmp_path / "tmp")]
        try:
            assert complete_backups(directory) == []
        except AssertionError as exc:
            problems.append(f"a visible backup after a kill: {exc}")
        failures += [f"round {i}: {p}" for p in problems]
    drc_config(RCLONE_FLAGS=[])
    done = manage("dbbackup", "-d", alias, log=tmp_path / "final.log")
    assert done.wait(timeout=120) == 0, (tmp_path / "final.log").read_text()
    with capsys.disabled():
        print(
            f"\nbackup SIGKILL loop ({alias}): {KILLS} kills, {len(failures)} problems, "
            f"programs gone {max(DEATH_TIMES[-KILLS:]):.3f} s after the kill at worst"
        )
    assert failures == []
    assert len(complete_backups(directory)) == 1


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("alias", kill_params())
def test_sigkill_loop_on_restore_leaves_the_live_database_and_no_program(
    alias: str, remote_dir: Path, drc_config: Any, tmp_path: Path, capsys: Any
) -> None:
    populate(alias)
    big_table(alias)
    drc_config(LOCK_URL=f"file://{tmp_path}/locks", COMPRESSION="none")
    made = manage("dbbackup", "-d", alias, log=tmp_path / "backup.log")
    assert made.wait(timeout=120) == 0, (tmp_path / "backup.log").read_text()
    original = snapshot(alias)
    damage(alias)
    damaged = snapshot(alias)
    drc_config(**SLOW_STREAM)  # the restore reads the backup at ~1 MB/s
    failures: list[str] = []
    args = ("dbrestore", "-d", alias, "--noinput")
    for i in range(KILLS):
        delay = 0.05 + 0.25 * (i % 4)
        problems = kill_mid_stream(args, "cat", tmp_path / f"r{i}.log", delay)
        problems += [f"secret files left: {d}" for d in secret_dirs(tmp_path / "tmp")]
        connections[alias].close()
        if snapshot(alias) != damaged:
            problems.append("the live database changed under a killed restore")
        failures += [f"round {i}: {p}" for p in problems]
    drc_config(RCLONE_FLAGS=[])
    done = manage(*args, log=tmp_path / "final.log")
    assert done.wait(timeout=120) == 0, (tmp_path / "final.log").read_text()
    connections[alias].close()
    with capsys.disabled():
        print(
            f"\nrestore SIGKILL loop ({alias}): {KILLS} kills, {len(failures)} problems, "
            f"programs gone {max(DEATH_TIMES[-KILLS:]):.3f} s after the kill at worst"
        )
    assert failures == []
    assert snapshot(alias) == original
    assert staging_leftovers(alias) == []


# A password with every awkward byte ---------------------------------------------------
# Each line is distinctive, so finding any of them anywhere is a leak.
HARD_PASSWORD = 'Qw7\'dq"b\\s $HOME #hash sp ace\nLn2-second "line" $x'
NEEDLES = [HARD_PASSWORD, *(line.strip() for line in HARD_PASSWORD.splitlines())]


class Watcher:
    """Scans every process's argv until stopped, for any needle; notes the tools it saw."""

    def __init__(self, tools: set[str], contains: str) -> None:
        self.tools = tools
        self.contains = contains
        self.leaks: list[str] = []
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        needles = [n.encode() for n in NEEDLES]
        while not self._stop.wait(0.003):
            for raw in all_cmdlines().values():
                if any(n in raw for n in needles):
                    self.leaks.append(raw.decode("utf-8", "replace"))
                argv = [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]
                tool = os.path.basename(argv[0]) if argv else ""
                if tool in self.tools and any(self.contains in a for a in argv):
                    self.seen.add(tool)

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture
def hard_account(request: Any) -> Iterator[str]:
    """A MariaDB user or PostgreSQL role (with this run's suffix) using HARD_PASSWORD."""
    alias = request.param
    name = f"drc_hard{SUFFIX}"
    hosts = ("%", "localhost", "127.0.0.1")
    with connections[alias].cursor() as cursor:
        if alias == "pg":
            cursor.execute(f"DROP ROLE IF EXISTS {name}")
            cursor.execute(f"CREATE ROLE {name} LOGIN SUPERUSER PASSWORD %s", [HARD_PASSWORD])
        else:
            for host in hosts:
                cursor.execute("DROP USER IF EXISTS %s@%s", [name, host])
                cursor.execute("CREATE USER %s@%s IDENTIFIED BY %s", [name, host, HARD_PASSWORD])
                cursor.execute("GRANT ALL PRIVILEGES ON *.* TO %s@%s", [name, host])
    yield name
    connections[alias].close()
    with connections[alias].cursor() as cursor:
        if alias == "pg":
            # The restore made the role own the database it swapped in.
            cursor.execute(f"REASSIGN OWNED BY {name} TO CURRENT_USER")
            cursor.execute(f"DROP OWNED BY {name}")
            cursor.execute(f"DROP ROLE IF EXISTS {name}")
        else:
            for host in hosts:
                cursor.execute("DROP USER IF EXISTS %s@%s", [name, host])


def redis_text(client: Any, key: bytes) -> str:
    """Everything stored under ``key``, with Celery message bodies decoded."""
    kind = client.type(key).decode()
    values: list[bytes] = {
        "string": lambda: [client.get(key)],
        "list": lambda: client.lrange(key, 0, -1),
        "hash": lambda: [*client.hgetall(key).values()],
        "set": lambda: [*client.smembers(key)],
        "zset": lambda: client.zrange(key, 0, -1),
    }.get(kind, lambda: [])()
    texts = []
    for value in values:
        text = value.decode("utf-8", "replace")
        texts.append(text)
        with suppress(ValueError, KeyError, TypeError):  # a kombu message: its body is base64
            texts.append(base64.b64decode(json.loads(text)["body"]).decode("utf-8", "replace"))
    return "\n".join(texts)


def leaks(where: str, text: str) -> list[str]:
    return [f"{where}: {needle!r}" for needle in NEEDLES if needle in text]


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("alias", "hard_account"),
    [
        pytest.param(
            alias,
            alias,
            marks=pytest.mark.django_db(transaction=True, databases=["default", alias]),
            id=alias,
        )
        for alias in ("maria", "pg")
    ],
    indirect=["hard_account"],
)
def test_a_password_with_every_awkward_byte_works_and_never_shows(
    alias: str,
    hard_account: str,
    task_app: Any,
    workers: Any,
    redis_server: Any,
    remote_dir: Path,
    tmp_path: Path,
    monkeypatch: Any,
    admin_client: Any,
) -> None:
    populate(alias)
    original = snapshot(alias)
    dbname = connections[alias].settings_dict["NAME"]
    tools = {"pg_dump", "pg_restore"} if alias == "pg" else {"mysqldump", "mysql"}
    connections[alias].close()
    monkeypatch.setitem(connections.settings[alias], "USER", hard_account)
    monkeypatch.setitem(connections.settings[alias], "PASSWORD", HARD_PASSWORD)
    found: list[str] = []
    with Watcher(tools, dbname) as watcher:
        workers.start("w1")
        backup = task_app.send_task(BACKUP, kwargs={"database": alias}).get(timeout=120)
        assert backup["status"] == "succeeded", backup
        damage(alias)
        restore = task_app.send_task(RESTORE, kwargs={"database": alias}).get(timeout=120)
        assert restore["status"] == "succeeded", restore
        connections[alias].close()
        assert snapshot(alias) == original
        # A wrong password: the failure's text goes everywhere a secret could land.
        monkeypatch.setitem(
            connections.settings[alias], "PASSWORD", HARD_PASSWORD + "\n" + HARD_PASSWORD
        )
        workers.started[-1].stop()
        workers.start("w2")
        failed = task_app.send_task(BACKUP, kwargs={"database": alias})
        try:
            failed.get(timeout=120, propagate=False)
        finally:
            command = subprocess.run(
                [sys.executable, "-m", "django", "dbbackup", "-d", alias],
                cwd=ROOT,
                env=command_env(),
                capture_output=True,
                timeout=120,
            )
    connections[alias].close()
    monkeypatch.undo()
    assert watcher.seen == tools, "the scan never overlapped the dump and the restore"
    found += [f"argv: {leak[:200]!r}" for leak in watcher.leaks]
    if alias == "maria":  # PostgreSQL here trusts loopback: any password gets in
        assert failed.state == "FAILURE" or failed.result.get("status") == "failed"
        assert command.returncode != 0
        assert "Access denied" in command.stderr.decode()
    found += leaks("command stderr", command.stderr.decode("utf-8", "replace"))
    found += leaks("command stdout", command.stdout.decode("utf-8", "replace"))
    for worker in workers.started:
        found += leaks(f"worker log {worker.name}", worker.log())
    for run in BackupRun.objects.all():
        found += leaks(f"ledger row {run.pk}", json.dumps(list(vars(run).values()), default=str))
    for db in (BROKER_DB, BACKEND_DB):
        client = redis_server.client(db)
        for key in client.keys("*"):
            found += leaks(f"redis {db} {key!r}", redis_text(client, key))
    page = admin_client.get(reverse("admin:django_rclone_celery_backuprun_changelist"))
    assert page.status_code == 200
    assert BackupRun.objects.filter(status="failed").exists() or alias == "pg"
    found += leaks("admin list", page.content.decode())
    assert found == []


# Bad input: one line on stderr, exit status 1, nothing changed ------------------------
def run_manage(
    *args: str, accounts: dict[str, dict[str, str]] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "django", *args],
        cwd=ROOT,
        env=command_env(accounts=accounts),
        capture_output=True,
        text=True,
        timeout=120,
    )


def refused(proc: subprocess.CompletedProcess[str], reason: str) -> None:
    """Exit status 1 and exactly one line on stderr: the reason, no traceback."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1, proc
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("CommandError: "), proc.stderr
    assert reason in lines[0], proc.stderr


REFUSED_LOGIN = {"USER": f"drc_nobody{SUFFIX}", "PASSWORD": "not-the-password"}


@pytest.mark.django_db(transaction=True, databases=["default"])
def test_unknown_aliases_are_refused_before_anything_happens(
    tmp_path: Path, remote_dir: Path, task_app: Any, redis_server: Any
) -> None:
    from django.core.management import call_command
    from django.core.management.base import CommandError

    broker = redis_server.client(BROKER_DB)
    for command in (("dbbackup",), ("dbrestore", "--noinput"), ("verifybackup",)):
        with pytest.raises(CommandError, match="unknown database alias 'nosuch'"):
            call_command(*command, "-d", "nosuch", "--enqueue")
    assert broker.llen("celery") == 0  # nothing was queued
    call_command("dbbackup", "-d", "default", "--enqueue")
    assert broker.llen("celery") == 1  # the same path queues a known alias

    refused(run_manage("listbackups", "-d", "nosuch"), "unknown database alias 'nosuch'")
    out = tmp_path / "out"
    refused(
        run_manage("dumpdb", "--database", "nosuch", "-d", str(out)),
        "unknown database alias 'nosuch'",
    )
    refused(
        run_manage("loaddb", "--database", "nosuch", "-d", str(tmp_path)),
        "unknown database alias 'nosuch'",
    )
    assert not out.exists()
    assert remote_files(remote_dir) == []


@pytest.mark.django_db(transaction=True, databases=["default", "maria"])
def test_dumpdb_and_loaddb_refused_login_and_unusable_directory(tmp_path: Path) -> None:
    populate("maria")
    before = snapshot("maria")
    good = tmp_path / "good"
    made = run_manage("dumpdb", "testapp", "--database", "maria", "-d", str(good))
    assert made.returncode == 0, made.stderr
    out = tmp_path / "out"
    for command, where in (("dumpdb", out), ("loaddb", good)):
        proc = run_manage(
            command,
            "testapp",
            "--database",
            "maria",
            "-d",
            str(where),
            accounts={"maria": REFUSED_LOGIN},
        )
        refused(proc, "Access denied")
        assert "not-the-password" not in proc.stderr
    assert not out.exists()
    afile = tmp_path / "a-file"
    afile.write_text("")
    refused(run_manage("dumpdb", "-d", str(afile / "sub")), "cannot write the dump into")
    refused(run_manage("dumpdb", "-d", str(afile)), "cannot write the dump into")
    assert afile.read_text() == ""
    assert snapshot("maria") == before


@pytest.mark.django_db(transaction=True, databases=["default"])
def test_loaddb_refuses_an_empty_file_or_a_directory_without_the_apps_files(
    tmp_path: Path,
) -> None:
    populate("default")
    before = snapshot("default")
    empty_dir = tmp_path / "nothing"
    empty_dir.mkdir()
    (empty_dir / "unrelated.jsonl").write_text("{}\n")
    refused(run_manage("loaddb", "testapp", "-d", str(empty_dir)), "holds no file of the selected")
    empty_file = tmp_path / "empty"
    empty_file.mkdir()
    (empty_file / "testapp_author.jsonl").write_text("")
    refused(run_manage("loaddb", "testapp", "-d", str(empty_file)), "empty (no table header)")
    connections["default"].close()
    assert snapshot("default") == before


@pytest.mark.django_db(transaction=True, databases=["default", "maria"])
def test_a_restore_whose_staging_never_started_says_one_thing(remote_dir: Path) -> None:
    populate("maria")
    before = snapshot("maria")
    made = run_manage("dbbackup", "-d", "maria")
    assert made.returncode == 0, made.stderr
    proc = run_manage("dbrestore", "-d", "maria", "--noinput", accounts={"maria": REFUSED_LOGIN})
    refused(proc, "Access denied")
    assert snapshot("maria") == before
    assert staging_leftovers("maria") == []


@pytest.mark.django_db(transaction=True, databases=["default"])
def test_dumpdb_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    populate("default")
    out = tmp_path / "new" / "dump"
    proc = subprocess.run(
        [sys.executable, "-m", "django", "dumpdb", "testapp", "-d", str(out)],
        cwd=ROOT,
        env=command_env(),
        capture_output=True,
        text=True,
        timeout=120,
        umask=0,
    )
    assert proc.returncode == 0, proc.stderr
    files = sorted(out.iterdir())
    assert [f.name for f in files] == ["testapp_author.jsonl", "testapp_book.jsonl"]
    assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o600}
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert "O'Brien" in (out / "testapp_author.jsonl").read_text()  # the rows are there


# A worker's pool process killed mid-backup ------------------------------------------------
@pytest.mark.timeout(300)
@pytest.mark.django_db(transaction=True, databases=["default", "pg"])
def test_a_killed_pool_process_takes_its_tools_with_it(
    task_app: Any, workers: Any, remote_dir: Path, drc_config: Any
) -> None:
    """The deployment case: the prefork pool process that runs the task gets SIGKILL."""
    make_big_table("pg", "drc_fault_big", 30_000)
    drc_config(**SLOW_STREAM)
    worker = workers.start("w1")
    [child] = worker.pool_children()
    task_app.send_task(BACKUP, kwargs={"database": "pg"})
    deadline = time.monotonic() + 60
    while not streaming(child, "rcat") and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # well into the stream

    def both_running() -> list[int]:
        # The dump itself (not a ``--version`` beside it; on Debian a perl
        # wrapper until it execs) and rclone, both alive: the kill must find
        # each. Asked again until so, with the worker's log if never.
        tools = descendants(child)
        argvs = [cmdline(pid) for pid in tools]
        dumping = any(
            any(arg.endswith("pg_dump") for arg in a[:2]) and "--version" not in a for a in argvs
        )
        uploading = any(a[:1] and a[0].endswith("rclone") for a in argvs)
        return tools if dumping and uploading else []

    tools = wait_for(both_running, 30, what="pg_dump and rclone, both running", pool=workers)
    os.kill(child, signal.SIGKILL)
    killed = time.monotonic()
    while time.monotonic() < killed + GRACE and any(alive(pid) for pid in tools):
        time.sleep(0.005)
    survivors = [pid for pid in tools if alive(pid)]
    for pid in survivors:
        os.kill(pid, signal.SIGKILL)
    assert survivors == []
