"""The shared shape of every operation command: parse, call the operation, report.

Commands hold no orchestration; they adapt arguments to an operation and map
this package's errors to ``CommandError`` (exit status 1, message on stderr).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from collections.abc import Callable
from functools import partial
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from ..checks import TAG as CHECK_TAG
from ..exceptions import DjangoRcloneCeleryError
from ..notify import first_line


def human_size(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"  # pragma: no cover


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


class OperationCommand(BaseCommand):
    """Base for commands that run one operation."""

    # Only this package's checks: an unrelated project error never blocks a
    # backup or a restore (and the other checks cost every run ~25 ms).
    requires_system_checks = [CHECK_TAG]

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--json", action="store_true", help="Print the result as JSON on stdout."
        )

    def run_from_argv(self, argv: list[str]) -> None:
        try:
            super().run_from_argv(argv)
            sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        except BrokenPipeError:
            # The reader went away (listbackups | head): stop quietly, as cat
            # does; stdout points at /dev/null so the exit flush cannot fail.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(0)
        # Only manage.py calls this, and its process ends next: leaving the
        # objects to the OS instead of collecting them at exit saves ~0.1 s.
        gc.freeze()

    def run_operation(self, func: Callable[..., Any], /, **kwargs: Any) -> Any:
        try:
            return func(**kwargs)
        except DjangoRcloneCeleryError as exc:
            raise CommandError(str(exc)) from exc
        except DatabaseError as exc:
            # A database server or file that failed under the run (the run is recorded
            # failed where the ledger could be written): one line, not a traceback.
            raise CommandError(f"database error: {first_line(str(exc))}") from exc

    def run_guarded(self, task: str, /, **kwargs: Any) -> Any:
        """Run task ``task``'s operation here, through the run guard.

        Like a worker's run it gets a ledger row and the database's lease;
        while another run holds the lease it waits (up to ``LOCK_WAIT``),
        saying so once on stderr.
        """
        from ..guard import run_here

        def waiting(message: str) -> None:
            self.stderr.write(f"{message}...")

        return self.run_operation(partial(run_here, task, on_wait=waiting), **kwargs)

    def emit(self, result: Any, text: str, options: dict[str, Any]) -> None:
        if options.get("json"):
            payload = result.as_dict() if hasattr(result, "as_dict") else result
            self.stdout.write(json.dumps(payload, indent=2, default=str))
        elif options.get("verbosity", 1) >= 1:
            self.stdout.write(self.style.SUCCESS(text))


def add_queue_arguments(parser: argparse.ArgumentParser) -> None:
    """``--enqueue``, ``--wait`` and ``--timeout`` (also for subcommands, such as pgclone's)."""
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--enqueue",
        action="store_true",
        help="Queue the run for a Celery worker and print its task id.",
    )
    mode.add_argument(
        "--wait",
        action="store_true",
        help="Queue the run for a Celery worker and show its progress until it ends.",
    )
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        metavar="SECONDS",
        help="With --wait: stop waiting after SECONDS and exit non-zero; the run goes on.",
    )


class QueueableCommand(OperationCommand):
    """An operation command that can also hand its run to a Celery worker.

    By default the operation runs in this process. ``--enqueue`` queues it
    and prints the task id; ``--wait`` queues it and follows its progress,
    exiting non-zero if it fails.
    """

    operation: str  # a key of enqueue.TASKS

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        add_queue_arguments(parser)

    # The result dict of the last run followed with --wait.
    waited: dict[str, Any] | None = None

    def hand_off(
        self, options: dict[str, Any], /, operation: str | None = None, **task_kwargs: Any
    ) -> bool:
        """Queue the run if ``--enqueue``/``--wait`` asked for it; False means run here.

        ``operation`` overrides the command's own (pgclone's verbs are several).
        """
        operation = operation or self.operation
        if options.get("timeout") is not None and not options.get("wait"):
            raise CommandError("--timeout only applies to --wait")
        if not (options.get("enqueue") or options.get("wait")):
            return False
        from ..enqueue import Update, enqueue, follow, results_app

        if options.get("wait"):
            self.run_operation(results_app)  # refuse before queueing, not after
        task_id = self.run_operation(partial(enqueue, operation, **task_kwargs))
        # With --json, stdout carries only the JSON document.
        out = self.stderr if options.get("json") else self.stdout
        out.write(f"Queued {operation} as task {task_id}")
        if not options.get("wait"):
            if options.get("json"):
                self.stdout.write(json.dumps({"task_id": task_id, "status": "queued"}))
            return True

        def show(update: Update) -> None:
            done = human_size(update.bytes_done)
            if update.bytes_total:
                percent = 100 * update.bytes_done / update.bytes_total
                done += f" / {human_size(update.bytes_total)} ({percent:.0f}%)"
            out.write(f"{update.stage or 'waiting'}: {done}")

        result = self.run_operation(
            partial(
                follow,
                task_id,
                show,
                timeout=options.get("timeout"),
                on_stalled=lambda line: self.stderr.write(line),
                operation=operation,
            )
        )
        self.waited = result
        if options.get("json"):
            self.stdout.write(json.dumps(result, indent=2, default=str))
        else:
            text = f"Task {task_id} {result.get('status', 'finished')}"
            if result.get("reason"):
                text += f" ({result['reason']})"
            if result.get("path"):
                text += f": {result['path']}"
            if result.get("size") is not None:
                text += f" ({human_size(result['size'])})"
            self.stdout.write(self.style.SUCCESS(text))
        return True
