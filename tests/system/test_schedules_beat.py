"""Schedules: validation, django-celery-beat rows (created, then left alone), beat_schedule()."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

from django_rclone_celery.schedules import (
    PREFIX,
)
from tests.celery_redis import celery_config, celery_includes  # noqa: F401
from tests.helpers.workers import EMBEDDED_BROKER_DB, RedisServer

# --- validation -----------------------------------------------------------------------------


# --- django-celery-beat rows ----------------------------------------------------------------


def row(name: str) -> PeriodicTask:
    return PeriodicTask.objects.select_related("crontab", "interval").get(name=PREFIX + name)


@pytest.mark.django_db(transaction=True)  # the scheduler closes connections
def test_database_scheduler_sends_a_synced_row(
    schedules: Any,
    celery_app: Any,
    depends_on_current_app: Any,
    redis_server: RedisServer,
) -> None:
    """django-celery-beat's own scheduler reads the row and sends it to the broker."""
    from django_celery_beat.schedulers import DatabaseScheduler

    call_command("backup_schedules", stdout=StringIO())
    queue = redis_server.client(EMBEDDED_BROKER_DB)
    queue.delete("celery")
    scheduler = DatabaseScheduler(app=celery_app, lazy=True)
    entry = scheduler.schedule[PREFIX + "retention"]
    scheduler.apply_async(entry, producer=None, advance=False)
    with celery_app.connection_for_read() as conn:
        message = conn.default_channel.basic_get("celery")
    assert message.headers["task"] == "django_rclone_celery.db_cleanup"
    assert message.headers["periodic_task_name"] == PREFIX + "retention"
    assert message.headers["expires"] is not None  # from expire_seconds
    assert message.decode()[1] == {"database": "default", "keep": 5}


# --- plain beat_schedule --------------------------------------------------------------------
