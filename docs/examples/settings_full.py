"""Every DJANGO_RCLONE key at its default (docs/settings.md).

Tested by tests/integration/test_docs.py.
"""

from __future__ import annotations

# --8<-- [start:settings]
DJANGO_RCLONE = {
    "REMOTE": "s3:my-bucket/backups",  # required
    # rclone
    "RCLONE_BINARY": "rclone",
    "RCLONE_CONFIG": None,
    "RCLONE_FLAGS": [],
    # database backups
    "DB_BACKUP_DIR": "db",
    "DB_FILENAME_TEMPLATE": "{database}-{datetime}.{ext}",
    "DB_DATE_FORMAT": "%Y-%m-%d-%H%M%S",
    "DB_CLEANUP_KEEP": 10,
    "DB_CLEANUP_KEEP_DAILY": 0,
    "DB_CLEANUP_KEEP_WEEKLY": 0,
    "DB_CLEANUP_KEEP_MONTHLY": 0,
    "DB_CLEANUP_KEEP_WITHIN_DAYS": 0,
    "CONNECTORS": {},
    "CONNECTOR_MAPPING": {},
    "COMPRESSION": "zstd",
    "COMPRESSION_LEVEL": 2,
    "COMPRESSION_THREADS": None,  # auto: by the usable CPUs
    # media backups
    "MEDIA_BACKUP_DIR": "media",
    "MEDIA_MAX_DELETE": "50%",  # a count (50) or a share of the destination's files
    # Celery
    "SCHEDULES": {},
    "INSTALL_SCHEDULES": True,
    "TASK_SOFT_TIME_LIMIT": 6 * 3600,
    "TASK_TIME_LIMIT": 6 * 3600 + 300,
    "TASK_MAX_RETRIES": 3,
    # per-database locks
    "LOCK_URL": None,
    "LOCK_TTL": 60,
    "LOCK_RETRY_DELAY": 10,
    "LOCK_WAIT": 24 * 3600,
    # monitoring
    "MAIL_ON_FAILURE": True,
    "MAIL_TO": None,  # None: ADMINS
    "BASE_URL": "",
    "PING_URL": None,
    "PING_TIMEOUT": 5,
    "MAX_BACKUP_AGE": None,
    "MAX_VERIFY_AGE": None,
    "WATCHDOG_INTERVAL": 300,
    # this project's identity on a shared remote or Redis
    "NAMESPACE": None,
    "SQLITE_LOCK_TIMEOUT": 60,
    # alias -> TOOL_DIR, DUMP_ARGS, RESTORE_ARGS, ENV, HOST, PORT, USER, PASSWORD
    "DATABASE_OPTIONS": {},
    # several databases in one run
    "BACKUP_DATABASES": None,  # None: every alias in DATABASES
    # PostgreSQL streams of a dump and a restore
    "JOBS": 1,
}
# --8<-- [end:settings]
