"""A django-dbbackup configuration and its translation (docs/migrate-from-dbbackup.md).
tests/integration/test_docs.py validates the translated settings."""

from __future__ import annotations

# --8<-- [start:before]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "dbbackup": {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {"bucket_name": "my-bucket", "location": "backups"},
    },
}
DBBACKUP_CLEANUP_KEEP = 7
DBBACKUP_DATE_FORMAT = "%Y-%m-%d-%H%M%S"
DBBACKUP_GPG_RECIPIENT = "backups@example.com"
# --8<-- [end:before]

# --8<-- [start:after]
DJANGO_RCLONE = {
    # an rclone remote named "s3" (see Storage recipes), bucket and prefix as before;
    # GPG is replaced by a crypt remote wrapping it: "vault:" instead of "s3:..."
    "REMOTE": "s3:my-bucket/backups",
    "DB_CLEANUP_KEEP": 7,
    "DB_DATE_FORMAT": "%Y-%m-%d-%H%M%S",
    "SCHEDULES": {
        # what cron ran as `manage.py dbbackup --clean` every night
        "nightly": {
            "task": "django_rclone_celery.db_backup",
            "crontab": "0 3 * * *",
            "kwargs": {"database": "default", "clean": True},
        },
        "media": {"task": "django_rclone_celery.media_backup", "crontab": "30 3 * * *"},
    },
}
# --8<-- [end:after]
