from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import CommandError, CommandParser

from ...conf import max_delete_problem
from ...operations import plan_restore
from ..base import QueueableCommand, human_size


def add_guard_arguments(parser: CommandParser, empty: str) -> None:
    parser.add_argument("--allow-empty", action="store_true", help=f"Allow syncing from {empty}.")
    parser.add_argument(
        "--max-delete",
        metavar="N|N%",
        help="Deletion limit for this run: a count or a share of the destination's files "
        "(default: MEDIA_MAX_DELETE).",
    )


def guard_options(options: dict[str, Any]) -> dict[str, Any]:
    """``allow_empty`` and ``max_delete`` (an int or "N%") from the command line."""
    text = options.get("max_delete")
    value: int | str | None = None
    if text is not None:
        value = int(text) if text.strip().isdigit() else text.strip()
        problem = max_delete_problem(value)
        if problem:
            raise CommandError(f"--max-delete {problem}")
    return {"allow_empty": bool(options.get("allow_empty")), "max_delete": value}


def task_kwargs(guards: dict[str, Any]) -> dict[str, Any]:
    """The guard options a queued run needs: only those set, so old workers read the message."""
    return {k: v for k, v in guards.items() if v is not None and v is not False}


def _has_terminal() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError):  # closed or detached
        return False


class Command(QueueableCommand):
    operation = "media_restore"
    help = (
        "Restore MEDIA_ROOT from the rclone remote: the latest backup, or --at a media point. "
        "Local files not in it are deleted; asks first."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--at",
            metavar="TIME",
            help="Restore the media as at this point: a point's name from "
            "'listbackups --media', an ISO time (UTC if no zone) or 'latest'.",
        )
        add_guard_arguments(parser, "a remote that holds no media (MEDIA_ROOT is then emptied)")
        parser.add_argument(
            "--noinput",
            "--no-input",
            action="store_false",
            dest="interactive",
            help="Do not ask for confirmation.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        guards = guard_options(options)
        at = options["at"]
        if options["interactive"]:
            if not _has_terminal():
                raise CommandError(
                    "mediarestore asks for confirmation, but there is no terminal to ask on; "
                    "pass --noinput to restore without asking"
                )
            plan = self.run_operation(plan_restore, at=at, **guards)
            point = f" as at point {plan.point}" if plan.point else ""
            try:
                answer = input(
                    f"Restore media into {plan.destination} from {plan.source}{point}? "
                    f"{len(plan.copy)} files will be copied, {len(plan.replace)} local files "
                    f"replaced and {len(plan.delete)} local files deleted. [y/N] "
                )
            except EOFError:
                answer = ""
            if answer.strip().lower() not in ("y", "yes"):
                self.stdout.write("Media restore cancelled.")
                return
            # The run may not delete more than was confirmed, and restores the confirmed point.
            guards["max_delete"] = len(plan.delete)
            at = plan.point or at
        if self.hand_off(options, **task_kwargs({"at": at, **guards})):
            return
        result = self.run_guarded("media_restore", at=at, **guards)
        self.emit(
            result,
            f"Synced {result.source} to {result.destination}: {result.copied} copied, "
            f"{result.replaced} replaced, {result.deleted} deleted "
            f"({human_size(result.bytes)} moved)",
            options,
        )
