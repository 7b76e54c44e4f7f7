"""A ``db_backup`` task sent with ``databases``: it queues one task per alias.

Kept apart from :mod:`.many` (which runs the guard here and follows tasks
through :mod:`.enqueue`) so the run guard can hand such a message over without
an import circle.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

from . import ledger

logger = logging.getLogger("django_rclone_celery")


def dispatch(task: Any, plan: Any, periodic_task_name: str | None) -> dict[str, Any]:
    """The body of a ``db_backup`` task sent with ``databases``: one task per alias.

    The children share the parent's slot (its schedule tick, key or task id),
    so a second message for the same slot queues nothing new: an alias whose
    row exists already is left to it.
    """
    request = task.request
    parent_id = request.id or uuid.uuid4().hex
    slot = ledger.resolve_slot(
        task_id=parent_id,
        slot=plan.slot,
        idempotency_key=plan.idempotency_key,
        periodic_task_name=periodic_task_name,
    )
    operation = plan.spec.operation
    aliases: list[str] = list(plan.kwargs["databases"])
    common = {k: v for k, v in plan.kwargs.items() if k not in ("database", "databases")}
    child = task.app.tasks[operation.task]
    ids: dict[str, str | None] = {}
    messages: dict[str, dict[str, Any]] = {}
    for alias in aliases:
        tid = uuid.uuid4().hex
        _row, created = ledger.claim(operation.name, alias, slot, tid)
        ids[alias] = tid if created else None
        if created:
            messages[tid] = {**common, "database": alias, "slot": slot}
    send_group(child, messages)
    logger.info("%s: queued %s for %s (slot %s)", task.name, operation.name, aliases, slot)
    return {
        "status": "dispatched",
        "operation": operation.name,
        "databases": aliases,
        "tasks": ids,
        "slot": slot,
    }


def send_group(task: Any, messages: Mapping[str, dict[str, Any]]) -> None:
    """Send one message per task id (``messages``: task id -> kwargs) as one group."""
    from celery import group
    from kombu.exceptions import OperationalError as KombuOperationalError

    from .exceptions import BrokerUnavailable

    if not messages:
        return
    try:
        group(task.si(**kw).set(task_id=tid) for tid, kw in messages.items()).apply_async()
    except KombuOperationalError as exc:
        raise BrokerUnavailable(
            f"the Celery broker did not take the tasks ({exc}); nothing was queued."
        ) from exc
