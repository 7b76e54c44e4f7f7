"""Media history: the points a media backup leaves, and where each point's files live.

Layout beside the mirror (``REMOTE/MEDIA_BACKUP_DIR``, django-rclone's place)::

    REMOTE/<MEDIA_BACKUP_DIR>-history/
        <stamp>/...                       what the backup at <stamp> replaced or deleted
                                          in the mirror (rclone --backup-dir)
        <stamp>-<files>-<bytes>.json.gz   the point: every file the media held then

A file's content at point P is the copy in the first version folder newer
than P that holds that path (the backup that first replaced or deleted it
moved it there), or else the mirror's copy, unchanged since P. So no file is
stored twice, and a version folder without a point (a run killed between
its sync and its record) still serves the older points. Files and bytes are
in the point's name, so listing the points is one directory listing.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone

from .exceptions import BackupNotFound, InvalidBackup

HISTORY_SUFFIX = "-history"
STAMP_FORMAT = "%Y-%m-%dT%H%M%S.%fZ"
_STAMP = r"\d{4}-\d\d-\d\dT\d{6}\.\d{6}Z"
STAMP = re.compile(_STAMP)
POINT = re.compile(rf"(?P<stamp>{_STAMP})-(?P<files>\d+)-(?P<size>\d+)\.json\.gz")
RECORD_FORMAT = 1


def stamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime(STAMP_FORMAT)


def parse_stamp(text: str) -> datetime:
    return datetime.strptime(text, STAMP_FORMAT).replace(tzinfo=timezone.utc)


@dataclass(frozen=True, kw_only=True)
class Point:
    """One kept state of the media."""

    name: str  # the stamp, e.g. 2026-12-05T232512.123456Z
    created: datetime
    files: int
    size: int

    @property
    def record(self) -> str:
        return f"{self.name}-{self.files}-{self.size}.json.gz"

    @classmethod
    def from_record(cls, record: str) -> Point | None:
        match = POINT.fullmatch(record)
        if match is None:
            return None
        return cls(
            name=match["stamp"],
            created=parse_stamp(match["stamp"]),
            files=int(match["files"]),
            size=int(match["size"]),
        )


def points(names: Iterable[str]) -> list[Point]:
    """The points among a history directory's file names, newest first."""
    found = [p for p in (Point.from_record(n) for n in names) if p is not None]
    return sorted(found, key=lambda p: p.name, reverse=True)


def encode_files(files: Mapping[str, int]) -> str:
    """The costly part of a record (the file list), which :func:`encode` takes ready-made."""
    return json.dumps(files, ensure_ascii=False, sort_keys=True)


def encode(
    files: Mapping[str, int], counts: Mapping[str, int], *, encoded: str | None = None
) -> bytes:
    """A point's record; ``encoded`` is ``encode_files(files)`` if already made."""
    # As json.dumps writes {"format": ..., "files": ..., **counts}.
    text = f'{{"format": {RECORD_FORMAT}, "files": {encoded or encode_files(files)}'
    text += "".join(f", {json.dumps(key)}: {json.dumps(value)}" for key, value in counts.items())
    # mtime=0: the same state gives the same bytes.
    # surrogateescape: a file name that is not UTF-8 keeps its bytes, as rclone prints them.
    data = (text + "}").encode("utf-8", "surrogateescape")
    return gzip.compress(data, compresslevel=1, mtime=0)


def decode(data: bytes, name: str) -> dict[str, int]:
    """A point's ``path -> size``; refuses what is not a point record."""
    try:
        body = json.loads(gzip.decompress(data).decode("utf-8", "surrogateescape"))
        files = body["files"]
        if body.get("format") != RECORD_FORMAT or not isinstance(files, dict):
            raise ValueError("unknown format")
        return {str(path): int(size) for path, size in files.items()}
    except (OSError, ValueError, KeyError, TypeError, EOFError) as exc:
        raise InvalidBackup(f"media point {name!r} is unreadable: {exc}") from exc


def select(kept: list[Point], at: str | datetime) -> Point:
    """The point ``at`` names: its stamp, "latest", or the newest point at or before a time.

    A time without a zone is UTC.
    """
    if not kept:
        raise BackupNotFound("there are no media points: run a media backup first")
    if isinstance(at, str):
        text = at.strip()
        if text == "latest":
            return kept[0]
        for point in kept:
            if point.name == text:
                return point
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T"))
        except ValueError:
            raise BackupNotFound(
                f"no media point {at!r}: give a point's name from listbackups --media, "
                "an ISO time such as 2026-01-31T12:00 (UTC), or 'latest'"
            ) from None
    else:
        moment = at
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    for point in kept:  # newest first
        if point.created <= moment:
            return point
    raise BackupNotFound(
        f"no media point at or before {moment.isoformat()}; the oldest is {kept[-1].name}"
    )


def locate(
    point: str, files: Iterable[str], folders: Mapping[str, set[str]]
) -> dict[str, str | None]:
    """Where each of ``point``'s files is kept: a version folder's stamp, or None (the mirror).

    ``folders`` maps each version folder's stamp to the paths it holds.
    """
    later = sorted(name for name in folders if name > point)
    where: dict[str, str | None] = {}
    for path in files:
        where[path] = next((name for name in later if path in folders[name]), None)
    return where
