"""Where dumps live: any rclone path; keys are paths relative to it."""

from __future__ import annotations

from ..rclone import Rclone, join
from . import keys


def list_keys(rclone: Rclone, location: str, prefix: str = "", *, strict: bool) -> list[str]:
    """Dump keys under ``location`` starting with ``prefix``, newest first.

    Only the directory the prefix names is listed, so a prefix such as
    ``prod/default/`` stays cheap on a remote holding many instances.
    """
    directory = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
    found = []
    base = join(location, directory) if directory else location
    for entry in rclone.lsjson(base, recursive=True):
        path = f"{directory}/{entry.path}" if directory else entry.path
        if path.startswith(prefix) and keys.is_key(path, strict=strict):
            found.append(path)
    return sorted(found, reverse=True)
