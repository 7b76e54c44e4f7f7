"""Two schedules, as a project writes them in ``DJANGO_RCLONE["SCHEDULES"]``."""

from __future__ import annotations

NIGHTLY = {
    "task": "django_rclone_celery.db_backup",
    "crontab": "30 2 * * *",
    "timezone": "Europe/Paris",
    "kwargs": {"database": "default", "clean": True},
}
RETENTION = {
    "task": "django_rclone_celery.db_cleanup",
    "every": 3600,
    "kwargs": {"database": "default", "keep": 5},
}
SCHEDULES = {"nightly": NIGHTLY, "retention": RETENTION}
