"""Hooks: management commands run against a chosen database before a dump or a swap.

While hooks run, the ``default`` alias (the one management commands use unless
told otherwise) and the alias being dumped or restored both point at the
chosen database. Every other alias is left alone. The routing is undone in a
``finally``, so a failing hook cannot leave a connection aimed at a temp DB.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, connections

from ..exceptions import HookFailed

logger = logging.getLogger("django_rclone_celery")


@contextmanager
def routed(alias: str, dbname: str) -> Iterator[None]:
    """Point ``alias`` and ``default`` at database ``dbname`` for the block."""
    conn = connections[alias]
    original = conn.settings_dict
    conn.close()
    conn.settings_dict = {**original, "NAME": dbname}
    default = None
    if alias != DEFAULT_DB_ALIAS:
        default = connections[DEFAULT_DB_ALIAS]
        # A fresh wrapper under the default alias, so code that asks for
        # ``connections["default"]`` (migrate does) talks to ``dbname``.
        connections[DEFAULT_DB_ALIAS] = conn.__class__(
            {**original, "NAME": dbname}, alias=DEFAULT_DB_ALIAS
        )
    try:
        yield
    finally:
        conn.close()
        conn.settings_dict = original
        if default is not None:
            connections[DEFAULT_DB_ALIAS].close()
            connections[DEFAULT_DB_ALIAS] = default


def run_hooks(commands: Sequence[str], *, alias: str, dbname: str, stage: str) -> None:
    """Run each command (``"migrate"``, ``"mycommand --flag"``) with ``dbname`` routed in."""
    if not commands:
        return
    with routed(alias, dbname):
        for command in commands:
            argv = shlex.split(command)
            if not argv:
                continue
            logger.info("pgclone %s hook: manage.py %s (on %s)", stage, command, dbname)
            try:
                call_command(*argv)
            except (Exception, SystemExit) as exc:
                raise HookFailed(f"{stage} hook {command!r} failed: {exc}") from exc
