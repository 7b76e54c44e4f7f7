"""Listing and retention of database backups."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from django.db import connections

from .. import naming
from ..conf import Settings, get_settings
from ..rclone import Entry, Rclone, join
from ..results import BackupInfo, CleanupResult
from .run import ProgressCallback, Run

logger = logging.getLogger("django_rclone_celery")


def backup_dir(settings: Settings) -> str:
    return join(settings.remote, settings.db_backup_dir)


def _to_info(
    entry: Entry, parsed: naming.ParsedName, directory: str, manifests: set[str]
) -> BackupInfo:
    return BackupInfo(
        database=parsed.database,
        name=entry.name,
        path=join(directory, entry.name),
        size=entry.size,
        created=parsed.created,
        modified=entry.modified,
        has_manifest=naming.manifest_name(entry.name) in manifests,
    )


def _classify(
    entries: list[Entry], settings: Settings, database: str | None, directory: str
) -> list[BackupInfo]:
    manifests = {e.name for e in entries if e.name.endswith(naming.MANIFEST_SUFFIX)}
    # Longest alias first, so "default-eu" is tried before "default".
    aliases = [database] if database else sorted(connections.settings, key=len, reverse=True)
    found = []
    for entry in entries:
        if entry.is_dir or naming.is_hidden(entry.name):
            continue
        for alias in aliases:
            parsed = naming.parse(settings, entry.name, alias)
            if parsed:
                found.append(_to_info(entry, parsed, directory, manifests))
                break
    found.sort(key=lambda b: (b.created, b.modified, b.name), reverse=True)
    return found


def list_backups(
    database: str | None = None, *, settings: Settings | None = None
) -> list[BackupInfo]:
    """Backups of ``database`` (every configured alias if None), newest first.

    Partial uploads and manifests never appear.
    """
    settings = settings or get_settings()
    directory = backup_dir(settings)
    return _classify(Rclone(settings).lsjson(directory), settings, database, directory)


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


def cleanup_backups(
    database: str = "default",
    *,
    keep: int | None = None,
    run_id: str | None = None,
    progress: ProgressCallback | None = None,
    settings: Settings | None = None,
) -> CleanupResult:
    """Keep the newest ``keep`` backups of ``database`` (``DB_CLEANUP_KEEP``), delete the rest."""
    settings = settings or get_settings()
    keep = settings.db_cleanup_keep if keep is None else keep
    if keep < 1:
        from ..exceptions import ConfigurationError

        raise ConfigurationError("keep must be at least 1")
    run = Run.start("db_cleanup", database, run_id, progress)
    rclone = Rclone(settings)
    directory = backup_dir(settings)
    with run.stage("cleanup"):
        entries = rclone.lsjson(directory)
        backups = _classify(entries, settings, database, directory)
        kept, doomed = backups[:keep], backups[keep:]
        names = {e.name for e in entries}
        victims = [b.name for b in doomed]
        victims += [naming.manifest_name(n) for n in victims if naming.manifest_name(n) in names]
        rclone.delete_many(directory, victims)
        sweep_partials(rclone, directory, entries, timedelta(seconds=2 * settings.task_time_limit))
    return CleanupResult(
        database=database,
        kept=[b.name for b in kept],
        deleted=[b.name for b in doomed],
        run_id=run.run_id,
    )
