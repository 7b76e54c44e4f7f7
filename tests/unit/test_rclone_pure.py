"""The rclone transport against the real binary and a local-directory remote."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from django_rclone_celery.exceptions import RcloneError
from django_rclone_celery.rclone import _parse_time, join, split


@pytest.mark.parametrize(
    ("code", "stderr", "transient"),
    [
        (5, "", True),  # rclone: temporary error
        (1, "dial tcp 127.0.0.1:9: connect: connection refused", True),
        (1, "read: connection reset by peer", True),
        (1, "503 Service Unavailable", True),
        (1, "AccessDenied: access denied", False),
        (3, "directory not found", False),
        (4, "object not found", False),
        (7, "fatal error", False),
        (None, "timed out after 5 s", False),
    ],
)
def test_transient_classification(code: int | None, stderr: str, transient: bool) -> None:
    assert RcloneError(("rclone", "rcat"), code, stderr).transient is transient


@pytest.mark.parametrize(
    ("base", "parts", "joined"),
    [
        ("remote:", ("db",), "remote:db"),
        ("remote:bucket", ("db", "x.dump"), "remote:bucket/db/x.dump"),
        ("remote:bucket/", ("/db/",), "remote:bucket/db"),
        ("/srv/backups", ("db",), "/srv/backups/db"),
        ("/srv/backups", ("",), "/srv/backups"),
        ("remote:b", (), "remote:b"),
    ],
)
def test_join(base: str, parts: tuple[str, ...], joined: str) -> None:
    assert join(base, *parts) == joined


@pytest.mark.parametrize(
    ("path", "parent", "name"),
    [
        ("remote:bucket/db/x.dump", "remote:bucket/db", "x.dump"),
        ("remote:x.dump", "remote:", "x.dump"),
        ("remote:/x.dump", "remote:/", "x.dump"),  # absolute on sftp: not the home folder
        ("/srv/backups/db/x.dump", "/srv/backups/db", "x.dump"),
        ("/x.dump", "/", "x.dump"),
        ("x.dump", "", "x.dump"),
    ],
)
def test_split_is_what_join_undoes(path: str, parent: str, name: str) -> None:
    assert split(path) == (parent, name)
    assert join(parent, name) == path if parent else name == path


def test_parse_time_keeps_microseconds_of_nanosecond_stamps() -> None:
    assert _parse_time("2024-01-15T12:00:00.123456789Z") == datetime(
        2024, 1, 15, 12, 0, 0, 123456, tzinfo=timezone.utc
    )
    assert (
        _parse_time("2024-01-15T12:00:00.5+01:00").isoformat() == "2024-01-15T12:00:00.500000+01:00"
    )
    assert _parse_time("2024-01-15T12:00:00Z").tzinfo is not None
