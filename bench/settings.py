"""Django settings for the benchmark: a ``bench`` alias and a local-directory remote.

``bench/run.py`` sets the environment variables below for each measured
command; nothing here is used by the test suite.

* ``DRC_BENCH_DB``: the PostgreSQL database the ``bench`` alias points at.
* ``DRC_BENCH_DIR``: a scratch directory (SQLite ``default`` alias).
* ``DRC_BENCH_REMOTE``: the rclone remote (default ``<DRC_BENCH_DIR>/remote``,
  a local directory).
* ``DRC_BENCH_COMPRESSION``: ``zstd`` (the default) or ``native``.
* ``DRC_BENCH_LEVEL``: ``COMPRESSION_LEVEL`` (unset: the product's default).
* ``DRC_BENCH_THREADS``: ``COMPRESSION_THREADS`` (unset: the product's default).
* ``DRC_BENCH_MEDIA``: ``MEDIA_ROOT`` (``bench/media.py``).
* ``DRC_BENCH_MULTI``: comma-separated PostgreSQL databases, each an alias
  ``m1``, ``m2``... and together ``BACKUP_DATABASES`` (``bench/multidb.py``).
* ``DRC_BENCH_BROKER``: a Redis URL, the broker and result backend of the
  warm worker (``bench/worker.py``); unset, no broker is configured.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

BASE = Path(os.environ.get("DRC_BENCH_DIR") or tempfile.mkdtemp(prefix="drc-bench-"))

SECRET_KEY = "bench-only"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django_celery_beat",
    "django_rclone_celery",
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(BASE / "default.sqlite3"),
    },
    "bench": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("DRC_BENCH_DB", "drc_bench"),
        "HOST": os.environ.get("DRC_PG_HOST", "127.0.0.1"),
        "PORT": os.environ.get("DRC_PG_PORT", "5432"),
        "USER": os.environ.get("DRC_PG_USER", "postgres"),
    },
}

MEDIA_ROOT = os.environ.get("DRC_BENCH_MEDIA", "")

DJANGO_RCLONE = {
    "REMOTE": os.environ.get("DRC_BENCH_REMOTE") or str(BASE / "remote"),
    "COMPRESSION": os.environ.get("DRC_BENCH_COMPRESSION", "zstd"),
}
if "DRC_BENCH_LEVEL" in os.environ:
    DJANGO_RCLONE["COMPRESSION_LEVEL"] = int(os.environ["DRC_BENCH_LEVEL"])
if "DRC_BENCH_THREADS" in os.environ:
    DJANGO_RCLONE["COMPRESSION_THREADS"] = int(os.environ["DRC_BENCH_THREADS"])

# bench/multidb.py: several small aliases, and what --all means.
_multi = [n for n in os.environ.get("DRC_BENCH_MULTI", "").split(",") if n]
for _i, _name in enumerate(_multi, 1):
    DATABASES[f"m{_i}"] = {**DATABASES["bench"], "NAME": _name}
if _multi:
    DJANGO_RCLONE["BACKUP_DATABASES"] = [f"m{i}" for i in range(1, len(_multi) + 1)]

if os.environ.get("DRC_BENCH_BROKER"):
    CELERY_BROKER_URL = CELERY_RESULT_BACKEND = os.environ["DRC_BENCH_BROKER"]
    # As docs/deployment.md asks: longer than the longest task.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 6 * 3600 + 600}
    CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"visibility_timeout": 6 * 3600 + 600}
    CELERY_WORKER_PREFETCH_MULTIPLIER = 1
