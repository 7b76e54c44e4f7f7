"""Restore drills in the run history: when was each database's newest backup proven restorable?

A drill is a ``db_verify`` run with ``restore=True`` (``verifybackup
--restore``): its result records the backup it restored and the time the
restore took. Read from the run ledger only, so the admin page costs no
remote listing: a backup made or verified outside the ledger is not seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .models import BackupRun, Operation, Status


@dataclass(frozen=True)
class DrillStatus:
    database: str
    newest_backup: str  # its path; "" if the ledger has no backup of it
    proven_at: datetime | None  # when a drill last restored the newest backup
    time_to_restore: float | None  # seconds, that drill's
    last_drill_at: datetime | None  # the last drill of any of its backups
    last_drill_backup: str  # the path that drill restored

    @property
    def newest_proven(self) -> bool:
        return self.proven_at is not None


def _drills(database: str) -> list[BackupRun]:
    runs = BackupRun.objects.filter(
        operation=Operation.DB_VERIFY, database=database, status=Status.SUCCEEDED
    ).order_by("-finished", "-id")
    return [r for r in runs[:200] if isinstance(r.result, dict) and r.result.get("restored")]


def drill_status(databases: list[str] | None = None) -> list[DrillStatus]:
    """One row per database that has backups or drills in the ledger (or per ``databases``)."""
    if databases is None:
        found = BackupRun.objects.filter(
            operation__in=[Operation.DB_BACKUP, Operation.DB_VERIFY]
        ).values_list("database", flat=True)
        databases = sorted({d for d in found if d})
    rows = []
    for database in databases:
        newest = (
            BackupRun.objects.filter(
                operation=Operation.DB_BACKUP, database=database, status=Status.SUCCEEDED
            )
            .order_by("-finished", "-id")
            .first()
        )
        newest_path = newest.path if newest else ""
        drills = _drills(database)
        proving = next((r for r in drills if newest_path and r.path == newest_path), None)
        last = drills[0] if drills else None
        seconds = proving.result.get("restore_seconds") if proving and proving.result else None
        rows.append(
            DrillStatus(
                database=database,
                newest_backup=newest_path,
                proven_at=proving.finished if proving else None,
                time_to_restore=float(seconds) if isinstance(seconds, (int, float)) else None,
                last_drill_at=last.finished if last else None,
                last_drill_backup=last.path if last else "",
            )
        )
    return rows
