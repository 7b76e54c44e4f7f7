"""Rules of ``DJANGO_RCLONE["SCHEDULES"]`` (ids ``django_rclone_celery.E020``-``E027``, ``E066``).

Apart from :mod:`.schedules` so that the settings can check schedules
without importing what builds them (which needs the settings).
"""

from __future__ import annotations

import itertools
import json
import zoneinfo
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

from celery.schedules import crontab as celery_crontab

from . import registry
from .problems import ID_PREFIX, Problem
from .values import is_http_url

PREFIX = "django_rclone_celery: "
SPEC_KEYS = frozenset({"task", "crontab", "every", "kwargs", "timezone", "ping_url"})
TASK_PREFIX = registry.TASK_PREFIX
KNOWN_TASKS = registry.TASK_NAMES  # every task of the registry, portable_backup included
MIN_EVERY = 2  # seconds; expire_seconds must stay below the period


def _parse_crontab(expression: str) -> Any:  # celery-types lacks the expanded sets
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"needs 5 fields 'm h dom mon dow', got {len(fields)}")
    minute, hour, day_of_month, month_of_year, day_of_week = fields
    return celery_crontab(minute, hour, day_of_week, day_of_month, month_of_year)


def crontab_period(expression: str) -> int:
    """The shortest gap in seconds between two firings of a crontab (wall clock, no DST).

    Celery fires only on days matching both day-of-month and day-of-week.
    Eight years from a leap year cover every calendar pattern.
    """
    cron = _parse_crontab(expression)
    minutes_of_day = sorted(h * 60 + m for h in cron.hour for m in cron.minute)
    start = date(2024, 1, 1)
    days = [
        n
        for n in range(8 * 366)
        if (d := start + timedelta(days=n)).month in cron.month_of_year
        and d.day in cron.day_of_month
        and (d.weekday() + 1) % 7 in cron.day_of_week
    ]
    if not days:
        raise ValueError("never fires")
    gaps = [b - a for a, b in itertools.pairwise(minutes_of_day)]
    first, last = minutes_of_day[0], minutes_of_day[-1]
    gaps += [(b - a) * 1440 - last + first for a, b in itertools.pairwise(days)]
    return min(gaps) * 60 if gaps else 8 * 366 * 86400


def _spec_problems(name: Any, spec: Any) -> list[Problem]:
    def problem(number: int, msg: str, hint: str = "") -> Problem:
        return Problem(f"{ID_PREFIX}E{number:03d}", f"SCHEDULES[{name!r}] {msg}", hint)

    if not isinstance(name, str) or not name or len(PREFIX + name) > 200:
        return [problem(20, "needs a non-empty string name of at most 178 characters.")]
    if not isinstance(spec, Mapping):
        return [
            problem(
                20,
                "must be a dict.",
                'e.g. {"task": "django_rclone_celery.db_backup", '
                '"crontab": "30 2 * * *", "kwargs": {"database": "default"}}',
            )
        ]
    problems = []
    unknown = sorted(set(spec) - SPEC_KEYS)
    if unknown:
        problems.append(
            problem(21, f"has unknown keys {unknown}.", f"Allowed: {sorted(SPEC_KEYS)}.")
        )
    task = spec.get("task")
    if not isinstance(task, str) or not task:
        problems.append(problem(22, "needs 'task', a Celery task name."))
    elif task.startswith(TASK_PREFIX) and task not in KNOWN_TASKS:
        problems.append(
            problem(22, f"names an unknown task {task!r}.", f"Known: {sorted(KNOWN_TASKS)}.")
        )
    if ("crontab" in spec) == ("every" in spec):
        problems.append(problem(23, "needs exactly one of 'crontab' and 'every'."))
    elif "crontab" in spec:
        expression = spec["crontab"]
        try:
            if not isinstance(expression, str):
                raise ValueError("must be a string")
            crontab_period(expression)
        except (ValueError, TypeError) as exc:
            problems.append(
                problem(
                    24, f"has an invalid crontab {expression!r}: {exc}.", "Use 'm h dom mon dow'."
                )
            )
    else:
        every = spec["every"]
        if not isinstance(every, int) or isinstance(every, bool) or every < MIN_EVERY:
            problems.append(
                problem(25, f"'every' must be an integer number of seconds >= {MIN_EVERY}.")
            )
    kwargs = spec.get("kwargs", {})
    if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs):
        problems.append(problem(26, "'kwargs' must be a dict with string keys."))
    else:
        try:
            json.dumps(kwargs)
        except (TypeError, ValueError):
            problems.append(problem(26, "'kwargs' must be JSON-serialisable."))
        else:
            # The task would refuse them at the door: say so now, with the same words.
            ours = registry.by_task_name(task) if isinstance(task, str) else None
            if ours is not None:
                problems.extend(
                    problem(26, f"has bad kwargs: {text}.")
                    for text in registry.problems(ours.name, kwargs)
                )
    if "timezone" in spec:
        tz = spec["timezone"]
        try:
            if not isinstance(tz, str):
                raise ValueError
            zoneinfo.ZoneInfo(tz)
        except (ValueError, zoneinfo.ZoneInfoNotFoundError):
            problems.append(
                problem(
                    27, f"has an unknown timezone {tz!r}.", "An IANA name such as 'Europe/Paris'."
                )
            )
    ping_url = spec.get("ping_url")
    if ping_url is not None and not (isinstance(ping_url, str) and is_http_url(ping_url)):
        problems.append(problem(66, "'ping_url' must be an http:// or https:// URL."))
    return problems


def schedule_problems(schedules: Mapping[Any, Any]) -> list[Problem]:
    """Problems with ``DJANGO_RCLONE["SCHEDULES"]``; ids ``django_rclone_celery.E020``-``E027``."""
    return [p for name, spec in schedules.items() for p in _spec_problems(name, spec)]
