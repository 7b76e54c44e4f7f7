"""What a remote directory of backups holds: one object's entry, and stale partials swept."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from .. import naming
from ..rclone import Entry, Rclone

logger = logging.getLogger("django_rclone_celery")


def stat(rclone: Rclone, path: str) -> Entry | None:
    """The object at ``path``, or None if there is none (``lsjson`` of a file lists it)."""
    base = path.rpartition("/")[2].rpartition(":")[2]
    return next((e for e in rclone.lsjson(path) if e.name == base), None)


def sweep_partials(
    rclone: Rclone, directory: str, entries: list[Entry], older_than: timedelta
) -> list[str]:
    """Delete partial uploads left by killed runs, once they are surely dead."""
    cutoff = datetime.now(timezone.utc) - older_than
    stale = [e.name for e in entries if naming.PARTIAL_MARKER in e.name and e.modified < cutoff]
    if stale:
        logger.info("removing %d stale partial uploads", len(stale))
        rclone.delete_many(directory, stale)
    return stale
