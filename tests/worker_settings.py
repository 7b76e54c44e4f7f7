"""Settings for ``celery worker`` subprocesses started by the tests.

A worker must see exactly what the pytest process sees: the test databases
pytest-django created (``test_<NAME>``, with the ``DRC_TEST_DB_SUFFIX``), the
test's ``DJANGO_RCLONE`` (its remote directory, lock URL, time limits), its
``MEDIA_ROOT`` and the throwaway Redis broker. ``tests/helpers/workers.py`` passes all
of that in one JSON environment variable, ``DRC_WORKER_CONFIG``, built from
the live settings of the test that starts the worker; this module applies it
on top of ``tests.settings``.

The ledger stays on the ``default`` alias (a SQLite file shared with the
pytest process). Several processes write to it, so the worker opens it with a
long busy timeout and (Django 5.1+) ``BEGIN IMMEDIATE`` transactions, which
makes writers queue instead of failing with "database is locked".
"""

from __future__ import annotations

import json
import os

import django

from tests.settings import *  # noqa: F403
from tests.settings import DATABASES

_config = json.loads(os.environ.get("DRC_WORKER_CONFIG") or "{}")

for _alias, _name in _config.get("databases", {}).items():
    DATABASES[_alias]["NAME"] = _name
for _alias, _account in _config.get("accounts", {}).items():
    DATABASES[_alias].update({k: v for k, v in _account.items() if v is not None})

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    DATABASES["default"]["OPTIONS"] = {"timeout": 60}
    if django.VERSION >= (5, 1):  # the option is new in 5.1; before it, the timeout alone
        DATABASES["default"]["OPTIONS"]["transaction_mode"] = "IMMEDIATE"

if "django_rclone" in _config:
    DJANGO_RCLONE = _config["django_rclone"]
if "media_root" in _config:
    MEDIA_ROOT = _config["media_root"]

CELERY_BROKER_URL = _config.get("broker_url", "memory://")
CELERY_RESULT_BACKEND = _config.get("result_backend", "cache+memory://")
# Sweep for unacknowledged messages every second, so a short visibility
# timeout leads to a prompt redelivery.
_transport = {
    "visibility_timeout": _config.get("visibility_timeout", 3600),
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
}
CELERY_BROKER_TRANSPORT_OPTIONS = _transport
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = _transport
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ANNOTATIONS = _config.get("annotations", {})
# Any other settings a test passes (workers.start(settings=...)), e.g. EMAIL_PORT.
globals().update(_config.get("settings", {}))
