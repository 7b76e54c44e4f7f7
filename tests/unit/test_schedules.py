"""Schedules: validation, django-celery-beat rows (created, then left alone), beat_schedule()."""

from __future__ import annotations

import json
import logging
import pickle
from datetime import datetime, timezone
from io import StringIO
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from celery.schedules import crontab
from django.apps import apps
from django.core.management import call_command
from django.core.management.base import CommandError
from django_celery_beat.models import CrontabSchedule, PeriodicTask, PeriodicTasks

from django_rclone_celery.checks import check_settings
from django_rclone_celery.conf import validate
from django_rclone_celery.schedules import (
    PREFIX,
    ZonedCrontab,
    beat_schedule,
    crontab_period,
    install_schedules,
    load_specs,
    spec_for,
)
from tests.celery_redis import celery_config, celery_includes  # noqa: F401
from tests.helpers.schedules import NIGHTLY, RETENTION, SCHEDULES


def ids(spec: Any) -> list[str]:
    return sorted(p.id for p in validate({"REMOTE": "r:", "SCHEDULES": {"s": spec}}))


# --- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("daily", ["django_rclone_celery.E020"]),
        ({**NIGHTLY, "cron": "x"}, ["django_rclone_celery.E021"]),
        ({"crontab": "0 3 * * *"}, ["django_rclone_celery.E022"]),
        ({**NIGHTLY, "task": "django_rclone_celery.db_bakup"}, ["django_rclone_celery.E022"]),
        ({"task": "django_rclone_celery.db_backup"}, ["django_rclone_celery.E023"]),
        ({**NIGHTLY, "every": 60}, ["django_rclone_celery.E023"]),
        ({**NIGHTLY, "crontab": "0 3 * *"}, ["django_rclone_celery.E024"]),
        ({**NIGHTLY, "crontab": "61 3 * * *"}, ["django_rclone_celery.E024"]),
        ({**NIGHTLY, "crontab": "0 0 30 2 *"}, ["django_rclone_celery.E024"]),
        ({**RETENTION, "every": 1}, ["django_rclone_celery.E025"]),
        ({**RETENTION, "every": "3600"}, ["django_rclone_celery.E025"]),
        ({**RETENTION, "every": True}, ["django_rclone_celery.E025"]),
        ({**RETENTION, "kwargs": ["default"]}, ["django_rclone_celery.E026"]),
        ({**RETENTION, "kwargs": {"when": datetime.now()}}, ["django_rclone_celery.E026"]),
        ({**NIGHTLY, "timezone": "Mars/Olympus"}, ["django_rclone_celery.E027"]),
        (NIGHTLY, []),
        (RETENTION, []),
        ({"task": "myproject.tasks.anything", "every": 60}, []),
    ],
)
def test_validation(spec: Any, expected: list[str]) -> None:
    assert ids(spec) == expected


def test_name_must_fit_periodic_task_name() -> None:
    def problems(name: str) -> list[str]:
        found = validate({"REMOTE": "r:", "SCHEDULES": {name: RETENTION}})
        return [p.id for p in found]

    assert problems("n" * 178) == []
    assert problems("n" * 179) == ["django_rclone_celery.E020"]
    assert problems("") == ["django_rclone_celery.E020"]


def test_bad_schedule_is_a_system_check_error(drc_config: Any) -> None:
    drc_config(SCHEDULES={"nightly": {**NIGHTLY, "timezone": "Nowhere"}})
    errors = [m for m in check_settings() if m.id == "django_rclone_celery.E027"]
    assert len(errors) == 1
    assert "'nightly'" in errors[0].msg


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [
        ("*/5 * * * *", 300),
        ("30 2 * * *", 86400),
        ("0 2,14 * * *", 12 * 3600),
        ("0 3 * * 1", 7 * 86400),
        ("0 3 1 * *", 28 * 86400),
        ("0 0 29 2 *", 1461 * 86400),
    ],
)
def test_crontab_period(expression: str, seconds: int) -> None:
    assert crontab_period(expression) == seconds


def test_expiry_is_below_the_period(schedules: Any) -> None:
    for spec in load_specs():
        assert 0 < spec.expire_seconds < spec.period


# --- django-celery-beat rows ----------------------------------------------------------------


def row(name: str) -> PeriodicTask:
    return PeriodicTask.objects.select_related("crontab", "interval").get(name=PREFIX + name)


@pytest.mark.django_db
def test_sync_creates_rows_with_explicit_timezone(schedules: Any) -> None:
    out = StringIO()
    call_command("backup_schedules", stdout=out)
    assert "Created: nightly, retention" in out.getvalue()

    nightly = row("nightly")
    assert nightly.task == "django_rclone_celery.db_backup"
    assert json.loads(nightly.kwargs) == {"database": "default", "clean": True}
    cron = nightly.crontab
    assert (cron.minute, cron.hour, cron.day_of_month, cron.month_of_year, cron.day_of_week) == (
        "30",
        "2",
        "*",
        "*",
        "*",
    )
    assert str(cron.timezone) == "Europe/Paris"
    assert nightly.interval is None
    assert nightly.enabled
    assert 0 < nightly.expire_seconds < 86400

    retention = row("retention")
    assert retention.task == "django_rclone_celery.db_cleanup"
    assert json.loads(retention.kwargs) == {"database": "default", "keep": 5}
    assert retention.crontab is None
    assert (retention.interval.every, retention.interval.period) == (3600, "seconds")
    assert 0 < retention.expire_seconds < 3600


@pytest.mark.django_db
def test_timezone_defaults_to_time_zone_not_utc(drc_config: Any, settings: Any) -> None:
    settings.TIME_ZONE = "America/New_York"
    drc_config(SCHEDULES={"nightly": {k: v for k, v in NIGHTLY.items() if k != "timezone"}})
    call_command("backup_schedules", stdout=StringIO())
    assert str(row("nightly").crontab.timezone) == "America/New_York"


@pytest.mark.django_db
def test_sync_keeps_admin_edits_until_reset(schedules: Any) -> None:
    call_command("backup_schedules", stdout=StringIO())
    # What an operator does in the admin: another time, other kwargs, disabled.
    edited = row("nightly")
    edited.crontab = CrontabSchedule.objects.create(
        minute="15", hour="4", timezone=ZoneInfo("Asia/Tokyo")
    )
    edited.kwargs = json.dumps({"database": "default", "clean": False})
    edited.enabled = False
    edited.save()

    out = StringIO()
    call_command("backup_schedules", stdout=out)
    assert "Kept (edits preserved; --reset overwrites): nightly, retention" in out.getvalue()
    kept = row("nightly")
    assert (kept.crontab.minute, kept.crontab.hour, str(kept.crontab.timezone)) == (
        "15",
        "4",
        "Asia/Tokyo",
    )
    assert json.loads(kept.kwargs) == {"database": "default", "clean": False}
    assert not kept.enabled

    before = PeriodicTasks.last_change()
    out = StringIO()
    call_command("backup_schedules", "--reset", stdout=out)
    assert "Reset: nightly, retention" in out.getvalue()
    reset = row("nightly")
    assert (reset.crontab.minute, reset.crontab.hour, str(reset.crontab.timezone)) == (
        "30",
        "2",
        "Europe/Paris",
    )
    assert json.loads(reset.kwargs) == NIGHTLY["kwargs"]
    assert reset.enabled
    assert PeriodicTasks.last_change() > before  # a running beat reloads


@pytest.mark.django_db
def test_removed_schedules_are_reported_then_deleted_by_reset(
    schedules: Any, drc_config: Any
) -> None:
    call_command("backup_schedules", stdout=StringIO())
    other = PeriodicTask.objects.create(
        name="not ours", task="x.y", interval=row("retention").interval
    )
    drc_config(SCHEDULES={"nightly": NIGHTLY})
    out = StringIO()
    call_command("backup_schedules", stdout=out)
    assert "Not in SCHEDULES any more (--reset deletes): retention" in out.getvalue()
    assert PeriodicTask.objects.filter(name=PREFIX + "retention").exists()

    out = StringIO()
    call_command("backup_schedules", "--reset", stdout=out)
    assert "Deleted (no longer in SCHEDULES): retention" in out.getvalue()
    assert not PeriodicTask.objects.filter(name=PREFIX + "retention").exists()
    assert PeriodicTask.objects.filter(pk=other.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_migrate_installs_schedules_and_keeps_edits(schedules: Any) -> None:
    call_command("migrate", verbosity=0)
    nightly = row("nightly")
    nightly.enabled = False
    nightly.save()
    call_command("migrate", verbosity=0)
    assert not row("nightly").enabled
    assert PeriodicTask.objects.filter(name__startswith=PREFIX).count() == 2


@pytest.mark.django_db(transaction=True)
def test_migrate_installs_nothing_when_opted_out(drc_config: Any) -> None:
    drc_config(SCHEDULES=SCHEDULES, INSTALL_SCHEDULES=False)
    call_command("migrate", verbosity=0)
    assert not PeriodicTask.objects.filter(name__startswith=PREFIX).exists()


def test_post_migrate_with_broken_settings_only_warns(drc_config: Any) -> None:
    drc_config(SCHEDULES={"nightly": {**NIGHTLY, "timezone": "Nowhere"}})
    # Own handler and level: Celery's test app reconfigures the root logger.
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("django_rclone_celery")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    try:
        install_schedules(sender=apps.get_app_config("django_rclone_celery"), using="default")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    [record] = records
    assert record.levelno == logging.WARNING
    assert "backup schedules not installed" in record.getMessage()
    assert "django_rclone_celery.E027" in record.getMessage()


@pytest.mark.django_db  # only "default": a query on "pg" would fail the test
def test_post_migrate_of_another_database_touches_nothing(schedules: Any) -> None:
    install_schedules(sender=apps.get_app_config("django_rclone_celery"), using="pg")
    assert not PeriodicTask.objects.filter(name__startswith=PREFIX).exists()


def test_post_migrate_without_django_celery_beat_does_nothing(
    schedules: Any, settings: Any
) -> None:
    # No database access is allowed in this test: any query would fail it.
    settings.INSTALLED_APPS = [a for a in settings.INSTALLED_APPS if a != "django_celery_beat"]
    install_schedules(sender=apps.get_app_config("django_rclone_celery"), using="default")


def test_command_without_django_celery_beat(settings: Any) -> None:
    settings.INSTALLED_APPS = [a for a in settings.INSTALLED_APPS if a != "django_celery_beat"]
    with pytest.raises(CommandError, match="beat_schedule"):
        call_command("backup_schedules", stdout=StringIO())


# --- plain beat_schedule --------------------------------------------------------------------


def test_beat_schedule(schedules: Any) -> None:
    entries = beat_schedule()
    assert set(entries) == {PREFIX + "nightly", PREFIX + "retention"}
    nightly = entries[PREFIX + "nightly"]
    assert nightly["task"] == "django_rclone_celery.db_backup"
    assert nightly["kwargs"] == NIGHTLY["kwargs"]
    assert nightly["options"] == {
        "expires": load_specs()[0].expire_seconds,
        "headers": {"periodic_task_name": PREFIX + "nightly"},
    }
    assert nightly["schedule"].tz == ZoneInfo("Europe/Paris")
    retention = entries[PREFIX + "retention"]
    assert retention["schedule"].total_seconds() == 3600
    assert retention["options"]["expires"] < 3600
    assert spec_for(PREFIX + "nightly") == load_specs()[0]
    assert spec_for("nightly") is None


def test_zoned_crontab_fires_in_its_own_timezone() -> None:
    # 01:30:30 UTC on 10 January is 02:30:30 in Paris.
    now = datetime(2026, 1, 10, 1, 30, 30, tzinfo=timezone.utc)
    last_run = datetime(2026, 1, 10, 0, 0, tzinfo=timezone.utc)
    paris = ZonedCrontab("30", "2", "*", "*", "*", zone="Europe/Paris", nowfun=lambda: now)
    utc = crontab("30", "2", "*", "*", "*", nowfun=lambda: now)
    assert paris.is_due(last_run)[0] is True
    assert utc.is_due(last_run)[0] is False


def test_zoned_crontab_survives_pickling(schedules: Any) -> None:
    # beat's default scheduler keeps its entries in a shelve file
    original = beat_schedule()[PREFIX + "nightly"]["schedule"]
    copy = pickle.loads(pickle.dumps(original))
    assert copy.tz == ZoneInfo("Europe/Paris")
    assert copy == original
    assert (copy.hour, copy.minute) == ({2}, {30})
