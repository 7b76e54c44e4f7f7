"""Settings for a remote configured through environment variables (docs/storage.md).
tests/integration/test_docs.py validates them."""

from __future__ import annotations

# --8<-- [start:settings]
import os

DJANGO_RCLONE = {
    # e.g. "s3:my-bucket/backups" in production, a directory on a laptop
    "REMOTE": os.environ.get("BACKUP_REMOTE", "/srv/backups"),
    # rclone reads RCLONE_CONFIG_<NAME>_<KEY> itself: no config file needed
    "RCLONE_FLAGS": ["--s3-no-check-bucket"] if os.environ.get("BACKUP_S3_NO_CHECK") else [],
}
# --8<-- [end:settings]
