"""SFTP settings from docs/storage.md. tests/integration/test_docs.py validates them."""

from __future__ import annotations

# --8<-- [start:settings]
DJANGO_RCLONE = {
    "REMOTE": "backupbox:django-backups",
    "RCLONE_CONFIG": "/srv/backups/rclone.conf",
}
# --8<-- [end:settings]
