"""Listing and retention of database backups."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from django.db import connections

from .. import naming, retention
from ..conf import Settings, get_settings
from ..connectors import check_alias
from ..floor.catalogue import sweep_partials
from ..floor.run import ProgressCallback, Run
from ..rclone import Entry, Rclone, join
from ..results import BackupInfo, CleanupResult

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
    if database is not None:
        check_alias(database)  # an empty list would read as "no backups yet"
    settings = settings or get_settings()
    directory = backup_dir(settings)
    return _classify(Rclone(settings).lsjson(directory), settings, database, directory)


def cleanup_backups(
    database: str = "default",
    *,
    keep: int | None = None,
    run_id: str | None = None,
    progress: ProgressCallback | None = None,
    settings: Settings | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
) -> CleanupResult:
    """Delete the backups of ``database`` that no retention rule keeps (see :mod:`retention`).

    ``keep`` overrides ``DB_CLEANUP_KEEP``; the ``DB_CLEANUP_KEEP_*`` rules still
    apply. ``dry_run`` deletes nothing and reports what would be deleted. ``now``
    (default: the current time) is what ``DB_CLEANUP_KEEP_WITHIN_DAYS`` counts back from.
    """
    settings = settings or get_settings()
    check_alias(database)  # an unknown alias would match no backup and delete nothing
    policy = retention.Policy.from_settings(settings, keep=keep)  # refuses keep < 1
    run = Run.start("db_cleanup", database, run_id, progress)
    rclone = Rclone(settings)
    directory = backup_dir(settings)
    with run.stage("cleanup"):
        entries = rclone.lsjson(directory)
        # Only names with this project's namespace: another project's, or
        # older unprefixed ones, are never deleted here.
        backups = [
            b
            for b in _classify(entries, settings, database, directory)
            if naming.is_ours(settings, b.name)
        ]
        plan = retention.plan(backups, policy, now or datetime.now(timezone.utc))
        names = {e.name for e in entries}
        victims = [b.name for b in plan.deleted]
        # A manifest goes with its backup.
        victims += [naming.manifest_name(n) for n in victims if naming.manifest_name(n) in names]
        # And a parallel backup's streams (#19.4).
        victims += [
            n for n in names for b in plan.deleted if n.startswith(b.name + naming.STREAM_MARKER)
        ]
        if not dry_run:
            rclone.delete_many(directory, victims)
            ours = [e for e in entries if naming.is_ours(settings, e.name)]
            sweep_partials(rclone, directory, ours, timedelta(seconds=2 * settings.task_time_limit))
    return CleanupResult(
        database=database,
        kept=[k.backup.name for k in plan.kept],
        deleted=[b.name for b in plan.deleted],
        run_id=run.run_id,
        reasons={k.backup.name: list(k.reasons) for k in plan.kept},
        dry_run=dry_run,
    )
