"""pgclone on a real PostgreSQL and a real rclone local remote: dump, ls, restore, copy.

Every test restores the ``pg`` alias's test database itself, so each one
checks the data after the swap with raw SQL through the ordinary connection.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections

from django_rclone_celery import pgclone
from django_rclone_celery.exceptions import (
    BackupNotFound,
    CopyError,
    HookFailed,
    InvalidBackup,
    OperationDisabled,
    RestoreError,
)
from django_rclone_celery.pgclone import keys
from tests.helpers.databases import damage, drops_finished, make_big_table, populate, snapshot
from tests.helpers.processes import all_cmdlines

# "default" too: Django makes every alias depend on it when test databases are set up.
PG = pytest.mark.django_db(transaction=True, databases=["default", "pg"])
pytestmark = [pytest.mark.postgres, PG]

SNAP_PREFIX = "drc_pgclone_snap"


def server_databases() -> set[str]:
    drops_finished("pg")
    with connections["pg"].cursor() as cursor:
        cursor.execute("SELECT datname FROM pg_database")
        return {row[0] for row in cursor.fetchall()}


def this_sessions(names: set[str]) -> set[str]:
    """Without the databases of other test sessions (xdist workers, version pairs), which
    create and drop theirs meanwhile."""
    return {n for n in names if n.startswith(live_name()) or not re.search(r"_gw\d", n)}


def live_name() -> str:
    return str(connections["pg"].settings_dict["NAME"])


def beside_live() -> list[str]:
    """Databases named ``<live>__*``: staging leftovers and restore points."""
    return sorted(n for n in server_databases() if n.startswith(live_name() + "__"))


def _drop(names: list[str]) -> None:
    from django_rclone_celery.connectors import get_connector

    connector = get_connector("pg")
    with connector.cursor("postgres") as cursor:
        for name in names:
            connector.drop(cursor, name)  # type: ignore[attr-defined]


@pytest.fixture
def store(tmp_path: Path, settings: Any, remote_dir: Path) -> Iterator[Path]:
    """pgclone settings for the ``pg`` alias; dumps land in ``<remote>/pgclone``."""
    settings.PGCLONE_DATABASE = "pg"
    settings.PGCLONE_INSTANCE = "ci"
    settings.PGCLONE_PRE_SWAP_HOOKS = []
    yield remote_dir / "pgclone"
    connections["pg"].close()
    _drop(beside_live() + sorted(n for n in server_databases() if n.startswith(SNAP_PREFIX)))


def test_dump_ls_restore_by_key_and_by_prefix(store: Path) -> None:
    populate("pg")
    original = snapshot("pg")
    key = pgclone.dump()
    assert keys.parse(key) is not None
    assert key.startswith("ci/pg/none/")
    assert (store / key).is_file()
    # The manifest sits beside the dump and is never listed as a key.
    assert (store / (key + ".manifest.json")).is_file()

    assert pgclone.ls() == [key]
    assert pgclone.ls("ci/pg/") == [key]
    assert pgclone.ls("nope/") == []
    assert pgclone.ls(instances=True) == ["ci"]
    assert pgclone.ls(databases=True) == ["pg"]  # bare names, as django-pgclone prints them
    assert pgclone.ls(configs=True) == ["none"]

    damage("pg")
    assert snapshot("pg") != original
    assert pgclone.restore(key) == key
    assert snapshot("pg") == original
    assert beside_live() == []

    # A second dump of other data; a prefix restores the newest key.
    damage("pg")
    changed = snapshot("pg")
    newer = pgclone.dump()
    assert newer > key
    assert pgclone.ls() == [newer, key]
    populate("pg", authors=1, books=1)
    assert pgclone.restore("ci/pg") == newer
    assert snapshot("pg") == changed
    # And the older key by name still restores the older data.
    assert pgclone.restore(key) == key
    assert snapshot("pg") == original
    assert beside_live() == []


def test_commands_print_keys_and_list_every_mode(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    populate("pg")
    original = snapshot("pg")
    call_command("pgclone", "dump", "-d", "pg", "-i", "cmd")
    key = capsys.readouterr().out.strip()
    assert key.startswith("cmd/pg/none/")
    assert key.endswith(".dump")

    for flags, expected in [
        ([], key),
        (["--instances"], "cmd"),
        (["--databases"], "pg"),
        (["--configs"], "none"),
        (["cmd/pg/none/"], key),
    ]:
        call_command("pgclone", "ls", *flags)
        assert capsys.readouterr().out.split() == [expected]
    with pytest.raises(CommandError, match="not allowed with"):
        call_command("pgclone", "ls", "--instances", "--configs")

    damage("pg")
    call_command("pgclone", "restore", "cmd/", "-d", "pg", "--pre-swap-hook")
    assert capsys.readouterr().out.strip() == key
    assert snapshot("pg") == original

    with pytest.raises(CommandError, match="no dump key matches"):
        call_command("pgclone", "restore", "missing/")
    # --pre-swap-hook takes every value after it: here the key too.
    with pytest.raises(CommandError, match="give a dump key"):
        call_command("pgclone", "restore", "--pre-swap-hook", "migrate", "cmd/")
    with pytest.raises(CommandError, match="relative to the storage"):
        call_command("pgclone", "restore", "/etc/passwd")
    with pytest.raises(CommandError, match="must not contain"):
        call_command("pgclone", "restore", "cmd/../x.dump")
    assert snapshot("pg") == original


def test_storage_location_flag_and_setting(store: Path, tmp_path: Path, settings: Any) -> None:
    populate("pg")
    elsewhere = tmp_path / "elsewhere"
    key = pgclone.dump(storage_location=str(elsewhere))
    assert (elsewhere / key).is_file()
    assert not store.exists()
    assert pgclone.ls() == []
    assert pgclone.ls(storage_location=str(elsewhere)) == [key]
    settings.PGCLONE_STORAGE_LOCATION = str(elsewhere)
    assert pgclone.ls() == [key]


def test_exclude_leaves_the_table_empty(store: Path) -> None:
    populate("pg")
    authors = snapshot("pg")["testapp_author"]
    key = pgclone.dump(exclude=["testapp.Book"])
    damage("pg")
    pgclone.restore(key)
    after = snapshot("pg")
    assert after["testapp_book"] == []
    assert after["testapp_author"] == authors

    with pytest.raises(Exception, match="not an installed model"):
        pgclone.dump(exclude=["testapp.Nope"])


def test_configs_supply_options_and_explicit_ones_make_config_none(
    store: Path, settings: Any
) -> None:
    settings.PGCLONE_CONFIGS = {"nobooks": {"exclude": ["testapp.Book"], "instance": "cfg"}}
    populate("pg")
    books = snapshot("pg")["testapp_book"]
    by_config = pgclone.dump(config="nobooks")
    assert by_config.startswith("cfg/pg/nobooks/")
    # -e given with -c: the dump may differ from the config's, so its key says "none".
    overridden = pgclone.dump(config="nobooks", exclude=[])
    assert overridden.startswith("cfg/pg/none/")
    pgclone.restore(by_config)
    assert snapshot("pg")["testapp_book"] == []
    pgclone.restore(overridden)
    assert snapshot("pg")["testapp_book"] == books
    with pytest.raises(Exception, match="not a configuration"):
        pgclone.dump(config="missing")


def test_pre_swap_hooks_run_on_the_restored_copy(store: Path) -> None:
    populate("pg")
    key = pgclone.dump()
    # flush empties every table of the database it runs on: here the restored copy.
    pgclone.restore(key, pre_swap_hooks=["flush --noinput"])
    assert snapshot("pg") == {"testapp_author": [], "testapp_book": []}
    assert beside_live() == []


def test_default_pre_swap_hook_is_migrate(store: Path, settings: Any) -> None:
    del settings.PGCLONE_PRE_SWAP_HOOKS
    with connections["pg"].cursor() as cursor:
        cursor.execute("DROP TABLE testapp_book, testapp_author")
        cursor.execute("DELETE FROM django_migrations WHERE app = 'testapp'")
    # A dump without testapp's tables: only migrate, run on the restored copy, adds them.
    key = pgclone.dump()
    pgclone.restore(key)
    assert snapshot("pg") == {"testapp_author": [], "testapp_book": []}
    with connections["pg"].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM django_migrations WHERE app = 'testapp'")
        assert cursor.fetchone()[0] >= 1


def test_failing_pre_swap_hook_leaves_live_untouched(store: Path) -> None:
    populate("pg")
    key = pgclone.dump()
    damage("pg")
    live = snapshot("pg")
    with pytest.raises(HookFailed, match=r"no_such_command.*live database was not changed"):
        pgclone.restore(key, pre_swap_hooks=["no_such_command"])
    assert snapshot("pg") == live
    assert beside_live() == []
    # Routing was undone: default is SQLite again, pg points at the live database.
    assert connections["default"].vendor == "sqlite"
    assert connections["pg"].settings_dict["NAME"] == live_name()


def test_pre_dump_hooks_run_on_the_dumped_database(store: Path) -> None:
    populate("pg")
    key = pgclone.dump(pre_dump_hooks=["flush --noinput"])
    assert key.startswith("ci/pg/none/")
    assert snapshot("pg") == {"testapp_author": [], "testapp_book": []}
    with pytest.raises(HookFailed, match="pre-dump hook 'no_such_command'"):
        pgclone.dump(pre_dump_hooks=["no_such_command"])
    assert pgclone.ls() == [key]


def test_reversible_restore_and_pre_post_round_trips(store: Path) -> None:
    populate("pg")
    dumped = snapshot("pg")
    key = pgclone.dump()
    damage("pg")
    before = snapshot("pg")

    pgclone.restore(key, reversible=True)
    assert snapshot("pg") == dumped
    name = live_name()
    assert beside_live() == [f"{name}__post", f"{name}__pre"]
    assert pgclone.ls(local=True)[:2] == [":post", ":pre"]

    populate("pg", authors=1, books=1)  # work done after the restore
    assert pgclone.restore(":pre") == ":pre"
    assert snapshot("pg") == before
    pgclone.restore(":post")
    assert snapshot("pg") == dumped
    pgclone.restore(":pre")
    assert snapshot("pg") == before
    # Local restores keep the restore points; no scratch database is left.
    assert beside_live() == [f"{name}__post", f"{name}__pre"]

    # A second reversible restore replaces both restore points in its swap.
    populate("pg", authors=2, books=0)
    later = snapshot("pg")
    pgclone.restore(key, reversible=True)
    assert snapshot("pg") == dumped
    pgclone.restore(":pre")
    assert snapshot("pg") == later
    pgclone.restore(":post")
    assert snapshot("pg") == dumped
    # A plain restore of a dump removes restore points that no longer match.
    pgclone.restore(key)
    assert beside_live() == []
    with pytest.raises(BackupNotFound, match="does not exist"):
        pgclone.restore(":pre")


def test_copy_then_restore_the_copy(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from django.db.backends.utils import CursorWrapper

    populate("pg")
    original = snapshot("pg")
    snap = f":{SNAP_PREFIX}_{live_name()}"[:60]
    statements: list[str] = []
    execute = CursorWrapper.execute

    def spy(self: Any, sql: str, params: Any = None) -> Any:
        statements.append(sql)
        return execute(self, sql, params)

    monkeypatch.setattr(CursorWrapper, "execute", spy)
    assert pgclone.copy(snap) == snap
    monkeypatch.undo()
    assert any(s.endswith("STRATEGY FILE_COPY") and "TEMPLATE" in s for s in statements)
    assert snap[1:] in server_databases()
    assert snap in pgclone.ls(local=True)
    damage("pg")
    assert pgclone.restore(snap) == snap
    assert snapshot("pg") == original
    assert snap[1:] in server_databases()  # a local restore copies; the snapshot stays

    with pytest.raises(CopyError, match="already exists"):
        pgclone.copy(snap)
    for reserved in (":pre", ":post"):
        with pytest.raises(CopyError, match="reserved"):
            pgclone.copy(reserved)
    with pytest.raises(CopyError, match="in use"):
        pgclone.copy(":" + live_name())
    with pytest.raises(CopyError, match="not a valid local key"):
        pgclone.copy(":bad name;")
    with pytest.raises(CommandError, match="reserved"):
        call_command("pgclone", "copy", ":pre", "-d", "pg")
    with pytest.raises(InvalidBackup, match="cannot restore from"):
        pgclone.restore(":" + live_name())


@pytest.mark.parametrize(
    ("setting", "call"),
    [
        ("PGCLONE_ALLOW_DUMP", lambda: pgclone.dump()),
        ("PGCLONE_ALLOW_RESTORE", lambda: pgclone.restore("ci/")),
        ("PGCLONE_ALLOW_COPY", lambda: pgclone.copy(f":{SNAP_PREFIX}_x")),
    ],
)
def test_kill_switches_refuse(store: Path, settings: Any, setting: str, call: Any) -> None:
    populate("pg")
    key = pgclone.dump()
    original = snapshot("pg")
    databases = this_sessions(server_databases())
    setattr(settings, setting, False)
    with pytest.raises(OperationDisabled, match=f"disabled on this site: settings.{setting}"):
        call()
    assert pgclone.ls() == [key]
    assert snapshot("pg") == original
    assert this_sessions(server_databases()) == databases
    verb = setting.rsplit("_", 1)[1].lower()
    argv = {"dump": [], "restore": ["ci/"], "copy": [f":{SNAP_PREFIX}_x"]}[verb]
    with pytest.raises(CommandError, match=setting):
        call_command("pgclone", verb, *argv)


def test_pg_restore_errors_fail_the_restore(store: Path) -> None:
    populate("pg")
    with connections["pg"].cursor() as cursor:
        # Refreshing this view divides by the number of books: excluding their
        # rows makes the restore hit an error that django-pgclone would ignore.
        cursor.execute(
            "CREATE MATERIALIZED VIEW drc_pgclone_mv AS "
            "SELECT 1 / (SELECT count(*) FROM testapp_book) AS x"
        )
    try:
        key = pgclone.dump(exclude=["testapp.Book"])
        damage("pg")
        live = snapshot("pg")
        with pytest.raises(RestoreError, match="division by zero"):
            pgclone.restore(key)
        assert snapshot("pg") == live
        assert beside_live() == []
    finally:
        with connections["pg"].cursor() as cursor:
            cursor.execute("DROP MATERIALIZED VIEW IF EXISTS drc_pgclone_mv")


def test_truncated_dump_fails_the_restore(store: Path) -> None:
    populate("pg")
    make_big_table("pg", "drc_pgclone_big", 20_000)
    key = pgclone.dump()
    path = store / key
    data = path.read_bytes()
    # A truncated dump without its manifest: pg_restore itself must fail.
    path.write_bytes(data[: len(data) // 2])
    (store / (key + ".manifest.json")).unlink()
    damage("pg")
    live = snapshot("pg")
    with pytest.raises(RestoreError, match="pg_restore failed"):
        pgclone.restore(key)
    assert snapshot("pg") == live
    assert beside_live() == []


def test_checksum_mismatch_fails_the_restore(store: Path) -> None:
    populate("pg")
    key = pgclone.dump()
    path = store / key
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # the manifest still has the old checksum
    path.write_bytes(bytes(data))
    damage("pg")
    live = snapshot("pg")
    with pytest.raises((InvalidBackup, RestoreError)):
        pgclone.restore(key)
    assert snapshot("pg") == live
    assert beside_live() == []


def test_no_password_on_argv_during_dump_and_restore(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "pgclone-s3cret-Pa55"
    monkeypatch.setitem(connections.settings["pg"], "PASSWORD", secret)
    make_big_table("pg", "drc_pgclone_big", 200_000)  # keeps pg_dump running for a while
    seen: dict[int, bytes] = {}
    leaks: list[bytes] = []
    environ_has_secret: list[bool] = []
    stop = threading.Event()
    live = live_name()
    temp = f"--dbname={live}__temp".encode()

    def watch() -> None:
        while not stop.is_set():
            for pid, raw in all_cmdlines().items():
                if secret.encode() in raw:
                    leaks.append(raw)
                argv = raw.split(b"\0")
                # Not a teammate's: ours dump the live database or restore into __temp.
                ours = any(a in argv for a in (f"--dbname={live}".encode(), temp))
                tool = argv[0].endswith((b"pg_dump", b"pg_restore"))
                if tool and ours and pid not in seen:
                    seen[pid] = raw
                    try:
                        env = Path(f"/proc/{pid}/environ").read_bytes()
                    except OSError:
                        continue
                    environ_has_secret.append(b"PGPASSWORD=" + secret.encode() in env)
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        key = pgclone.dump()
        pgclone.restore(key)
    finally:
        stop.set()
        watcher.join()
    programs = {argv.split(b"\0")[0].rsplit(b"/", 1)[-1] for argv in seen.values()}
    assert programs == {b"pg_dump", b"pg_restore"}, "the watcher missed a tool"
    assert leaks == []
    assert environ_has_secret
    assert all(environ_has_secret)


def test_timeouts_apply_to_sql_sessions(store: Path, settings: Any) -> None:
    from django_rclone_celery.pgclone.conf import get_pgclone_settings
    from django_rclone_celery.pgclone.local import postgres_connector

    settings.PGCLONE_STATEMENT_TIMEOUT = 90_000
    settings.PGCLONE_LOCK_TIMEOUT = "2s"
    connector = postgres_connector("pg", get_pgclone_settings())
    with connector.cursor(connector.maintenance_db()) as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "90s"
        cursor.execute("SHOW lock_timeout")
        assert cursor.fetchone()[0] == "2s"
    # A restore still works with them in force.
    populate("pg")
    original = snapshot("pg")
    key = pgclone.dump()
    damage("pg")
    pgclone.restore(key)
    assert snapshot("pg") == original


def test_dumps_are_plain_pg_dump_archives_both_ways(store: Path, settings: Any) -> None:
    import subprocess

    populate("pg")
    original = snapshot("pg")
    key = pgclone.dump()
    # Ours is what pg_dump -Fc writes: a bare pg_restore reads it.
    listed = subprocess.run(
        ["pg_restore", "--list", str(store / key)], capture_output=True, text=True
    )
    assert listed.returncode == 0
    assert "TABLE DATA public testapp_book" in listed.stdout

    # A django-pgclone dump: pg_dump -Fc at a key path, no manifest beside it.
    pg = connections["pg"].settings_dict
    legacy = "oldhost/pg/none/2020-01-02-03-04-05-000000.dump"
    (store / legacy).parent.mkdir(parents=True)
    subprocess.run(
        [
            "pg_dump",
            "-Fc",
            "--no-acl",
            "--no-owner",
            "-h",
            pg["HOST"],
            "-p",
            str(pg["PORT"]),
            "-U",
            pg["USER"],
            "-f",
            str(store / legacy),
            live_name(),
        ],
        check=True,
    )
    damage("pg")
    assert pgclone.restore("oldhost/") == legacy
    assert snapshot("pg") == original

    # A hand-named dump counts only when PGCLONE_VALIDATE_DUMP_KEYS is False.
    manual = "manual/before-upgrade.dump"
    (store / "manual").mkdir()
    (store / manual).write_bytes((store / legacy).read_bytes())
    assert manual not in pgclone.ls()
    with pytest.raises(BackupNotFound):
        pgclone.restore(manual)
    settings.PGCLONE_VALIDATE_DUMP_KEYS = False
    assert manual in pgclone.ls()
    damage("pg")
    assert pgclone.restore(manual) == manual
    assert snapshot("pg") == original


def test_failed_dump_publishes_nothing_and_stale_partials_are_swept(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    populate("pg")
    key = pgclone.dump()
    directory = (store / key).parent
    stale = directory / "2020-01-01-00-00-00-000000.dump.partial-dead"
    fresh = directory / "2020-01-01-00-00-00-000001.dump.partial-live"
    for path in (stale, fresh):
        path.write_bytes(b"half a dump")
    os.utime(stale, (0, 0))  # written "long ago" by a killed run
    pgclone.dump()
    assert not stale.exists()
    assert fresh.exists()  # may belong to a run still going
    fresh.unlink()

    files = sorted(p.relative_to(store) for p in store.rglob("*") if p.is_file())
    with monkeypatch.context() as patch:
        patch.setitem(connections.settings["pg"], "NAME", "drc_pgclone_no_such_db")
        with pytest.raises(Exception, match="pg_dump"):
            pgclone.dump()
    assert sorted(p.relative_to(store) for p in store.rglob("*") if p.is_file()) == files


def test_database_settings_survive_a_restore(store: Path) -> None:
    populate("pg")
    key = pgclone.dump()
    with connections["pg"].cursor() as cursor:
        cursor.execute(f'ALTER DATABASE "{live_name()}" SET search_path TO public, "$user"')
        cursor.execute(f'ALTER DATABASE "{live_name()}" SET work_mem TO %s', ["7MB"])
    pgclone.restore(key)
    connections["pg"].close()
    with connections["pg"].cursor() as cursor:
        cursor.execute("SHOW search_path")
        assert cursor.fetchone()[0] == 'public, "$user"'
        cursor.execute("SHOW work_mem")
        assert cursor.fetchone()[0] == "7MB"
