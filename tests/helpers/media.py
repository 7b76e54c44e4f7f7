"""Media trees and the remotes media go to, for the media history tests."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from django_rclone_celery import process
from django_rclone_celery.process import Command
from tests.helpers.remotes import MotoS3

REMOTE_KINDS = ["local", "crypt-s3"]

# A first media tree: nested folders, binary and non-ASCII names.
FIRST = {
    "a.txt": b"alpha\n",
    "docs/b.txt": b"bravo " * 100,
    "docs/c.bin": bytes(range(256)) * 8,
    "pics/ünï code.png": b"\x89PNG" + b"0" * 500,
    "keep.txt": b"never changes\n",
}

Listing = dict[str, str]  # path -> sha256


def hashes(root: Path) -> Listing:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def write(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


class Remote:
    """Where the media go, and how to list what is stored there."""

    def __init__(self, kind: str, listing: Callable[[], list[str]]) -> None:
        self.kind = kind
        self.listing = listing


def open_remote(
    request: pytest.FixtureRequest, tmp_path: Path, drc_config: Any, rclone_bin: str
) -> Iterator[Remote]:
    """The body of a ``remote`` fixture with ``params=REMOTE_KINDS``: a local directory,
    or a crypt remote over a bucket on the session's moto S3 (its config in the
    environment until the test ends)."""
    if request.param == "local":
        path = tmp_path / "remote"
        path.mkdir()
        drc_config(REMOTE=str(path))
        yield Remote(
            "local",
            lambda: sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()),
        )
        return
    moto: MotoS3 = request.getfixturevalue("moto_s3")
    bucket = f"drc-media-{uuid.uuid4().hex[:12]}"
    moto.client().create_bucket(Bucket=bucket)
    obscured = process.run(Command(argv=(rclone_bin, "obscure", "-")), input=b"media pass\n")
    env = {
        "RCLONE_CONFIG_MEDIASECRET_TYPE": "crypt",
        "RCLONE_CONFIG_MEDIASECRET_REMOTE": f"{moto.remote}:{bucket}/store",
        "RCLONE_CONFIG_MEDIASECRET_PASSWORD": obscured.stdout.decode().strip(),
    }
    os.environ.update(env)
    drc_config(REMOTE="mediasecret:backups")

    def keys() -> list[str]:
        listed = moto.client().list_objects_v2(Bucket=bucket)
        return sorted(item["Key"] for item in listed.get("Contents", []))

    try:
        yield Remote("crypt-s3", keys)
    finally:
        for key in env:
            os.environ.pop(key, None)
