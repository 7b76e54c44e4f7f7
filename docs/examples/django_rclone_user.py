"""A django-rclone user's settings, unchanged (docs/migrate-from-django-rclone.md).
tests/integration/test_migrate_django_rclone.py runs our commands against them."""

from __future__ import annotations

# --8<-- [start:settings]
DJANGO_RCLONE = {
    "REMOTE": "/srv/backups/site",
    "RCLONE_FLAGS": ["--transfers", "4"],
    "DB_BACKUP_DIR": "database",
    "DB_FILENAME_TEMPLATE": "{database}--{datetime}.{ext}",
    "DB_DATE_FORMAT": "%Y%m%d-%H%M%S",
    "DB_CLEANUP_KEEP": 2,
    "MEDIA_BACKUP_DIR": "uploads",
    "CONNECTORS": {"default": "django_rclone.db.sqlite.SqliteConnector"},
}
# --8<-- [end:settings]
# --8<-- [start:native]
DJANGO_RCLONE["COMPRESSION"] = "native"  # objects exactly as django-rclone writes them
# --8<-- [end:native]
