"""Check problems: one shape for everything a system check reports.

Settings validators, schedule rules and the run-time checks all describe
what is wrong as a :class:`Problem`; :mod:`.checks` turns them into Django's
check messages. Ids are stable: ``django_rclone_celery.E0xx`` / ``W0xx``.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core import checks

# Every check of this package carries this tag. The operation commands run
# only these: a problem elsewhere in the project must not stop a backup.
TAG = "django_rclone_celery"
ID_PREFIX = "django_rclone_celery."


@dataclass(frozen=True)
class Problem:
    """One thing wrong, with its stable check id."""

    id: str
    msg: str
    hint: str = ""
    warning: bool = False

    def message(self, *, as_warning: bool = False, extra_hint: str = "") -> checks.CheckMessage:
        """The Django check message; ``as_warning`` downgrades an error (with ``extra_hint``)."""
        hint = f"{self.hint} {extra_hint}".strip()
        level = checks.Warning if self.warning or as_warning else checks.Error
        return level(self.msg, hint=hint or None, id=self.id)


def problem(number: str, msg: str, hint: str = "", *, warning: bool = False) -> Problem:
    """A problem by its short id (``"E011"``)."""
    return Problem(ID_PREFIX + number, msg, hint, warning)
