"""Remotes beyond a local directory: an S3 API on loopback (moto) and an rclone crypt remote.

Both are configured purely through ``RCLONE_CONFIG_<NAME>_*`` environment
variables, as a container deployment would do it: no rclone.conf exists.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from django_rclone_celery import process
from django_rclone_celery.exceptions import RcloneError
from django_rclone_celery.operations import backup_database, list_backups, restore_database
from django_rclone_celery.process import Command
from tests.helpers.databases import damage, db_params, populate, snapshot, staging_leftovers
from tests.helpers.network import free_port
from tests.helpers.remotes import S3Remote, remote_files


@pytest.mark.parametrize("alias", db_params("default", "pg", "gis", "maria"))
def test_round_trip_through_s3(alias: str, s3_remote: S3Remote) -> None:
    populate(alias)
    before = snapshot(alias)
    result = backup_database(alias)
    assert s3_remote.keys() == [
        f"backups/db/{result.name}",
        f"backups/db/{result.name}.manifest.json",
    ]
    damage(alias)

    restored = restore_database(alias)

    assert restored.verified
    assert snapshot(alias) == before
    assert staging_leftovers(alias) == []
    assert [b.name for b in list_backups(alias)] == [result.name]


@pytest.mark.django_db(transaction=True, databases=["default", "pg"])
def test_s3_object_is_the_uploaded_stream(s3_remote: S3Remote) -> None:
    populate("pg")
    result = backup_database("pg")
    body = s3_remote.s3.client().get_object(
        Bucket=s3_remote.bucket, Key=f"backups/db/{result.name}"
    )
    data = body["Body"].read()
    import hashlib

    assert len(data) == result.size
    assert hashlib.sha256(data).hexdigest() == result.sha256


@pytest.mark.django_db(transaction=True, databases=["default"])
def test_unreachable_remote_fails_clearly(drc_config: Any) -> None:
    """An S3 endpoint on a closed port: an RcloneError marked transient, nothing left open."""
    closed = free_port()
    os.environ["RCLONE_CONFIG_DEAD_TYPE"] = "s3"
    os.environ["RCLONE_CONFIG_DEAD_PROVIDER"] = "Other"
    os.environ["RCLONE_CONFIG_DEAD_ENDPOINT"] = f"http://127.0.0.1:{closed}"
    os.environ["RCLONE_CONFIG_DEAD_ACCESS_KEY_ID"] = "x"
    os.environ["RCLONE_CONFIG_DEAD_SECRET_ACCESS_KEY"] = "y"
    try:
        drc_config(
            REMOTE="dead:bucket/backups",
            RCLONE_FLAGS=["--retries", "1", "--low-level-retries", "1", "--contimeout", "2s"],
        )
        populate("default")
        with pytest.raises(RcloneError) as caught:
            backup_database("default")
    finally:
        for key in list(os.environ):
            if key.startswith("RCLONE_CONFIG_DEAD_"):
                del os.environ[key]
    assert caught.value.transient
    assert "connection refused" in str(caught.value).lower()
    assert caught.value.argv[0].endswith("rclone")


# crypt ---------------------------------------------------------------------
SECRET_MARKER = "Ünïcødé"  # appears in the test data; must not appear in stored bytes


@pytest.fixture
def crypt_remote(tmp_path: Path, drc_config: Any, rclone_bin: str) -> Iterator[Path]:
    """``secret:`` = rclone crypt over a local directory, password only in the environment."""
    store = tmp_path / "ciphertext"
    store.mkdir()
    # rclone obscure reads the password from stdin with "-": it never sits on argv.
    obscured = process.run(Command(argv=(rclone_bin, "obscure", "-")), input=b"drc crypt pass\n")
    env = {
        "RCLONE_CONFIG_SECRET_TYPE": "crypt",
        "RCLONE_CONFIG_SECRET_REMOTE": str(store),
        "RCLONE_CONFIG_SECRET_PASSWORD": obscured.stdout.decode().strip(),
    }
    os.environ.update(env)
    drc_config(REMOTE="secret:backups")
    try:
        yield store
    finally:
        for key in env:
            os.environ.pop(key, None)


@pytest.mark.django_db(transaction=True, databases=["default"])
def test_crypt_remote_round_trip_stores_only_ciphertext(
    crypt_remote: Path, drc_config: Any
) -> None:
    # No compression: the dump is plain SQL, so any plaintext would show.
    drc_config(COMPRESSION="none")
    populate("default")
    before = snapshot("default")
    result = backup_database("default")
    damage("default")

    stored = remote_files(crypt_remote)
    assert len(stored) == 2  # the backup and its manifest, names encrypted
    for relative in stored:
        assert "default" not in relative
        assert "manifest" not in relative
        data = (crypt_remote / relative).read_bytes()
        assert data.startswith(b"RCLONE\x00\x00")  # rclone crypt's file header
        for plaintext in (b"CREATE TABLE", SECRET_MARKER.encode(), b"testapp_book", b"sqlite"):
            assert plaintext not in data
    assert [b.name for b in list_backups("default")] == [result.name]  # decrypted listing

    restored = restore_database("default")

    assert restored.verified
    assert snapshot("default") == before


@pytest.mark.django_db(transaction=True, databases=["default"])
def test_s3_manifestless_backup_and_missing_name(s3_remote: S3Remote, rclone_bin: str) -> None:
    """On S3 a missing manifest or object reads as "not found" just as on a local remote."""
    from django.db import connections

    from django_rclone_celery.exceptions import BackupNotFound

    populate("default")
    before = snapshot("default")
    name = "default-2024-01-15-120000.sqlite3"
    process.pipe(
        Command(argv=("sqlite3", connections["default"].settings_dict["NAME"], ".dump")),
        Command(argv=(rclone_bin, "rcat", f"{s3_remote.remote}/db/{name}")),
    )
    damage("default")
    with pytest.raises(BackupNotFound, match=r"default-2000-01-01-000000\.sqlite3"):
        restore_database("default", input_path="default-2000-01-01-000000.sqlite3")

    restored = restore_database("default")

    assert restored.name == name
    assert not restored.verified
    assert snapshot("default") == before
    assert s3_remote.keys() == [f"backups/db/{name}"]
