"""The README's demo runs to the end: on embedded defaults, and on PostgreSQL + Redis.

Each run is a real ``manage.py demo`` process that starts a real Celery worker
and beat, so these tests prove the example project's wiring as a user gets it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.workers import DEMO_DB, RedisServer

ROOT = Path(__file__).resolve().parents[2]
MANAGE = ROOT / "example_project" / "manage.py"
VENV_BIN = Path(sys.executable).parent

pytestmark = pytest.mark.timeout(600)


def demo_env(var: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "BACKUP_REMOTE", "DJANGO_SETTINGS_MODULE")
    }
    env.update(BOOKSHOP_VAR=str(var), PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}", **extra)
    return env


def run_demo(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(MANAGE), "demo", "--timeout", "180"],
        cwd=ROOT,  # the README runs it from the repository root
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )


def assert_demo_succeeded(proc: subprocess.CompletedProcess[str]) -> None:
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    seeded = re.search(r"^rows:  (\{.*\})$", out, re.M)
    restored = re.search(r"^rows after restore: (\{.*\})$", out, re.M)
    damaged = re.search(r"^rows now:  (\{.*\})$", out, re.M)
    assert seeded, out
    assert restored, out
    assert damaged, out
    assert restored.group(1) == seeded.group(1) != damaged.group(1)
    assert re.search(r"^backup written: \S+\.zst \(\d+ bytes\)$", out, re.M), out
    for operation in ("db_backup", "media_backup", "db_restore", "media_restore"):
        assert f"SUCCESS {operation} status=succeeded" in out
        assert re.search(rf"^{operation}\s+\S+\s+succeeded", out, re.M), out
    assert re.search(r"^  PROGRESS stage=(prepare|dump|publish)", out, re.M), out
    assert "every row and every media file is back, byte for byte" in out
    assert re.search(
        r"^schedule '.*nightly database backup': django_rclone_celery.db_backup", out, re.M
    )
    pids = [int(p) for p in re.findall(r"^stopped \w+ \(pid (\d+), exit status 0\)$", out, re.M)]
    assert len(pids) == 2, out
    for pid in pids:  # stopped means gone, not orphaned
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert out.rstrip().endswith("Demo finished: every step succeeded.")


def test_demo_on_embedded_defaults(tmp_path: Path) -> None:
    proc = run_demo(demo_env(tmp_path / "var"))
    assert_demo_succeeded(proc)
    assert "broker:   filesystem://" in proc.stdout
    assert "database: sqlite3" in proc.stdout
    # The worker really was a separate process, with the filesystem broker.
    worker_log = (tmp_path / "var" / "logs" / "worker.log").read_text()
    assert "transport:   filesystem" in worker_log
    assert "Task django_rclone_celery.db_backup[" in worker_log
    assert ".> backups " in worker_log  # routed to its own queue (docs/deployment.md)
    # Every file the broker writes stays under BOOKSHOP_VAR (kombu's default is the cwd).
    assert not (ROOT / "control").exists()
    assert (tmp_path / "var" / "broker" / "control").is_dir()


def test_demo_fails_loudly_and_stops_its_processes(tmp_path: Path) -> None:
    # A remote rclone cannot write to: the backup task fails, the demo must exit 1.
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the remote directory should be\n")
    proc = run_demo(demo_env(tmp_path / "var", BACKUP_REMOTE=str(blocker / "remote")))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "demo failed: task" in proc.stderr
    pids = [int(p) for p in re.findall(r"^stopped \w+ \(pid (\d+),", proc.stdout, re.M)]
    assert len(pids) == 2
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's throwaway Redis, on a database of the demo's own, emptied first."""
    redis_server.client(DEMO_DB).flushdb()
    return redis_server.url(DEMO_DB)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    import psycopg

    suffix = os.environ.get("DRC_TEST_DB_SUFFIX", "")
    name = f"drc_bookshop{suffix}"
    admin = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            for leftover in (name, f"{name}__temp", f"{name}__old"):
                conn.execute(f'DROP DATABASE IF EXISTS "{leftover}" WITH (FORCE)')

    drop()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgres://postgres@127.0.0.1:5432/{name}"
    finally:
        drop()


@pytest.mark.postgres
def test_demo_on_postgres_and_redis(tmp_path: Path, postgres_url: str, redis_url: str) -> None:
    proc = run_demo(demo_env(tmp_path / "var", DATABASE_URL=postgres_url, REDIS_URL=redis_url))
    assert_demo_succeeded(proc)
    assert "database: postgresql" in proc.stdout
    assert f"broker:   {redis_url}" in proc.stdout
    assert re.search(r"^backup written: \S+\.dump\.zst ", proc.stdout, re.M)


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    import pymysql

    name = f"drc_bookshop{os.environ.get('DRC_TEST_DB_SUFFIX', '')}"

    def execute(*statements: str) -> None:
        conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", autocommit=True)
        try:
            with conn.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
        finally:
            conn.close()

    drop = [f"DROP DATABASE IF EXISTS `{n}`" for n in (name, f"{name}__temp", f"{name}__old")]
    execute(*drop, f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    try:
        yield f"mysql://root@127.0.0.1:3306/{name}"
    finally:
        execute(*drop)


@pytest.mark.mysql
def test_demo_on_mariadb(tmp_path: Path, mariadb_url: str) -> None:
    proc = run_demo(demo_env(tmp_path / "var", DATABASE_URL=mariadb_url))
    assert_demo_succeeded(proc)
    assert "database: mysql" in proc.stdout
    assert re.search(r"^backup written: \S+\.sql\.zst ", proc.stdout, re.M)
