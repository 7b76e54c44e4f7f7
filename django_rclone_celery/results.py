"""Result values returned by the operations; ``as_dict()`` is JSON-ready for Celery."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


class _Result:
    def as_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))  # type: ignore[call-overload,no-any-return]


@dataclass(frozen=True, kw_only=True)
class BackupResult(_Result):
    database: str
    path: str
    name: str
    size: int
    sha256: str
    compression: str
    format: str
    duration: float
    run_id: str
    operation: str = "db_backup"
    status: str = "succeeded"
    cleaned: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class RestoreResult(_Result):
    database: str
    from_database: str  # whose backup it was: ``database`` unless restored from another alias
    path: str
    name: str
    size: int
    compression: str
    format: str
    duration: float
    run_id: str
    verified: bool
    operation: str = "db_restore"
    status: str = "succeeded"


@dataclass(frozen=True, kw_only=True)
class VerifyResult(_Result):
    """A backup that passed verification. ``checks`` names what was checked
    (``size``, ``sha256``, ``zstd``, ``pg_restore``, ``end marker``, ``portable``,
    ``restore``); ``compared`` what the trial restore's copy matched in its manifest
    (``inventory``, ``row counts``); ``notes`` says what could not be, and why."""

    database: str
    path: str
    name: str
    size: int  # bytes read
    sha256: str  # of the bytes read
    compression: str
    format: str
    verified: bool  # size and sha256 matched the manifest
    restored: bool  # a trial restore into a staged copy succeeded (and was dropped)
    restore_seconds: float | None = None  # time to restore: the trial restore's load
    # What the restored copy was compared with its manifest on: "inventory", "row counts".
    compared: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    duration: float
    run_id: str
    operation: str = "db_verify"
    status: str = "succeeded"


@dataclass(frozen=True, kw_only=True)
class BackupInfo(_Result):
    database: str
    name: str
    path: str
    size: int
    created: datetime
    modified: datetime
    has_manifest: bool


@dataclass(frozen=True, kw_only=True)
class CleanupResult(_Result):
    database: str
    kept: list[str]
    deleted: list[str]
    run_id: str
    operation: str = "db_cleanup"
    status: str = "succeeded"
    # Kept name -> the retention rules that keep it ("last", "daily", ...; see retention.py).
    reasons: dict[str, list[str]] = field(default_factory=dict)
    # True when nothing was deleted: ``deleted`` is what a real run would delete.
    dry_run: bool = False


@dataclass(frozen=True, kw_only=True)
class MediaResult(_Result):
    operation: str  # "media_backup" or "media_restore"
    source: str
    destination: str
    duration: float
    run_id: str
    database: str | None = None
    status: str = "succeeded"
    # Files the sync copied (new at the destination), replaced and deleted, and the bytes copied.
    copied: int = 0
    replaced: int = 0
    deleted: int = 0
    bytes: int = 0
    files: int = 0  # files at the destination afterwards
    size: int = 0  # their bytes
    point: str | None = None  # the media point written (backup) or restored (restore --at)
    cleaned: list[str] = field(default_factory=list)  # points removed by retention (clean)


@dataclass(frozen=True, kw_only=True)
class MediaPointInfo(_Result):
    """One kept state of the media (``listbackups --media``)."""

    name: str
    time: datetime
    files: int
    size: int


@dataclass(frozen=True, kw_only=True)
class MediaCleanupResult(_Result):
    kept: list[str]
    deleted: list[str]  # points
    versions_deleted: int  # old file versions no kept point needs any more
    bytes_freed: int
    run_id: str
    reasons: dict[str, list[str]] = field(default_factory=dict)
    dry_run: bool = False
    operation: str = "media_cleanup"
    status: str = "succeeded"
