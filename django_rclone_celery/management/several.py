"""``-d`` several times, or ``--all``: the commands that run once per database alias.

``dbbackup``, ``verifybackup`` and ``cleanupbackups`` share this; one alias
keeps the single-run output, several print one line per alias and fail
(exit status 1) when any alias failed, naming every failed one in one line.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from functools import partial
from typing import Any

from django.core.management.base import CommandError, CommandParser

from .. import many
from .base import QueueableCommand, human_size


def add_database_arguments(parser: CommandParser, what: str) -> None:
    parser.add_argument(
        "-d",
        "--database",
        action="append",
        metavar="ALIAS",
        help=f"Database alias (default: default); repeat it to {what} several in one run.",
    )
    parser.add_argument(
        "--all",
        action="store_true",
        dest="all_databases",
        help=f"{what.capitalize()} every alias of DJANGO_RCLONE['BACKUP_DATABASES'] "
        "(default: every alias in DATABASES), each its own run.",
    )


def refuse_several(parser: CommandParser) -> None:
    """For commands that take one alias only: ``--all`` exists to be refused clearly."""
    parser.add_argument("--all", action="store_true", dest="all_databases", help=argparse.SUPPRESS)


class SeveralDatabasesCommand(QueueableCommand):
    """A command that runs its operation for one alias, or for each of several."""

    what = "run"  # a verb for messages: "backup", "verification", "cleanup"

    def aliases(self, options: dict[str, Any]) -> list[str]:
        aliases: list[str] = self.run_operation(
            many.select,
            databases=options.get("database"),
            all_databases=bool(options.get("all_databases")),
        )
        return aliases

    def several(
        self,
        options: dict[str, Any],
        aliases: list[str],
        describe: Callable[[Any], str],
        **kwargs: Any,
    ) -> None:
        """Run ``self.operation`` for each alias, here or on workers, and report every one."""
        if options.get("timeout") is not None and not options.get("wait"):
            raise CommandError("--timeout only applies to --wait")
        if options.get("enqueue") or options.get("wait"):
            result = self._queued(options, aliases, **kwargs)
        else:

            def waiting(message: str) -> None:
                self.stderr.write(f"{message}...")

            result = self.run_operation(
                partial(many.run_each, self.operation, aliases, on_wait=waiting), **kwargs
            )
        if result is None:
            return
        if options.get("json"):
            self.stdout.write(json.dumps(result.as_dict(), indent=2, default=str))
        for outcome in result.outcomes:
            if outcome.failed:
                # One line per alias: a tool's stderr may span several.
                error = "; ".join(
                    x.strip() for x in (outcome.error or "").splitlines() if x.strip()
                )
                self.stderr.write(f"{outcome.database}: {error}")
            elif not options.get("json") and options.get("verbosity", 1) >= 1:
                text = (
                    describe_task_result(outcome.result)
                    if isinstance(outcome.result, dict)
                    else describe(outcome.result)
                )
                self.stdout.write(self.style.SUCCESS(text))
        if result.failed:
            raise CommandError(result.failure_line(self.what.capitalize()))

    def _queued(
        self, options: dict[str, Any], aliases: list[str], **kwargs: Any
    ) -> many.ManyResult | None:
        if options.get("wait"):
            from ..enqueue import results_app

            self.run_operation(results_app)  # refuse before queueing, not after
        ids: dict[str, str] = self.run_operation(
            partial(many.enqueue_each, self.operation, aliases), **kwargs
        )
        out = self.stderr if options.get("json") else self.stdout
        for alias, task_id in ids.items():
            out.write(f"Queued {self.operation} of {alias} as task {task_id}")
        if not options.get("wait"):
            if options.get("json"):
                queued = {a: {"task_id": t, "status": "queued"} for a, t in ids.items()}
                self.stdout.write(json.dumps({"databases": queued}, indent=2))
            return None

        def show(alias: str, update: Any) -> None:
            done = human_size(update.bytes_done)
            out.write(f"{alias}: {update.stage or 'waiting'}: {done}")

        result: many.ManyResult = self.run_operation(
            many.follow_each,
            ids=ids,
            timeout=options.get("timeout"),
            on_update=show,
            on_stalled=lambda line: self.stderr.write(line),
            operation=self.operation,
        )
        return result


def describe_task_result(result: Any) -> str:
    """A queued run's result dict, in one line."""
    if not isinstance(result, dict):
        return str(result)
    text = f"{result.get('database')}: {result.get('status', 'finished')}"
    if result.get("path"):
        text += f": {result['path']}"
    if result.get("size") is not None:
        text += f" ({human_size(result['size'])})"
    return text
