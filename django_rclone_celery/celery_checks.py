"""System checks on the Celery configuration the tasks depend on.

With the Redis broker, a message not acknowledged within the transport's
``visibility_timeout`` (default one hour) is delivered again, even while its
first delivery is still running. Backups acknowledge late, so a backup longer
than the timeout would start a second copy every hour. The ledger and the
lease make that copy harmless, but it still occupies a worker and the
timeout must exceed the hard time limit for the at-least-once guarantee to
mean anything.
"""

from __future__ import annotations

from typing import Any

from django.core import checks

from .conf import _build, raw_settings, validate
from .problems import problem

DEFAULT_VISIBILITY_TIMEOUT = 3600  # kombu's Redis transport default
RETRY_BACKOFF_MAX = 600  # tasks.OperationTask.retry_backoff_max


def _redis_broker(app: Any) -> bool:
    url = str(app.conf.broker_url or "").split(";")[0].strip()
    return url.startswith(("redis://", "rediss://", "sentinel://", "redis+socket://"))


def visibility_timeout(app: Any) -> float:
    options = app.conf.broker_transport_options or {}
    return float(options.get("visibility_timeout", DEFAULT_VISIBILITY_TIMEOUT))


def check_visibility_timeout(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    if any(not p.warning for p in validate()):
        return []  # the settings check reports those
    from celery import current_app

    app = current_app
    if not _redis_broker(app):
        return []
    settings = _build(raw_settings())
    timeout = visibility_timeout(app)
    found = []
    if timeout <= settings.task_time_limit:
        found.append(
            problem(
                "W030",
                f"The Celery broker's visibility_timeout ({timeout:g} s) is not longer than "
                f"DJANGO_RCLONE['TASK_TIME_LIMIT'] ({settings.task_time_limit} s): Redis will "
                "deliver a still-running backup to a second worker.",
                (
                    "Set CELERY_BROKER_TRANSPORT_OPTIONS = {'visibility_timeout': N} (and the "
                    "same for CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS) with N above the hard "
                    "time limit plus a margin, or lower TASK_TIME_LIMIT."
                ),
                warning=True,
            )
        )
    longest_countdown = max(2 * settings.lock_retry_delay, RETRY_BACKOFF_MAX)
    if timeout <= longest_countdown:
        found.append(
            problem(
                "W031",
                f"The Celery broker's visibility_timeout ({timeout:g} s) is not longer than the "
                f"longest retry countdown ({longest_countdown:g} s): a waiting retry would be "
                "delivered again and again.",
                "Raise visibility_timeout or lower DJANGO_RCLONE['LOCK_RETRY_DELAY'].",
                warning=True,
            )
        )
    return [p.message() for p in found]
