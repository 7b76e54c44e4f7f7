"""Monitoring recipes (docs/monitoring.md). Validated by tests/integration/test_docs.py;
the hosted-check recipe is run end to end by tests/system/test_monitoring.py."""

from __future__ import annotations

# --8<-- [start:monitoring]
ADMINS = [("Ops", "ops@example.com")]  # failure mail goes here (or to MAIL_TO)
SERVER_EMAIL = "backups@example.com"

DJANGO_RCLONE = {
    "REMOTE": "s3remote:bucket/backups",
    "BASE_URL": "https://example.com",  # mails link to the run in the admin
    "SCHEDULES": {
        "nightly": {
            "task": "django_rclone_celery.db_backup",
            "crontab": "30 2 * * *",
            "kwargs": {"database": "default"},
            # A hosted check expecting one success a day (grace: a few hours).
            "ping_url": "https://hc-ping.com/your-check-uuid",
        },
        "drill": {
            "task": "django_rclone_celery.db_verify",
            "crontab": "30 4 * * 0",
            "kwargs": {"database": "default", "restore": True},
        },
    },
    # Alert when the newest backup is older than 26 h (media: 2 days), or the
    # newest restore drill older than 8 days.
    "MAX_BACKUP_AGE": {"*": 26 * 3600, "media": 2 * 86400},
    "MAX_VERIFY_AGE": {"default": 8 * 86400},
}
# --8<-- [end:monitoring]
