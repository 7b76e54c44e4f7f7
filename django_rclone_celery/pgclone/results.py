"""What a pgclone run returns to a Celery task: the key plus the ledger's fields."""

from __future__ import annotations

from dataclasses import dataclass

from ..results import _Result


@dataclass(frozen=True, kw_only=True)
class PgcloneResult(_Result):
    operation: str  # "pgclone_dump", "pgclone_restore" or "pgclone_copy"
    database: str
    dump_key: str
    # The dump's rclone path, or the local database's name for ":name" keys.
    path: str
    size: int | None
    duration: float
    run_id: str
    status: str = "succeeded"
