"""The project's Celery app, configured from the ``CELERY_*`` Django settings."""

from __future__ import annotations

# --8<-- [start:app]
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bookshop.settings")

app = Celery("bookshop")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# --8<-- [end:app]
