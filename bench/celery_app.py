"""The benchmark's Celery app: ``celery -A bench.celery_app worker`` (``bench/worker.py``)."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

app = Celery("drc_bench")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["django_rclone_celery"])
