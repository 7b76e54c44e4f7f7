"""Checks of single values, shared by the settings, the registry and the commands.

Pure functions with no import of the package's settings, so that anything
may use them without an import circle.
"""

from __future__ import annotations

import math
import re
from urllib.parse import urlsplit

from .exceptions import ConfigurationError

_SHARE = re.compile(r"(\d+(?:\.\d+)?)%")


def is_http_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def max_delete_problem(value: object) -> str:
    """Why ``value`` is not a deletion limit ("" when it is one)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return 'must be a count (50) or a share ("20%")'
    if isinstance(value, int):
        return "must not be negative" if value < 0 else ""
    match = _SHARE.fullmatch(value.strip())
    if match is None:
        return f'must be a count (50) or a share ("20%"), not {value!r}'
    return "must be at most 100%" if float(match.group(1)) > 100 else ""


def max_delete_limit(value: int | str, files: int) -> int:
    """How many of ``files`` destination files a sync may delete under the limit ``value``."""
    problem = max_delete_problem(value)
    if problem:
        raise ConfigurationError(f"max delete {problem}")
    if isinstance(value, int):
        return value
    match = _SHARE.fullmatch(value.strip())
    assert match is not None
    # Rounded up: a share allows at least one deletion from a non-empty destination.
    return math.ceil(files * float(match.group(1)) / 100)
