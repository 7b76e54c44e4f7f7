"""Test settings: real servers on loopback, one alias per engine.

Server locations can be moved with environment variables (the test command
sets none of them; the defaults are the local services it installs).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

# Under pytest-xdist each worker (gw0, gw1, ...) is a session of its own: its
# own directory (remote, media, file leases), database names and accounts. The
# environment carries both to the worker's subprocesses (celery workers, commands).
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
if XDIST_WORKER and not os.environ.get("DRC_TEST_DB_SUFFIX", "").endswith(f"_{XDIST_WORKER}"):
    os.environ["DRC_TEST_DB_SUFFIX"] = f"{os.environ.get('DRC_TEST_DB_SUFFIX', '')}_{XDIST_WORKER}"
# Made here (not given, nor inherited from the session's controller): the
# session removes it when it ends well (tests/conftest.py). Imported outside a
# test session (mypy's Django plugin does), nothing is made.
DRC_TEST_DIR_MADE = not os.environ.get("DRC_TEST_DIR") and "pytest" in sys.modules
if os.environ.get("DRC_TEST_DIR"):
    BASE = Path(os.environ["DRC_TEST_DIR"])
elif DRC_TEST_DIR_MADE:
    BASE = Path(tempfile.mkdtemp(prefix="drc-tests-"))
else:
    BASE = Path(tempfile.gettempdir()) / "drc-tests-not-a-session"
if XDIST_WORKER and BASE.name != XDIST_WORKER:
    BASE = BASE / XDIST_WORKER
    BASE.mkdir(exist_ok=True)
os.environ["DRC_TEST_DIR"] = str(BASE)  # one directory per session, shared with workers

SECRET_KEY = "tests-only"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "tests.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django_celery_beat",
    "django_rclone_celery",
    "tests.testapp",
    "tests.portable_app",  # portable dump/load tests (no migrations: created by syncdb)
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
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

# Lets parallel runs (several developers, CI) share one server without clashing.
DB_SUFFIX = os.environ.get("DRC_TEST_DB_SUFFIX", "")
PG_HOST = os.environ.get("DRC_PG_HOST", "127.0.0.1")
PG_PORT = os.environ.get("DRC_PG_PORT", "5432")
PG_USER = os.environ.get("DRC_PG_USER", "postgres")
MYSQL_HOST = os.environ.get("DRC_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = os.environ.get("DRC_MYSQL_PORT", "3306")
MYSQL_USER = os.environ.get("DRC_MYSQL_USER", "root")
PG_PASSWORD = os.environ.get("DRC_PG_PASSWORD", "")
MYSQL_PASSWORD = os.environ.get("DRC_MYSQL_PASSWORD", "")

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(BASE / "default.sqlite3"),
        "TEST": {"NAME": str(BASE / "test-default.sqlite3")},
    },
    "pg": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": f"drc_pg{DB_SUFFIX}",
        "HOST": PG_HOST,
        "PORT": PG_PORT,
        "USER": PG_USER,
        "PASSWORD": PG_PASSWORD,
        # No creation order is needed; without this, a run that uses only this
        # alias fails with "Circular dependency" (it would wait for default).
        "TEST": {"DEPENDENCIES": []},
    },
    "gis": {
        "ENGINE": "django.contrib.gis.db.backends.postgis",
        "NAME": f"drc_gis{DB_SUFFIX}",
        "HOST": PG_HOST,
        "PORT": PG_PORT,
        "USER": PG_USER,
        "PASSWORD": PG_PASSWORD,
        "TEST": {"DEPENDENCIES": []},
    },
    "maria": {
        "ENGINE": "django.db.backends.mysql",
        "NAME": f"drc_maria{DB_SUFFIX}",
        "HOST": MYSQL_HOST,
        "PORT": MYSQL_PORT,
        "USER": MYSQL_USER,
        "PASSWORD": MYSQL_PASSWORD,
        "OPTIONS": {"charset": "utf8mb4"},
        "TEST": {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_general_ci", "DEPENDENCIES": []},
    },
}

MEDIA_ROOT = str(BASE / "media")

DJANGO_RCLONE = {
    "REMOTE": str(BASE / "remote"),
    # In-process runs take the lease too: on files of this session, never on
    # the shared Redis (tests that need Redis leases use ``lock_config``).
    "LOCK_URL": (BASE / "locks").as_uri(),
}

# In-process by default, never a shared Redis that another process may read:
# tests that need a broker get their own Redis (the ``task_app`` fixture).
CELERY_BROKER_URL = os.environ.get("DRC_TEST_BROKER", "memory://")
CELERY_RESULT_BACKEND = os.environ.get("DRC_TEST_BACKEND", "cache+memory://")

try:  # Django's MySQL backend wants mysqlclient; PyMySQL stands in for it.
    import pymysql

    pymysql.install_as_MySQLdb()
except ImportError:  # pragma: no cover
    pass
