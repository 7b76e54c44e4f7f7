"""The smallest working configuration (docs/getting-started.md). Tested by tests/test_docs.py."""

from __future__ import annotations

# --8<-- [start:settings]
INSTALLED_APPS = [
    # ... your apps ...
    "django_celery_beat",
    "django_rclone_celery",
]

DJANGO_RCLONE = {
    "REMOTE": "/srv/backups",  # any rclone path: "s3:my-bucket/backups", "sftp:backups"...
}
# --8<-- [end:settings]
