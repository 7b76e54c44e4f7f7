"""Backup object names: render them from the template, parse them back.

A name belongs to an alias when the template, with that alias filled in,
matches it and its ``{datetime}`` part parses with ``DB_DATE_FORMAT``. That
keeps ``default`` from claiming ``default-eu``'s backups. With a
``NAMESPACE``, names start with ``NAMESPACE.``; another project's prefix never
matches, so its backups are neither listed nor deleted here.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from datetime import datetime, timezone

from .conf import Settings

PARTIAL_MARKER = ".partial-"
MANIFEST_SUFFIX = ".manifest.json"
# A parallel backup's data streams: ``<backup>.stream-<i>``, listed only through it.
STREAM_MARKER = ".stream-"


@dataclass(frozen=True)
class ParsedName:
    database: str
    created: datetime
    ext: str


def prefix(settings: Settings) -> str:
    """``"NAMESPACE."``, or nothing: then names are exactly django-rclone's."""
    return f"{settings.namespace}." if settings.namespace else ""


def render(settings: Settings, *, database: str, ext: str, when: datetime) -> str:
    stamp = when.astimezone(timezone.utc).strftime(settings.db_date_format)
    name = settings.db_filename_template.format(database=database, datetime=stamp, ext=ext)
    return prefix(settings) + name


def is_ours(settings: Settings, name: str) -> bool:
    """Whether retention may delete ``name``: it carries this project's namespace.

    Without a namespace every name is ours (django-rclone's behaviour). With
    one, names without a prefix (django-rclone's, or written before the
    namespace was set) stay listed and restorable but are never deleted.
    """
    return name.startswith(prefix(settings))


def is_hidden(name: str) -> bool:
    """Partial uploads, manifests and streams are never backups in their own right."""
    return PARTIAL_MARKER in name or name.endswith(MANIFEST_SUFFIX) or STREAM_MARKER in name


def _pattern(template: str, database: str) -> re.Pattern[str]:
    parts = []
    for literal, field, _, _ in string.Formatter().parse(template):
        parts.append(re.escape(literal))
        if field == "database":
            parts.append(re.escape(database))
        elif field == "datetime":
            parts.append(r"(?P<datetime>[^/]+?)")
        elif field == "ext":
            parts.append(r"(?P<ext>[^/]+)")
    return re.compile("".join(parts) + r"\Z")


def parse(settings: Settings, name: str, database: str) -> ParsedName | None:
    """Parse ``name`` as a backup of ``database``, or return None."""
    if is_hidden(name):
        return None
    ours = prefix(settings)
    if ours and name.startswith(ours):
        name = name[len(ours) :]
    match = _pattern(settings.db_filename_template, database).match(name)
    if not match:
        return None
    try:
        created = datetime.strptime(match["datetime"], settings.db_date_format)
    except ValueError:
        return None
    return ParsedName(database, created.replace(tzinfo=timezone.utc), match["ext"])


def manifest_name(name: str) -> str:
    return name + MANIFEST_SUFFIX


def stream_name(name: str, index: int) -> str:
    """The object of data stream ``index`` of the parallel backup ``name``."""
    return f"{name}{STREAM_MARKER}{index}"


def check_relative(path: str) -> str:
    """Refuse a user-given backup path that could leave the backup directory."""
    from .exceptions import InvalidBackup

    if not path or path.startswith(("/", "\\")) or ":" in path:
        raise InvalidBackup(f"backup path {path!r} must be a name inside the backup directory")
    parts = path.replace("\\", "/").split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise InvalidBackup(f"backup path {path!r} must not contain '..', '.' or empty parts")
    return "/".join(parts)
