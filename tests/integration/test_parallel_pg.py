"""Parallel PostgreSQL backups and restores (``--jobs N``, #19.4): real PostgreSQL, real rclone.

One ``--jobs 2`` backup restores exactly with 1, 2 and 3 jobs (every table,
index, constraint, sequence value, view and materialized view); writes
committing during the dump leave one snapshot in the restored copy; one
changed byte in any stream fails ``verifybackup`` and the restore; a SIGKILL
publishes nothing and leaves no tool running; bad ``--jobs`` is one line.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections

from django_rclone_celery import naming
from django_rclone_celery.conf import validate
from django_rclone_celery.connectors import get_connector
from django_rclone_celery.exceptions import BackupNotFound, InvalidBackup, RestoreError
from django_rclone_celery.operations import (
    backup_database,
    cleanup_backups,
    list_backups,
    restore_database,
)
from django_rclone_celery.operations.verify import verify_backup
from tests.helpers.databases import db_params, staging_leftovers
from tests.helpers.processes import all_cmdlines
from tests.helpers.remotes import remote_files

PG = db_params("pg")
TABLES = ("par_parent", "par_child", "par_big", "par_a", "par_b")
BIG_ROWS = 120_000  # ~16 MB on disk: split into ctid ranges


def sql(*statements: str, alias: str = "pg") -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    with connections[alias].cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
            if cursor.description:
                rows = [tuple(r) for r in cursor.fetchall()]
    return rows


@pytest.fixture
def schema() -> Iterator[None]:
    """Tables with every kind of object a restore must bring back, and one big table."""
    sql(
        "DROP MATERIALIZED VIEW IF EXISTS par_mv",
        "DROP VIEW IF EXISTS par_view",
        "DROP TABLE IF EXISTS par_child, par_parent, par_big, par_a, par_b CASCADE",
        "DROP TABLE IF EXISTS par_nocols",
        "DROP SEQUENCE IF EXISTS par_seq",
        "CREATE TABLE par_nocols ()",
        "INSERT INTO par_nocols DEFAULT VALUES",
        "INSERT INTO par_nocols DEFAULT VALUES",
        "CREATE TABLE par_parent (id serial PRIMARY KEY, name text UNIQUE NOT NULL "
        "CHECK (length(name) > 0))",
        "CREATE TABLE par_child (id bigserial PRIMARY KEY, parent_id int NOT NULL "
        "REFERENCES par_parent (id), amount numeric(12, 2), at timestamptz, ratio float8, "
        "span interval, tags int[], doc jsonb, raw bytea, note text, "
        "twice bigint GENERATED ALWAYS AS (id * 2) STORED)",
        "CREATE INDEX par_child_amount ON par_child (amount)",
        "CREATE TABLE par_big (id bigint PRIMARY KEY, a text, b text)",
        "CREATE TABLE par_a (id bigint PRIMARY KEY, v int NOT NULL)",
        "CREATE TABLE par_b (id bigint PRIMARY KEY REFERENCES par_a (id), v int NOT NULL)",
        "CREATE SEQUENCE par_seq",
        "SELECT setval('par_seq', 4242)",
        "INSERT INTO par_parent (name) SELECT 'p' || g FROM generate_series(1, 50) g",
        "INSERT INTO par_child (parent_id, amount, at, ratio, span, tags, doc, raw, note) "
        "SELECT 1 + g % 50, g * 1.25, '2024-01-01'::timestamptz + g * interval '1 hour', "
        "1.0 / (g + 3), g * interval '1 minute', ARRAY[g, NULL], "
        "jsonb_build_object('g', g, 'txt', E'tab\\there'), "
        "decode(md5(g::text), 'hex'), "
        "CASE WHEN g % 7 = 0 THEN NULL ELSE E'line\\nbreak \\\\ «ü» ' || g END "
        "FROM generate_series(1, 3000) g",
        "DELETE FROM par_child WHERE id % 11 = 0",  # gaps in the key
        f"INSERT INTO par_big SELECT g, md5(g::text), repeat(md5(random()::text), 2) "
        f"FROM generate_series(1, {BIG_ROWS}) g",
        "INSERT INTO par_a SELECT g, 1 FROM generate_series(1, 100) g",
        "INSERT INTO par_b SELECT g, 1 FROM generate_series(1, 100) g",
        "CREATE VIEW par_view AS SELECT p.name, count(c.id) AS n FROM par_parent p "
        "LEFT JOIN par_child c ON c.parent_id = p.id GROUP BY p.name",
        "CREATE MATERIALIZED VIEW par_mv AS SELECT parent_id, sum(amount) AS total "
        "FROM par_child GROUP BY parent_id",
        "ANALYZE",
    )
    yield
    connections["pg"].close()
    sql(
        "DROP MATERIALIZED VIEW IF EXISTS par_mv",
        "DROP VIEW IF EXISTS par_view",
        "DROP TABLE IF EXISTS par_child, par_parent, par_big, par_a, par_b CASCADE",
        "DROP TABLE IF EXISTS par_nocols",
        "DROP SEQUENCE IF EXISTS par_seq",
    )
    connections["pg"].close()


def everything() -> dict[str, Any]:
    """Every row, the schema inventory, sequence values and view contents."""
    connections["pg"].close()  # a restore swapped the database under the connection
    state: dict[str, Any] = {table: sql(f"SELECT * FROM {table} ORDER BY id") for table in TABLES}
    state["nocols"] = sql("SELECT count(*) FROM par_nocols")
    state["view"] = sql("SELECT * FROM par_view ORDER BY name")
    state["mv"] = sql("SELECT * FROM par_mv ORDER BY parent_id")
    state["sequences"] = sql(
        "SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = 'public' ORDER BY 1"
    )
    state["inventory"] = get_connector("pg").inventory()
    state["indexdefs"] = sql(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1"
    )
    return state


def damage() -> None:
    sql(
        "DELETE FROM par_b WHERE id > 50",
        "DELETE FROM par_nocols",
        "UPDATE par_big SET a = 'x' WHERE id < 1000",
        "DROP INDEX par_child_amount",
        "SELECT setval('par_seq', 1)",
        "UPDATE par_child SET amount = 0 WHERE id < 10",
        "REFRESH MATERIALIZED VIEW par_mv",
    )


@pytest.mark.parametrize("alias", PG)
def test_jobs_2_backup_restores_exactly_with_1_2_and_3_jobs(
    alias: str, schema: None, remote_dir: Path
) -> None:
    before = everything()
    result = backup_database(alias, jobs=2)

    name = result.name
    manifest = json.loads((remote_dir / "db" / naming.manifest_name(name)).read_text())
    assert manifest["layout"] == "pg-parallel"
    assert manifest["version"] == 2
    streams = manifest["streams"]
    assert len(streams) == 2
    # The big table is cut into ctid ranges, so both streams carry part of it.
    for stream in streams:
        assert any(p["table"] == "par_big" for p in stream["pieces"])
        data = (remote_dir / "db" / stream["name"]).read_bytes()
        assert len(data) == stream["size"]
    assert sum(sum(s["rows"]) for s in streams) >= BIG_ROWS
    assert manifest["row_counts"]["public.par_big"] == BIG_ROWS
    assert remote_files(remote_dir) == sorted(
        [f"db/{name}", f"db/{naming.manifest_name(name)}"]
        + [f"db/{naming.stream_name(name, i)}" for i in range(2)]
    )
    assert [b.name for b in list_backups(alias)] == [name]  # listed once

    for jobs in (1, 2, 3):
        damage()
        assert everything() != before
        restore_database(alias, jobs=jobs)
        assert everything() == before, f"restore with {jobs} jobs differs"
        assert staging_leftovers(alias) == []

    verified = verify_backup(alias, restore=True)
    assert "streams" in verified.checks
    assert verified.restored


@pytest.mark.parametrize("alias", PG)
def test_single_stream_backup_restores_with_jobs(
    alias: str, schema: None, remote_dir: Path
) -> None:
    before = everything()
    backup_database(alias, jobs=1)
    damage()
    restore_database(alias, jobs=3)
    assert everything() == before


@pytest.mark.parametrize("alias", PG)
def test_writes_during_the_dump_leave_one_snapshot(
    alias: str, schema: None, remote_dir: Path
) -> None:
    """A writer commits rows to par_a and par_b in one transaction each while the
    dump runs: the restored copy has both or neither of every pair."""
    stop = threading.Event()
    written = [0]

    def writer() -> None:
        wrapper = get_connector(alias).wrapper()
        try:
            with wrapper.cursor() as cursor:
                key = 1000
                while not stop.is_set():
                    key += 1
                    cursor.execute("BEGIN")
                    cursor.execute("INSERT INTO par_a VALUES (%s, %s)", [key, key])
                    cursor.execute("INSERT INTO par_b VALUES (%s, %s)", [key, key])
                    cursor.execute("UPDATE par_big SET a = %s WHERE id = 1", [str(key)])
                    cursor.execute("COMMIT")
                    written[0] += 1
        finally:
            wrapper.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        result = backup_database(alias, jobs=3)
    finally:
        stop.set()
        thread.join()
    assert written[0] > 0
    restore_database(alias, jobs=2)
    connections[alias].close()
    a = sql("SELECT count(*), coalesce(sum(v), 0) FROM par_a")[0]
    b = sql("SELECT count(*), coalesce(sum(v), 0) FROM par_b")[0]
    assert a == b
    last = sql("SELECT max(id) FROM par_a")[0][0]
    big = sql("SELECT a FROM par_big WHERE id = 1")[0][0]
    # The update of the big table's first row is from the same transaction.
    assert (last == 100 and big != "100") or big == str(last)
    manifest = json.loads((remote_dir / "db" / naming.manifest_name(result.name)).read_text())
    assert manifest["row_counts"]["public.par_a"] == a[0]


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("alias", PG)
def test_one_changed_byte_in_any_stream_fails_verify_and_restore(
    alias: str, schema: None, remote_dir: Path
) -> None:
    result = backup_database(alias, jobs=2)
    before = everything()
    directory = remote_dir / "db"
    for index in range(2):
        path = directory / naming.stream_name(result.name, index)
        good = path.read_bytes()
        flip_byte(path)
        with pytest.raises(InvalidBackup, match=f"stream {index}"):
            verify_backup(alias)
        with pytest.raises((InvalidBackup, RestoreError)):
            restore_database(alias, jobs=2)
        assert everything() == before
        assert staging_leftovers(alias) == []
        path.write_bytes(good)
    assert verify_backup(alias).checks[-1] == "streams"


@pytest.mark.parametrize("alias", PG)
def test_a_missing_stream_fails_the_restore(alias: str, schema: None, remote_dir: Path) -> None:
    result = backup_database(alias, jobs=2)
    before = everything()
    (remote_dir / "db" / naming.stream_name(result.name, 1)).unlink()
    with pytest.raises(Exception):
        restore_database(alias, jobs=2)
    assert everything() == before


@pytest.mark.parametrize("value", ["0", "-1", "abc", "1.5", "65"])
@pytest.mark.parametrize("alias", PG)
def test_bad_jobs_is_one_line_and_writes_nothing(alias: str, value: str, remote_dir: Path) -> None:
    for command in ("dbbackup", "dbrestore"):
        extra = ("--noinput",) if command == "dbrestore" else ()
        with pytest.raises(CommandError) as caught:
            call_command(command, "-d", alias, f"--jobs={value}", *extra)
        assert str(caught.value) == (f"--jobs must be a whole number from 1 to 64, not {value!r}")
    assert remote_files(remote_dir) == []


def test_jobs_setting_is_checked(drc_config: Any) -> None:
    for bad in (0, -3, 65):
        drc_config(JOBS=bad)
        assert [p.id for p in validate() if p.id.endswith("E096")] == ["django_rclone_celery.E096"]
    drc_config(JOBS="2")
    assert any(p.id.endswith("E003") and "JOBS" in p.msg for p in validate())
    drc_config(JOBS=4)
    assert not [p for p in validate() if "JOBS" in p.msg]


@pytest.mark.parametrize("alias", PG)
def test_retention_deletes_a_parallel_backups_streams(
    alias: str, schema: None, remote_dir: Path
) -> None:
    backup_database(alias, jobs=2)
    newest = backup_database(alias, jobs=2)
    cleanup_backups(alias, keep=1)
    assert remote_files(remote_dir) == sorted(
        [f"db/{newest.name}", f"db/{naming.manifest_name(newest.name)}"]
        + [f"db/{naming.stream_name(newest.name, i)}" for i in range(2)]
    )


@pytest.mark.django_db(transaction=True)
def test_jobs_on_sqlite_runs_one_stream(remote_dir: Path, caplog: Any) -> None:
    with caplog.at_level("WARNING", logger="django_rclone_celery"):
        result = backup_database("default", jobs=3)
    assert "--jobs 3: sqlite dumps in one stream" in caplog.text
    manifest = json.loads((remote_dir / "db" / naming.manifest_name(result.name)).read_text())
    assert manifest["streams"] == []
    assert manifest["version"] == 1
    restore_database("default", jobs=3)


@pytest.mark.parametrize("alias", PG)
def test_dump_args_keep_a_backup_in_one_stream(
    alias: str, schema: None, remote_dir: Path, drc_config: Any, caplog: Any
) -> None:
    """The streams could not honour what DUMP_ARGS leave out: such an alias dumps one stream."""
    drc_config(DATABASE_OPTIONS={alias: {"DUMP_ARGS": ["--exclude-table-data=par_big"]}})
    with caplog.at_level("WARNING", logger="django_rclone_celery"):
        result = backup_database(alias, jobs=2)
    assert f"--jobs 2: {alias} has DUMP_ARGS, so it dumps in one stream" in caplog.text
    manifest = json.loads((remote_dir / "db" / naming.manifest_name(result.name)).read_text())
    assert manifest["streams"] == []
    restore_database(alias, jobs=2)
    assert sql("SELECT count(*) FROM par_big", alias=alias) == [(0,)]


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("alias", PG)
def test_sigkill_during_a_parallel_backup_publishes_nothing(
    alias: str, schema: None, remote_dir: Path, drc_config: Any, tmp_path: Path
) -> None:
    from tests.helpers.kills import kill_mid_stream, secret_dirs

    drc_config(
        LOCK_URL=f"file://{tmp_path}/locks",
        RCLONE_FLAGS=["--bwlimit", "1M", "--buffer-size", "0"],
    )
    name = connections[alias].settings_dict["NAME"]
    for i, delay in enumerate((0.1, 0.6, 1.5)):
        problems = kill_mid_stream(
            ("dbbackup", "-d", alias, "--jobs", "2"), "rcat", tmp_path / f"k{i}.log", delay
        )
        assert problems == []
        assert secret_dirs(tmp_path / "tmp") == []
        assert list_backups(alias) == []
        with pytest.raises(BackupNotFound):
            restore_database(alias)
        tools = [
            argv
            for argv in all_cmdlines().values()
            if (b"pg_dump" in argv or b"psql" in argv) and name.encode() in argv
        ]
        assert tools == []
    drc_config(RCLONE_FLAGS=[])
    backup_database(alias, jobs=2)  # the leftovers do not get in the way
    assert len(list_backups(alias)) == 1


def test_stream_rows_are_counted_across_any_chunking() -> None:
    """The stream check counts rows per block however the bytes arrive, and sees a cut."""
    import random

    from django_rclone_celery.parallel.streams import CopyScript, end_line

    stream = (
        b"SET client_encoding = 'UTF8';\nSET DateStyle = ISO;\n"
        b"COPY public.a (x) FROM stdin;\n1\n\\\\.\n3\\\\.\n\\.\n"  # rows ending in an escaped \.
        b"COPY public.b (x) FROM stdin;\n\\.\n"
        b"COPY public.a (x) FROM stdin;\n4\n5\n\\N\n\\.\n" + end_line(1, 2) + b"\n"
    )
    rng = random.Random(7)
    for _ in range(200):
        check = CopyScript(1, 2, 3)
        pos = 0
        while pos < len(stream):
            size = rng.randint(1, 12)
            check.feed(memoryview(stream[pos : pos + size]))
            pos += size
        assert check.problem() is None
        assert check.rows == [3, 0, 3]
    cut = CopyScript(1, 2, 3)
    cut.feed(stream[:-20])
    assert "cut short" in (cut.problem() or "")
    wrong = CopyScript(1, 2, 2)
    wrong.feed(stream)
    assert wrong.problem() == "holds 3 tables or ranges, its manifest says 2"


@pytest.mark.django_db(databases=["default", "pg"])
def test_tasks_take_jobs_at_the_door() -> None:
    from django_rclone_celery.registry import problems

    for task in ("db_backup", "db_restore", "portable_backup"):
        assert problems(task, {"database": "pg", "jobs": 2}) == []
        assert problems(task, {"database": "pg", "jobs": 0}) == [
            "jobs: 0 is not a whole number of at least 1"
        ]


def _rewrite(data: bytes, kind: str) -> bytes:
    """``data`` compressed as a backup of compression ``kind`` holds it."""
    from django_rclone_celery.compression import compressor

    pack = compressor(kind, 3, None)  # type: ignore[arg-type]
    return data if pack is None else bytes(pack.feed(memoryview(data))) + pack.finish()


def _unpack(data: bytes, kind: str) -> bytes:
    from django_rclone_celery.compression import decompressor

    unpack = decompressor(kind)  # type: ignore[arg-type]
    return data if unpack is None else bytes(unpack.feed(memoryview(data))) + unpack.finish()


@pytest.mark.parametrize("alias", PG)
def test_a_stream_cut_before_its_end_line_is_refused_though_its_checksum_matches(
    alias: str, schema: None, remote_dir: Path
) -> None:
    """The restore trusts the manifest's checksum for the rows, and still checks each end.

    The stream is cut after its last block, so every row it holds is whole and
    psql loads it without complaint; its manifest entry is made to match.
    """
    import hashlib

    result = backup_database(alias, jobs=2)
    before = everything()
    manifest_path = remote_dir / "db" / (result.name + naming.MANIFEST_SUFFIX)
    manifest = json.loads(manifest_path.read_text())
    entry = manifest["streams"][1]
    path = remote_dir / "db" / entry["name"]
    plain = _unpack(path.read_bytes(), manifest["compression"])
    body, _, last = plain.rstrip(b"\n").rpartition(b"\n")
    assert last.startswith(b"-- end of stream")
    cut = _rewrite(body + b"\n", manifest["compression"])
    path.write_bytes(cut)
    entry.update(size=len(cut), sha256=hashlib.sha256(cut).hexdigest())
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(InvalidBackup, match=r"stream 1 of backup .*\(cut short\)"):
        restore_database(alias, jobs=2)
    assert everything() == before
    assert staging_leftovers(alias) == []


@pytest.fixture
def pg_owner(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The ``pg`` alias pointed at a database of its own, owned by a role with
    CREATEDB and no superuser rights, as many hosted databases are."""
    import os

    suffix = os.environ.get("DRC_TEST_DB_SUFFIX", "")
    role, name = f"drc_owner{suffix}", f"drc_owned{suffix}"

    def clean() -> None:
        with connections["pg"].cursor() as cursor:
            for db in (name, f"{name}__temp", f"{name}__old"):
                cursor.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            cursor.execute(f"DROP ROLE IF EXISTS {role}")

    clean()
    with connections["pg"].cursor() as cursor:
        cursor.execute(f"CREATE ROLE {role} LOGIN CREATEDB NOSUPERUSER")
        cursor.execute(f'CREATE DATABASE "{name}" OWNER {role}')
    connections["pg"].close()
    monkeypatch.setitem(connections.settings["pg"], "USER", role)
    monkeypatch.setitem(connections.settings["pg"], "NAME", name)
    yield role
    connections["pg"].close()
    monkeypatch.undo()
    connections["pg"].close()
    clean()


@pytest.mark.django_db(transaction=True, databases=["default", "pg"])
def test_a_parallel_restore_by_the_databases_owner_needs_no_superuser(
    pg_owner: str, remote_dir: Path
) -> None:
    """Staging, the streams, the indexes, the swap and the replaced copy's drop all
    work as the database's owner."""
    sql(
        "CREATE TABLE own_a (id bigserial PRIMARY KEY, note text NOT NULL)",
        "CREATE TABLE own_b (id bigserial PRIMARY KEY, a_id bigint REFERENCES own_a (id), "
        "v int CHECK (v >= 0))",
        "CREATE INDEX own_b_v ON own_b (v)",
        "INSERT INTO own_a (note) SELECT md5(g::text) FROM generate_series(1, 20000) g",
        "INSERT INTO own_b (a_id, v) SELECT g, g % 97 FROM generate_series(1, 20000) g",
        "CREATE VIEW own_view AS SELECT v, count(*) AS n FROM own_b GROUP BY v",
    )

    def state() -> list[Any]:
        connections["pg"].close()
        return [
            sql("SELECT * FROM own_a ORDER BY id"),
            sql("SELECT * FROM own_b ORDER BY id"),
            sql("SELECT * FROM own_view ORDER BY v"),
            sql("SELECT last_value FROM own_a_id_seq"),
            sql("SELECT indexdef FROM pg_indexes WHERE tablename LIKE 'own_%' ORDER BY 1"),
            sql(
                "SELECT current_user, pg_get_userbyid(datdba) FROM pg_database "
                "WHERE datname = current_database()"
            ),
        ]

    result = backup_database("pg", jobs=2)
    assert result.name
    before = state()
    assert before[-1] == [(pg_owner, pg_owner)]
    sql("DELETE FROM own_b WHERE id > 10", "DROP INDEX own_b_v")
    restore_database("pg", jobs=2)
    assert state() == before
    assert staging_leftovers("pg") == []


def test_a_streams_end_is_found_across_any_chunking() -> None:
    import random

    from django_rclone_celery.parallel.streams import StreamEnd, end_line

    stream = b"COPY public.a (x) FROM stdin;\n1\n\\.\n" + end_line(0, 2) + b"\n"
    rng = random.Random(3)
    for _ in range(100):
        end = StreamEnd(0, 2)
        pos = 0
        while pos < len(stream):
            size = rng.randint(1, 9)
            end.feed(stream[pos : pos + size])
            pos += size
        assert end.problem() is None
    for cut in (stream[:-1], stream[:-10], stream[:30], b""):
        end = StreamEnd(0, 2)
        end.feed(cut)
        assert "cut short" in (end.problem() or "")
    other = StreamEnd(1, 2)
    other.feed(stream)
    assert "cut short" in (other.problem() or "")


@pytest.mark.parametrize("alias", PG)
def test_restores_back_to_back_while_the_server_drops_the_replaced_copy(
    alias: str, schema: None, remote_dir: Path
) -> None:
    """The swap leaves the replaced copy's drop to the server; the next restore's
    staging waits for a drop still running, and each restore is exact."""
    backup_database(alias, jobs=2)
    before = everything()
    for jobs in (2, 1, 2):
        damage()
        restore_database(alias, jobs=jobs)  # the last one's drop may still run
    assert everything() == before
    assert staging_leftovers(alias) == []


ODD = {
    '"Par Space"': '(id int PRIMARY KEY, "order" text, "user" int)',
    '"par""quote"': "(id int PRIMARY KEY, v text)",
    '"pär_ü"': "(id int PRIMARY KEY, v text)",
}


@pytest.fixture
def odd_tables(schema: None) -> Iterator[None]:
    for name, columns in ODD.items():
        sql(f"DROP TABLE IF EXISTS {name}", f"CREATE TABLE {name} {columns}")
    sql(
        "INSERT INTO \"Par Space\" SELECT g, 'o' || g, g FROM generate_series(1, 700) g",
        'INSERT INTO "par""quote" SELECT g, E\'a\\tb\' FROM generate_series(1, 300) g',
        "INSERT INTO \"pär_ü\" SELECT g, 'ü' FROM generate_series(1, 200) g",
    )
    yield
    connections["pg"].close()
    for name in ODD:
        sql(f"DROP TABLE IF EXISTS {name}")


def _counts() -> dict[str, int]:
    connections["pg"].close()
    return get_connector("pg").table_counts()


@pytest.mark.django_db(transaction=True, databases=["default", "pg"])
@pytest.mark.parametrize("jobs", [2, 3])
def test_quoted_and_non_ascii_names_round_trip_with_exact_counts(
    jobs: int, odd_tables: None, remote_dir: Path
) -> None:
    """Plain names (quoted as a whole, spaces inside) go through ``\\copy`` and the
    server's tags; a doubled quote or a non-ASCII name through SQL and the scan."""
    counts = _counts()
    assert counts["public.Par Space"] == 700
    result = backup_database("pg", jobs=jobs)
    manifest = json.loads((remote_dir / "db" / naming.manifest_name(result.name)).read_text())
    assert manifest["row_counts"] == counts
    assert all("rows" in stream for stream in manifest["streams"])
    verify_backup("pg")  # reads every stream, counts its rows and compares them
    before = [sql(f"SELECT * FROM {name} ORDER BY id") for name in ODD]
    sql(*(f"DELETE FROM {name} WHERE id > 5" for name in ODD))
    restore_database("pg", jobs=jobs)
    connections["pg"].close()
    assert [sql(f"SELECT * FROM {name} ORDER BY id") for name in ODD] == before
    assert _counts() == counts


@pytest.mark.django_db(transaction=True, databases=["default", "pg"])
def test_counts_masked_in_psqls_output_are_taken_in_sql(
    schema: None, remote_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A password that reads like a row count is masked in psql's stderr, tags and all:
    the blocks whose tags it hid are counted in SQL, in the dump's snapshot."""
    counts = _counts()
    assert counts["public.par_a"] == 100
    monkeypatch.setitem(connections.settings["pg"], "PASSWORD", "100")  # trust: not checked
    connections["pg"].close()
    result = backup_database("pg", jobs=2)
    manifest = json.loads((remote_dir / "db" / naming.manifest_name(result.name)).read_text())
    assert manifest["row_counts"] == counts
    assert any("rows" not in stream for stream in manifest["streams"])
    verify_backup("pg")


def test_a_stream_of_plain_names_is_tagged_and_any_other_is_not() -> None:
    from django_rclone_celery.parallel.dump import stream_command
    from django_rclone_celery.parallel.streams import Piece

    connector = get_connector("pg")
    plain = Piece("public", "t", 'public."T x"', 'id, "order"', first=0, end=4)
    argv = stream_command(connector, "snap", "UTF8", [plain], 0, 1).argv  # type: ignore[arg-type]
    assert "-q" not in argv
    assert argv[argv.index("-c") + 1] == "\\o /dev/stderr"
    assert (
        '\\copy (SELECT id, "order" FROM ONLY public."T x" WHERE ctid >= \'(0,0)\'::tid '
        "AND ctid < '(4,0)'::tid) TO pstdout"
    ) in argv
    assert '\\echo \'COPY public."T x" (id, "order") FROM stdin;\'' in argv
    assert "\\echo '\\\\.'" in argv
    for odd in ('public."a""b"', 'public."tå"', 'public."a\nb"'):
        argv = stream_command(
            connector,
            "snap",
            "UTF8",
            [plain, Piece("public", "x", odd, "id")],
            0,
            1,  # type: ignore[arg-type]
        ).argv
        assert "-q" in argv
        assert not any(a.startswith(("\\copy", "\\o", "\\echo")) for a in argv)
