"""Retention policies (docs/settings.md#retention). Tested by tests/integration/test_docs.py and
tests/integration/test_retention.py::test_documented_policies."""

from __future__ import annotations

# --8<-- [start:older-than-30-days]
OLDER_THAN_30_DAYS = {
    "REMOTE": "s3:my-bucket/backups",
    "DB_CLEANUP_KEEP": 1,  # the newest backup, however old
    "DB_CLEANUP_KEEP_WITHIN_DAYS": 30,  # and everything from the last 30 days
}
# --8<-- [end:older-than-30-days]

# --8<-- [start:gfs]
DJANGO_RCLONE = {
    "REMOTE": "s3:my-bucket/backups",
    "DB_CLEANUP_KEEP": 3,  # the last three, say of the same day
    "DB_CLEANUP_KEEP_DAILY": 7,
    "DB_CLEANUP_KEEP_WEEKLY": 4,
    "DB_CLEANUP_KEEP_MONTHLY": 12,
}
# --8<-- [end:gfs]
