"""Atomic publication on a remote: stream to a partial name, then ``moveto``.

Nothing is visible under the final name until the whole stream (and its
manifest, written first) is uploaded; a failed upload removes what it wrote.
Shared by database backups and pgclone dumps.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from .. import naming, process
from ..exceptions import RcloneError
from ..process import Command, PipeStats, Transform
from ..rclone import Rclone

logger = logging.getLogger("django_rclone_celery")


def partial_name(final: str) -> str:
    return f"{final}{naming.PARTIAL_MARKER}{uuid.uuid4().hex}"


def discard(rclone: Rclone, *paths: str | None) -> None:
    """Remove what a failed upload wrote; already gone is fine."""
    for path in paths:
        if path is None:
            continue
        try:
            rclone.deletefile(path)
        except RcloneError as exc:
            if exc.returncode not in (3, 4):
                logger.warning("could not remove %s: %s", path, exc)


def stream_and_publish(
    rclone: Rclone,
    source: Command,
    final: str,
    *,
    manifest: Callable[[PipeStats], bytes] | None = None,
    transform: Transform | None = None,
    progress: Callable[[int], None] | None = None,
) -> PipeStats:
    """Upload ``source``'s stdout to ``final`` atomically, with ``final.manifest.json``.

    ``manifest`` builds the manifest from the stream's size and checksum.
    """
    partial = partial_name(final)
    manifest_path = naming.manifest_name(final) if manifest else None
    wrote_manifest = False
    try:
        stats = process.pipe(
            source,
            rclone.rcat(partial),
            transform=transform,
            digest="sink",
            progress=progress,
            sink_error=RcloneError,
        )
        if manifest is not None and manifest_path is not None:
            rclone.put_bytes(manifest_path, manifest(stats))
            wrote_manifest = True
        rclone.moveto(partial, final)
    except BaseException:
        discard(rclone, partial, manifest_path if wrote_manifest else None)
        raise
    return stats
