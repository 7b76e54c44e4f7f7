"""Views a project may mount. :func:`metrics`: Prometheus' text exposition format.

Mount it where your Prometheus can reach it, and nobody else::

    path("backups/metrics", django_rclone_celery.views.metrics)

It reads the run ledger only (see :mod:`.monitoring`) and holds no secret:
database aliases, operation names, times, sizes and counts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.db import DatabaseError
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from .models import BackupRun, Status
from .monitoring import RunInfo, TargetStatus, status

PREFIX = "django_rclone_celery_"
TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Labels = dict[str, str]


@dataclass
class Family:
    """One metric: name (without the prefix), type, help and samples."""

    name: str
    type: str  # "gauge" or "counter"
    help: str
    samples: list[tuple[Labels, float]] = field(default_factory=list)


def _stamp(when: datetime) -> float:
    return when.timestamp()


def _add(family: Family, labels: Labels, value: float | None) -> None:
    if value is not None:  # an unknown value is left out, the Prometheus way
        family.samples.append((labels, float(value)))


def families(found: Sequence[TargetStatus] | None = None) -> list[Family]:
    """The metrics, from :func:`.monitoring.status` and the ledger's failure counts."""
    found = status() if found is None else found
    backup_time = Family(
        "last_backup_timestamp_seconds", "gauge", "When the newest successful backup finished."
    )
    backup_size = Family("last_backup_size_bytes", "gauge", "Size of the newest successful backup.")
    backup_duration = Family(
        "last_backup_duration_seconds", "gauge", "How long the newest successful backup took."
    )
    verify_time = Family(
        "last_verify_timestamp_seconds",
        "gauge",
        "When the newest successful restore drill (verifybackup --restore) finished.",
    )
    restore_duration = Family(
        "time_to_restore_seconds",
        "gauge",
        "How long the newest successful restore or restore drill took.",
    )
    failure_time = Family(
        "last_failure_timestamp_seconds", "gauge", "When the newest failed run ended."
    )
    limit = Family("max_age_seconds", "gauge", "MAX_BACKUP_AGE / MAX_VERIFY_AGE of a target.")
    fresh = Family("fresh", "gauge", "1 if the newest success is within its limit, else 0.")
    ok = Family("ok", "gauge", "1 if the target is fresh and its newest backup did not fail.")
    failures = Family("failures", "counter", "Failed runs in the run history.")

    def run(info: RunInfo | None, when: Family, labels: Labels) -> None:
        if info is not None:
            _add(when, labels, _stamp(info.finished))

    for item in found:
        labels = {"target": item.target}
        run(item.last_backup, backup_time, labels)
        if item.last_backup is not None:
            _add(backup_size, labels, item.last_backup.size)
            _add(backup_duration, labels, item.last_backup.duration)
        run(item.last_verified, verify_time, labels)
        if item.last_restore is not None:
            _add(restore_duration, labels, item.last_restore.duration)
        if item.last_failure is not None:
            _add(failure_time, labels, _stamp(item.last_failure.finished))
        for kind, seconds, is_fresh in (
            ("backup", item.max_backup_age, item.backup_fresh),
            ("verify", item.max_verify_age, item.verify_fresh),
        ):
            if seconds is not None:
                _add(limit, {**labels, "kind": kind}, seconds)
                _add(fresh, {**labels, "kind": kind}, int(is_fresh))
        _add(ok, labels, int(item.ok))
    counts = (
        BackupRun.objects.filter(status=Status.FAILED)
        .values_list("database", "operation")
        .annotate(n=Count("id"))
        .order_by("database", "operation")
    )
    for database, operation, n in counts:
        _add(failures, {"target": database or "media", "operation": operation}, n)
    return [
        backup_time,
        backup_size,
        backup_duration,
        verify_time,
        restore_duration,
        failure_time,
        limit,
        fresh,
        ok,
        failures,
    ]


# -- exposition -----------------------------------------------------------------


def _escape(value: str, quote: bool) -> str:
    value = value.replace("\\", "\\\\").replace("\n", "\\n")
    return value.replace('"', '\\"') if quote else value


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def render_text(found: Iterable[Family]) -> str:
    """The text exposition format, written by hand (without ``prometheus_client``)."""
    lines = []
    for family in found:
        name = PREFIX + family.name
        sample_name = f"{name}_total" if family.type == "counter" else name
        lines.append(f"# HELP {sample_name} {_escape(family.help, quote=False)}")
        lines.append(f"# TYPE {sample_name} {family.type}")
        for labels, value in family.samples:
            pairs = ",".join(f'{k}="{_escape(v, quote=True)}"' for k, v in labels.items())
            lines.append(f"{sample_name}{{{pairs}}} {_number(value)}")
    return "\n".join(lines) + "\n"


def render_prometheus(found: Iterable[Family]) -> tuple[str, str]:
    """The text format and its content type, by ``prometheus_client``."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

    metrics: list[Metric] = []
    for family in found:
        names = sorted({k for labels, _ in family.samples for k in labels})
        cls = CounterMetricFamily if family.type == "counter" else GaugeMetricFamily
        metric = cls(PREFIX + family.name, family.help, labels=names)
        for labels, value in family.samples:
            metric.add_metric([labels.get(k, "") for k in names], value)
        metrics.append(metric)

    class Collector:
        def collect(self) -> Iterable[Metric]:
            return metrics

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector())
    return generate_latest(registry).decode("utf-8"), CONTENT_TYPE_LATEST


def exposition() -> tuple[str, str]:
    """The metrics as text, and the content type to serve them with."""
    found = families()
    try:
        return render_prometheus(found)
    except ImportError:
        return render_text(found), TEXT_CONTENT_TYPE


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus metrics of every database and the media (see docs/monitoring.md)."""
    try:
        text, content_type = exposition()
    except DatabaseError as exc:
        return HttpResponse(
            f"cannot read the run history: {type(exc).__name__}\n",
            status=503,
            content_type="text/plain; charset=utf-8",
        )
    return HttpResponse(text, content_type=content_type)
