"""Schedules: ``DJANGO_RCLONE["SCHEDULES"]`` as beat entries.

Each named spec becomes either a django-celery-beat ``PeriodicTask`` row
(:func:`sync_periodic_tasks`, run on ``migrate`` and by ``manage.py
backup_schedules``) or an entry of a plain Celery ``beat_schedule`` dict
(:func:`beat_schedule`). Rows are only created, never overwritten, unless
``reset=True``: what an operator changes in the admin stays changed.
"""

from __future__ import annotations

import json
import logging
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta, tzinfo
from functools import partial
from typing import Any

from celery.schedules import crontab as celery_crontab
from django.apps import apps
from django.db import router, transaction
from django.utils import timezone as dj_timezone

from .conf import Settings, get_settings
from .exceptions import ConfigurationError

# The rules live apart (the settings check schedules with them); their names stay here too.
from .schedule_rules import KNOWN_TASKS as KNOWN_TASKS
from .schedule_rules import MIN_EVERY as MIN_EVERY
from .schedule_rules import PREFIX as PREFIX
from .schedule_rules import SPEC_KEYS as SPEC_KEYS
from .schedule_rules import TASK_PREFIX as TASK_PREFIX
from .schedule_rules import crontab_period as crontab_period
from .schedule_rules import schedule_problems as schedule_problems

logger = logging.getLogger("django_rclone_celery")

# Installed with the schedules when MAX_BACKUP_AGE or MAX_VERIFY_AGE is set.
WATCHDOG = "watchdog"
WATCHDOG_TASK = TASK_PREFIX + WATCHDOG
# The header django-celery-beat's scheduler puts on each message; plain beat
# entries set it themselves, so tasks find their schedule (and slot) either way.
SCHEDULE_HEADER = "periodic_task_name"


@dataclass(frozen=True, kw_only=True)
class ScheduleSpec:
    """One validated entry of ``DJANGO_RCLONE["SCHEDULES"]``."""

    name: str
    task: str
    crontab: str | None = None
    every: int | None = None
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    timezone: str = "UTC"
    ping_url: str | None = None  # health-check URL pinged by this schedule's runs

    @property
    def periodic_task_name(self) -> str:
        """The unique, namespaced ``PeriodicTask.name``."""
        return PREFIX + self.name

    @property
    def period(self) -> int:
        """Seconds between two runs (the shortest gap, for a crontab)."""
        if self.every is not None:
            return self.every
        assert self.crontab is not None
        return crontab_period(self.crontab)

    @property
    def expire_seconds(self) -> int:
        """A message not started within this many seconds is dropped: below the period,
        so a late message cannot run in the next slot."""
        return self.period - max(1, self.period // 10)

    @property
    def headers(self) -> dict[str, str]:
        return {SCHEDULE_HEADER: self.periodic_task_name}

    def cron_fields(self) -> dict[str, str]:
        """The five crontab fields by django-celery-beat's names."""
        assert self.crontab is not None
        minute, hour, day_of_month, month_of_year, day_of_week = self.crontab.split()
        return {
            "minute": minute,
            "hour": hour,
            "day_of_month": day_of_month,
            "month_of_year": month_of_year,
            "day_of_week": day_of_week,
        }


def load_specs(settings: Settings | None = None) -> list[ScheduleSpec]:
    """The configured schedules, validated (settings are validated by ``get_settings``)."""
    settings = settings or get_settings()
    default_tz = dj_timezone.get_default_timezone_name()
    specs = [
        ScheduleSpec(
            name=name,
            task=spec["task"],
            crontab=" ".join(spec["crontab"].split()) if "crontab" in spec else None,
            every=spec.get("every"),
            kwargs=dict(spec.get("kwargs", {})),
            timezone=spec.get("timezone") or default_tz,
            ping_url=spec.get("ping_url") or None,
        )
        for name, spec in sorted(settings.schedules.items())
    ]
    watched = any(settings.max_backup_age.values()) or any(settings.max_verify_age.values())
    if watched and WATCHDOG not in settings.schedules:
        specs.append(
            ScheduleSpec(
                name=WATCHDOG,
                task=WATCHDOG_TASK,
                every=settings.watchdog_interval,
                timezone=default_tz,
            )
        )
    return specs


# --- plain Celery beat ----------------------------------------------------------------------


_Crontab: Any = celery_crontab  # untyped base: the stubs disagree with celery on tz/reduce


class ZonedCrontab(_Crontab):  # type: ignore[misc]
    """A crontab evaluated in its own timezone instead of the app's.

    Picklable, since beat's default scheduler shelves its entries.
    """

    def __init__(self, *args: Any, zone: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.zone = zone
        self.tz = zoneinfo.ZoneInfo(zone)

    def __reduce__(self) -> tuple[Any, ...]:
        cls, args, kwargs = super().__reduce__()
        return (partial(cls, zone=self.zone), args, kwargs)

    @property
    def tz(self) -> tzinfo:
        return self._tz

    @tz.setter
    def tz(self, value: tzinfo) -> None:
        self._tz = value


def beat_schedule(settings: Settings | None = None) -> dict[str, dict[str, Any]]:
    """The schedules as a Celery ``beat_schedule`` dict, for projects without
    django-celery-beat: ``app.conf.beat_schedule = beat_schedule()``."""
    entries = {}
    for spec in load_specs(settings):
        if spec.crontab is not None:
            f = spec.cron_fields()
            schedule: Any = ZonedCrontab(
                f["minute"],
                f["hour"],
                f["day_of_week"],
                f["day_of_month"],
                f["month_of_year"],
                zone=spec.timezone,
            )
        else:
            schedule = timedelta(seconds=spec.period)
        entries[spec.periodic_task_name] = {
            "task": spec.task,
            "schedule": schedule,
            "kwargs": dict(spec.kwargs),
            "options": {"expires": spec.expire_seconds, "headers": spec.headers},
        }
    return entries


# --- django-celery-beat ---------------------------------------------------------------------


@dataclass
class SyncReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)


def _row_values(spec: ScheduleSpec, using: str) -> dict[str, Any]:
    from django_celery_beat.models import CrontabSchedule, IntervalSchedule

    values: dict[str, Any] = {
        "task": spec.task,
        "kwargs": json.dumps(dict(spec.kwargs), sort_keys=True),
        "args": "[]",
        "headers": "{}",  # the scheduler adds periodic_task_name itself
        "expire_seconds": spec.expire_seconds,
        "expires": None,
        "enabled": True,
        "one_off": False,
        "crontab": None,
        "interval": None,
        "solar": None,
        "clocked": None,
        "description": (
            f"From DJANGO_RCLONE['SCHEDULES'][{spec.name!r}]. Edits made here are kept "
            "until `manage.py backup_schedules --reset`."
        ),
    }
    if spec.crontab is not None:
        # Always explicit: the model's default timezone is not the project's.
        values["crontab"], _ = CrontabSchedule.objects.using(using).get_or_create(
            **spec.cron_fields(), timezone=zoneinfo.ZoneInfo(spec.timezone)
        )
    else:
        values["interval"], _ = IntervalSchedule.objects.using(using).get_or_create(
            every=spec.period, period=IntervalSchedule.SECONDS
        )
    return values


def sync_periodic_tasks(
    *, reset: bool = False, using: str | None = None, settings: Settings | None = None
) -> SyncReport:
    """Create a ``PeriodicTask`` row per schedule that has none.

    With ``reset``, existing rows are overwritten from the settings and rows
    of schedules removed from the settings are deleted; without it they are
    left alone (and reported as ``kept`` / ``stale``).
    """
    from django_celery_beat.models import PeriodicTask, PeriodicTasks

    using = using or router.db_for_write(PeriodicTask)
    specs = load_specs(settings)
    report = SyncReport()
    rows = PeriodicTask.objects.using(using)
    with transaction.atomic(using=using):
        for spec in specs:
            existing = rows.filter(name=spec.periodic_task_name).first()
            if existing is not None and not reset:
                report.kept.append(spec.name)
                continue
            row = existing or PeriodicTask(name=spec.periodic_task_name)
            for attr, value in _row_values(spec, using).items():
                setattr(row, attr, value)
            row.save(using=using)
            (report.updated if existing else report.created).append(spec.name)
        wanted = {spec.periodic_task_name for spec in specs}
        leftovers = [
            n
            for n in rows.filter(name__startswith=PREFIX).values_list("name", flat=True)
            if n not in wanted
        ]
        names = [n.removeprefix(PREFIX) for n in leftovers]
        if reset and leftovers:
            rows.filter(name__in=leftovers).delete()
            report.removed.extend(names)
        else:
            report.stale.extend(names)
        # PeriodicTasks.update_changed() on `using`: beat reloads. Row saves bump it
        # too, but a bulk delete does not.
        PeriodicTasks.objects.using(using).update_or_create(
            ident=1, defaults={"last_update": dj_timezone.now()}
        )
    return report


def install_schedules(sender: Any, using: str = "default", **kwargs: Any) -> None:
    """``post_migrate`` receiver: create missing rows, keep existing ones.

    Runs for our app only, on the database that holds django-celery-beat's
    tables, and not at all with ``INSTALL_SCHEDULES = False``.
    """
    if not apps.is_installed("django_celery_beat"):
        return
    from django_celery_beat.models import PeriodicTask

    if router.db_for_write(PeriodicTask) != using:
        return
    if not router.allow_migrate_model(using, PeriodicTask):
        return
    try:
        settings = get_settings()
    except ConfigurationError as exc:
        # `manage.py check` reports it; a migration must not fail over it.
        logger.warning("backup schedules not installed: %s", exc)
        return
    if settings.install_schedules and load_specs(settings):
        sync_periodic_tasks(using=using, settings=settings)


def spec_for(periodic_task_name: str, settings: Settings | None = None) -> ScheduleSpec | None:
    """The configured spec behind a beat entry name (``"django_rclone_celery: <name>"``)."""
    if not periodic_task_name.startswith(PREFIX):
        return None
    name = periodic_task_name.removeprefix(PREFIX)
    return next((s for s in load_specs(settings) if s.name == name), None)
