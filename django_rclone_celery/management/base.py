"""The shared shape of every operation command: parse, call the operation, report.

Commands hold no orchestration; they adapt arguments to an operation and map
this package's errors to ``CommandError`` (exit status 1, message on stderr).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ..exceptions import DjangoRcloneCeleryError


def human_size(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"  # pragma: no cover


class OperationCommand(BaseCommand):
    """Base for commands that run one operation."""

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--json", action="store_true", help="Print the result as JSON on stdout."
        )

    def run_operation(self, func: Callable[..., Any], /, **kwargs: Any) -> Any:
        try:
            return func(**kwargs)
        except DjangoRcloneCeleryError as exc:
            raise CommandError(str(exc)) from exc

    def emit(self, result: Any, text: str, options: dict[str, Any]) -> None:
        if options.get("json"):
            payload = result.as_dict() if hasattr(result, "as_dict") else result
            self.stdout.write(json.dumps(payload, indent=2, default=str))
        elif options.get("verbosity", 1) >= 1:
            self.stdout.write(self.style.SUCCESS(text))
