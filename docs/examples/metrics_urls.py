"""Mounting the metrics view (docs/monitoring.md). Served by
tests/system/test_monitoring.py::test_metrics_urls_example_serves_the_metrics."""

from __future__ import annotations

# --8<-- [start:urls]
from django.contrib.admin.views.decorators import staff_member_required
from django.urls import path

from django_rclone_celery.views import metrics

urlpatterns = [
    # Prometheus scrapes it without a session: restrict it by network (see below),
    # or wrap it, e.g. staff_member_required(metrics) for a browser.
    path("backups/metrics", metrics, name="backup-metrics"),
    path("backups/metrics-staff", staff_member_required(metrics)),
]
# --8<-- [end:urls]
