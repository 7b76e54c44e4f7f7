"""Atomic publication on a remote: stream to a partial name, then ``moveto``.

Nothing is visible under the final name until the whole stream, and its
manifest (written first), are uploaded; a failed upload removes what it wrote.
Shared by database backups (native and portable) and pgclone dumps.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

from .. import naming, process, rc
from ..completeness import StreamCheck
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
            # Gone, or on a remote that does not exist (the run's own error says so).
            if not (exc.not_found or exc.no_such_remote):
                logger.warning("could not remove %s: %s", path, exc)


@dataclass
class Publication:
    """An upload under way: write to ``partial``, then :meth:`commit`.

    ``calls`` takes the commit's two small calls (the manifest, the move):
    given a running ``rclone rcd`` (:func:`rc.daemon`), neither waits for an
    rclone start, which is a tenth of a second after a stream has ended.
    """

    rclone: Rclone
    final: str
    partial: str
    manifest_path: str | None = None
    calls: rc.Control | None = None

    def commit(self, manifest: bytes | None = None, *, final: str | None = None) -> None:
        """Publish under ``final`` (default: the name given at the start)."""
        calls = self.calls or rc.Control.direct(self.rclone)
        if final is not None:
            self.final = final
        if manifest is not None:
            self.manifest_path = naming.manifest_name(self.final)
            calls.put_bytes(self.manifest_path, manifest)
        calls.move_file(self.partial, self.final)


@contextmanager
def publishing(
    rclone: Rclone, final: str, *, calls: rc.Control | None = None
) -> Iterator[Publication]:
    """Yield a :class:`Publication`; if the block fails, remove what it wrote."""
    publication = Publication(rclone, final, partial_name(final), calls=calls)
    try:
        yield publication
    except BaseException:
        discard(rclone, publication.partial, publication.manifest_path)
        raise


def stream_and_publish(
    rclone: Rclone,
    source: Command,
    final: str,
    *,
    manifest: Callable[[PipeStats], bytes] | None = None,
    transform: Transform | None = None,
    progress: Callable[[int], None] | None = None,
    check: StreamCheck | None = None,
) -> PipeStats:
    """Upload ``source``'s stdout to ``final`` atomically, with ``final.manifest.json``.

    ``manifest`` builds the manifest from the stream's size and checksum.
    ``check`` judges the stream's completeness before the upload may end.
    """
    with publishing(rclone, final) as publication:
        stats = process.pipe(
            source,
            rclone.rcat(publication.partial),
            transform=transform,
            digest="sink",
            progress=progress,
            sink_error=RcloneError,
            tap=check.feed if check else None,
            before_end=partial(check.check, f"the dump for {final!r}") if check else None,
        )
        publication.commit(manifest(stats) if manifest else None)
    return stats
