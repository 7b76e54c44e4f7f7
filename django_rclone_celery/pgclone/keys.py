"""Dump keys: ``<instance>/<database>/<config>/<timestamp>.dump``, as django-pgclone spells them.

Timestamps are UTC with microseconds, so keys sort by age as plain strings
and a prefix selects the newest match by taking the largest key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

from ..exceptions import BackupNotFound, InvalidBackup

TIMESTAMP_FORMAT = "%Y-%m-%d-%H-%M-%S-%f"
SUFFIX = ".dump"
_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")
_PART = r"[A-Za-z0-9_-]+"
KEY_PATTERN = re.compile(
    rf"(?P<instance>{_PART})/(?P<database>{_PART})/(?P<config>{_PART})/"
    r"(?P<timestamp>\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d-\d{6})\.dump"
)
LOCAL_PREFIX = ":"
RESERVED_LOCAL = frozenset({"pre", "post"})
_LOCAL_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_$-]*")
_IDENTIFIER_MAX = 63


@dataclass(frozen=True)
class DumpKey:
    instance: str
    database: str
    config: str
    created: datetime
    key: str


def part(value: str) -> str:
    """One path component of a key: anything but letters, digits, ``_`` and ``-`` becomes ``_``."""
    return _UNSAFE.sub("_", value)


def make(*, instance: str, database: str, config: str, when: datetime | None = None) -> str:
    when = (when or datetime.now(timezone.utc)).astimezone(timezone.utc)
    stamp = when.strftime(TIMESTAMP_FORMAT)
    return f"{part(instance)}/{part(database)}/{part(config)}/{stamp}{SUFFIX}"


def parse(key: str) -> DumpKey | None:
    match = KEY_PATTERN.fullmatch(key)
    if not match:
        return None
    created = datetime.strptime(match["timestamp"], TIMESTAMP_FORMAT).replace(tzinfo=timezone.utc)
    return DumpKey(match["instance"], match["database"], match["config"], created, key)


def is_key(path: str, *, strict: bool) -> bool:
    """Whether a stored path is a dump. ``strict`` is ``PGCLONE_VALIDATE_DUMP_KEYS``."""
    if strict:
        return parse(path) is not None
    return path.endswith(SUFFIX) and check_path(path) == path


def check_path(text: str) -> str:
    """Refuse a user-given key or prefix that could leave the storage location."""
    if text.startswith(("/", "\\")) or "\\" in text or ":" in text:
        raise InvalidBackup(f"dump key {text!r} must be relative to the storage location")
    if any(piece in (".", "..") for piece in text.split("/")) or "//" in text:
        raise InvalidBackup(f"dump key {text!r} must not contain '.', '..' or empty parts")
    return text


def newest(keys: Iterable[str], prefix: str) -> str:
    """The key itself if it is stored, else the newest key starting with ``prefix``."""
    stored = set(keys)
    if prefix in stored:
        return prefix
    matches = [key for key in stored if key.startswith(prefix)]
    if not matches:
        raise BackupNotFound(f"no dump key matches {prefix!r}; run `pgclone ls` to see them")
    return max(matches)


def local_name(key: str) -> str:
    """The name part of a local key (``:snap`` -> ``snap``), validated."""
    if not key.startswith(LOCAL_PREFIX):
        raise InvalidBackup(f"{key!r} is not a local key; local keys start with ':'")
    name = key[len(LOCAL_PREFIX) :]
    if not _LOCAL_NAME.fullmatch(name) or len(name.encode()) > _IDENTIFIER_MAX:
        raise InvalidBackup(
            f"{key!r} is not a valid local key: use ':' and a database name of letters, "
            f"digits, '_', '$' or '-' (at most {_IDENTIFIER_MAX} bytes)"
        )
    return name
