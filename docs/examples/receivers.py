"""Signal receivers from docs/signals.md. tests/integration/test_docs.py connects them and runs a
real backup and restore to check that each one fires with the documented kwargs."""

from __future__ import annotations

# --8<-- [start:receivers]
import logging
import os
from typing import Any

from django.dispatch import receiver

from django_rclone_celery import signals

logger = logging.getLogger("myproject.backups")


@receiver(signals.post_db_backup)
def log_backup(
    sender: str, database: str, path: str, size: int, run_id: str, **kwargs: Any
) -> None:
    logger.info("backup of %s: %s (%d bytes), run %s", database, path, size, run_id)


@receiver(signals.stage_failed)
def alert_on_failure(
    sender: str, operation: str, stage: str, exception: BaseException, **kwargs: Any
) -> None:
    logger.error("%s failed in stage %s: %s", operation, stage, exception)


@receiver(signals.pre_db_restore)
def no_restore_in_production(sender: str, database: str, path: str, **kwargs: Any) -> None:
    # pre_* signals may veto: raising here stops the restore before anything changes.
    if os.environ.get("DEPLOYMENT") == "production":
        raise PermissionError(f"refusing to restore {database} from {path} in production")


# --8<-- [end:receivers]
