"""The Celery app of the test project, as a real project would have it.

Workers run ``celery -A tests.celery_app worker`` with
``DJANGO_SETTINGS_MODULE=tests.worker_settings`` (see ``tests/helpers/workers.py``).
The pytest process imports the same app to send tasks and read results; its
broker is pointed at the throwaway Redis by the ``task_app`` fixture.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.worker_settings")

app = Celery("drc_tests")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["django_rclone_celery"])


def _record_signals() -> None:
    """Append every signal the worker sends to ``DRC_SIGNAL_LOG`` (JSON lines).

    Signals fire inside the worker; this is how a test in another process
    sees them. Exceptions are recorded by class name and message.
    """
    import json

    from django_rclone_celery import signals

    path = os.environ.get("DRC_SIGNAL_LOG")
    if not path:
        return
    recorded = ("stage_failed", "backup_overdue")
    for name in (n for n in dir(signals) if n.startswith(("pre_", "post_")) or n in recorded):

        def receiver(sender: object, _name: str = name, **kwargs: object) -> None:
            kwargs.pop("signal", None)
            exc = kwargs.pop("exception", None)
            entry = {"signal": _name, "sender": sender, **kwargs}
            if exc is not None:
                entry["exception"] = type(exc).__name__
                entry["message"] = str(exc)
            with open(path, "a") as out:
                out.write(json.dumps(entry, default=str) + "\n")

        getattr(signals, name).connect(receiver, weak=False, dispatch_uid=f"drc-tests-{name}")


_record_signals()
