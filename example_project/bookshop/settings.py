"""Settings of the bookshop example: a small catalogue with scheduled backups.

Everything that differs between machines comes from the environment; see
``bookshop/env.py``.
"""

from __future__ import annotations

import os

from . import env

BASE_DIR = env.PROJECT_DIR
SECRET_KEY = os.environ.get("SECRET_KEY", "bookshop-example-not-secret")
DEBUG = os.environ.get("DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
ROOT_URLCONF = "bookshop.urls"
WSGI_APPLICATION = "bookshop.wsgi.application"
STATIC_URL = "static/"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "django_rclone_celery",
    "catalog",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {"default": env.database()}

MEDIA_ROOT = str(env.VAR / "media")
MEDIA_URL = "media/"

# --8<-- [start:celery]
_celery = env.celery()
CELERY_BROKER_URL = _celery["broker_url"]
CELERY_BROKER_TRANSPORT = _celery.get("broker_transport")
CELERY_BROKER_TRANSPORT_OPTIONS = _celery["broker_transport_options"]
CELERY_RESULT_BACKEND = _celery["result_backend"]
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = _celery.get("result_backend_transport_options", {})
CELERY_TASK_TRACK_STARTED = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1  # backups are long: take one message at a time
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# --8<-- [end:celery]
# --8<-- [start:routes]
CELERY_TASK_ROUTES = {"django_rclone_celery.*": {"queue": "backups"}}
# --8<-- [end:routes]

# --8<-- [start:django_rclone]
DJANGO_RCLONE = {
    "REMOTE": env.remote(),
    "LOCK_URL": env.lock_url(),
    "DB_CLEANUP_KEEP": 14,
    "SCHEDULES": {
        "nightly database backup": {
            "task": "django_rclone_celery.db_backup",
            "crontab": "15 2 * * *",
            "kwargs": {"database": "default"},
        },
        "nightly retention": {
            "task": "django_rclone_celery.db_cleanup",
            "crontab": "45 2 * * *",
            "kwargs": {"database": "default", "keep": 14},
        },
        "hourly media backup": {
            "task": "django_rclone_celery.media_backup",
            "crontab": "5 * * * *",
            # Keeps media history under the retention rules (a point per changed hour).
            "kwargs": {"clean": True},
        },
        # The restore drill: restore the newest backup of every database beside
        # it, compare it with its manifest, drop it (docs/schedules.md).
        **{
            f"weekly restore drill {alias}": {
                "task": "django_rclone_celery.db_verify",
                "crontab": f"{(20 * n) % 60} {4 + (20 * n) // 60} * * 0",
                "kwargs": {"database": alias, "restore": True},
            }
            for n, alias in enumerate(DATABASES)
        },
    },
}
# --8<-- [end:django_rclone]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_rclone_celery": {"handlers": ["console"], "level": "INFO"}},
}

try:  # Django's MySQL backend wants mysqlclient; PyMySQL (pure Python) stands in.
    import pymysql

    pymysql.install_as_MySQLdb()
except ImportError:  # pragma: no cover - only needed with a MySQL DATABASE_URL
    pass
