"""What parallel PostgreSQL backups and restores cost (#19.4): real PostgreSQL, rclone, zstd.

The manifest's row counts of streamed tables are the rows the streams carried
(no second scan of the data to count them); the restore decompresses in small
slices, so what one loading stream holds does not grow with a 1 MiB read;
``pipe_into`` can leave the hashing to its caller.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zstandard
from django.db import connections

from django_rclone_celery import naming, process
from django_rclone_celery.compression import ZstdCompress, ZstdDecompress
from django_rclone_celery.operations import backup_database, restore_database
from django_rclone_celery.parallel.load import READ_SIZE, SLICE, unpacked
from tests.helpers.databases import db_params

PG = db_params("pg")
BIG_ROWS = 120_000  # ~16 MB on disk: cut into ctid ranges


def sql(*statements: str) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    with connections["pg"].cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
            if cursor.description:
                rows = [tuple(r) for r in cursor.fetchall()]
    return rows


@pytest.fixture
def tables() -> Iterator[None]:
    sql(
        "DROP TABLE IF EXISTS cost_big, cost_small",
        "CREATE TABLE cost_big (id bigint PRIMARY KEY, a text, b text)",
        "CREATE TABLE cost_small (id int PRIMARY KEY, v text)",
        f"INSERT INTO cost_big SELECT g, md5(g::text), repeat(md5(random()::text), 2) "
        f"FROM generate_series(1, {BIG_ROWS}) g",
        "INSERT INTO cost_small SELECT g, E'a\\nb' FROM generate_series(1, 777) g",
        "DELETE FROM cost_big WHERE id % 13 = 0",  # rows gone from the middle of ranges
        "ANALYZE",
    )
    yield
    connections["pg"].close()
    sql("DROP TABLE IF EXISTS cost_big, cost_small")
    connections["pg"].close()


@pytest.mark.parametrize("alias", PG)
def test_row_counts_are_the_streams_rows_and_the_tables_rows(
    alias: str, tables: None, remote_dir: Path
) -> None:
    expected = {
        "public.cost_big": BIG_ROWS - BIG_ROWS // 13,
        "public.cost_small": 777,
    }
    result = backup_database(alias, jobs=2)
    manifest = json.loads((remote_dir / "db" / naming.manifest_name(result.name)).read_text())
    carried: dict[str, int] = {}
    big_streams = 0
    for stream in manifest["streams"]:
        for piece, rows in zip(stream["pieces"], stream["rows"], strict=True):
            key = f"{piece['schema']}.{piece['table']}"
            carried[key] = carried.get(key, 0) + rows
        big_streams += any(p["table"] == "cost_big" for p in stream["pieces"])
    assert big_streams == 2  # the big table was cut, so its count adds ranges up
    for table, rows in expected.items():
        assert manifest["row_counts"][table] == rows == carried[table]
    assert set(manifest["row_counts"]) == set(carried)

    sql("DELETE FROM cost_small WHERE id > 5")
    connections["pg"].close()
    restore_database(alias, jobs=2)
    connections["pg"].close()
    assert sql("SELECT count(*) FROM cost_small")[0][0] == 777
    assert sql("SELECT count(*) FROM cost_big")[0][0] == expected["public.cost_big"]


def copy_text(rows: int) -> bytes:
    return b"".join(
        b"%d\t%s\t\\N\n" % (i, hashlib.md5(str(i).encode()).hexdigest().encode() * 2)
        for i in range(rows)
    )


def test_the_restore_decompresses_in_slices() -> None:
    text = copy_text(60_000)  # ~4.5 MB of COPY text
    packer = ZstdCompress(2, 0)
    packed = packer.feed(memoryview(text)) + packer.finish()
    unpack = ZstdDecompress()
    whole = ZstdDecompress().feed(packed[:READ_SIZE])
    pieces: list[bytes] = []
    for start in range(0, len(packed), READ_SIZE):
        pieces += unpacked(packed[start : start + READ_SIZE], unpack)
    assert b"".join(pieces) + unpack.finish() == text
    # One read decompressed whole is several times what one slice gives.
    biggest = max(len(p) for p in pieces)
    assert biggest <= 8 * SLICE < len(whole)


def test_a_cut_zstd_stream_is_still_refused_in_slices() -> None:
    text = copy_text(20_000)
    packer = ZstdCompress(2, 0)
    packed = packer.feed(memoryview(text)) + packer.finish()
    unpack = ZstdDecompress()
    out = b"".join(unpacked(packed[:-20], unpack))
    assert text.startswith(out)
    assert out != text
    with pytest.raises(zstandard.ZstdError):
        unpack.finish()


def test_pipe_into_without_digest_leaves_the_hashing_to_its_caller(tmp_path: Path) -> None:
    target = tmp_path / "out"
    copy = "import sys, shutil; shutil.copyfileobj(sys.stdin.buffer, open(sys.argv[1], 'wb'))"
    sink = process.Command(argv=(sys.executable, "-c", copy, str(target)))

    def chunks() -> Iterator[bytes]:
        yield b"a" * 70_000
        yield b"b" * 10

    stats = process.pipe_into(sink, chunks, digest=False)
    assert stats.sha256 == ""
    assert stats.bytes_in == 70_010
    assert target.read_bytes() == b"a" * 70_000 + b"b" * 10
    hashed = process.pipe_into(sink, chunks)
    assert hashed.sha256 == hashlib.sha256(b"a" * 70_000 + b"b" * 10).hexdigest()
