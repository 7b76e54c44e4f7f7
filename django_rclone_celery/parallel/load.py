"""Restore and verify a parallel backup.

The restore fills the staged copy in three steps: the schema archive's
pre-data (tables, types, functions), then the data streams ``jobs`` at a
time beside the archive's own data (sequence values, large objects), then
its post-data (indexes, constraints, triggers) with ``pg_restore -j``. The
archive is fetched to a private temporary file first: ``pg_restore -j``
needs to seek, and it holds no table rows, so it grows with the schema, not
with the data. The staged copy is private until the swap, so its sessions
skip waiting for the WAL flush on commit and get more memory for index
builds (``PGOPTIONS``); the live database is not touched.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from .. import process
from ..compression import decompressor
from ..connectors.postgresql import PostgresConnector
from ..exceptions import InvalidBackup, RcloneError
from ..floor.manifest import Manifest
from ..process import CHUNK_SIZE, Command, Transform
from ..rclone import Rclone
from . import submit
from .streams import CopyScript, Piece, StreamEnd

# Session settings of every tool writing the staged copy (see the module doc;
# figures in docs/many-databases.md).
LOAD_OPTIONS = "-c synchronous_commit=off -c maintenance_work_mem=256MB"


# Compressed bytes read, and handed to the decompressor, at a time: one call's output
# stays near SLICE x the compression ratio instead of a whole 1 MiB read's
# (5-6 MB per stream on COPY text), so each loading stream holds well under 1 MB.
READ_SIZE = 256 << 10
SLICE = 32 << 10


def unpacked(chunk: bytes, unpack: Transform | None) -> Iterator[bytes]:
    """``chunk`` decompressed, in pieces of :data:`SLICE` compressed bytes."""
    if unpack is None:
        yield chunk
        return
    view = memoryview(chunk)
    for start in range(0, len(view), SLICE):
        out = unpack.feed(view[start : start + SLICE])
        if out:
            yield out if isinstance(out, bytes) else bytes(out)


def stream_path(path: str, stream: dict[str, Any]) -> str:
    directory, _, _ = path.rpartition("/")
    return f"{directory}/{stream['name']}" if directory else str(stream["name"])


def _fast(command: Command) -> Command:
    return replace(command, env={**command.env, "PGOPTIONS": LOAD_OPTIONS})


@contextmanager
def fetched_archive(rclone: Rclone, path: str, name: str, manifest: Manifest) -> Iterator[str]:
    """The schema archive, decompressed into a private temporary file; checked first."""
    unpack = decompressor(manifest.compression)  # type: ignore[arg-type]
    digest = hashlib.sha256()
    size = 0
    handle, local = tempfile.mkstemp(prefix="drc-schema-", suffix=".dump")
    try:
        with (
            os.fdopen(handle, "wb") as out,
            process.read_from(rclone.cat(path), error=RcloneError) as raw,
        ):
            while chunk := raw.read(READ_SIZE):
                digest.update(chunk)
                size += len(chunk)
                for part in unpacked(chunk, unpack):
                    out.write(part)
            if unpack:
                out.write(unpack.finish())
        if manifest.sha256 and (digest.hexdigest() != manifest.sha256 or size != manifest.size):
            raise InvalidBackup(f"{name!r} is corrupt: its checksum does not match its manifest")
        yield local
    finally:
        os.unlink(local)


def load_parallel(
    connector: PostgresConnector,
    rclone: Rclone,
    path: str,
    name: str,
    manifest: Manifest,
    target: str,
    *,
    jobs: int,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Restore the parallel backup at ``path`` into the database ``target``; bytes read."""
    with fetched_archive(rclone, path, name, manifest) as archive:

        def section(which: str, *extra: str) -> None:
            base = connector.restore_command(target)
            process.run(
                _fast(replace(base, argv=(*base.argv, f"--section={which}", *extra, archive)))
            )

        section("pre-data")
        read = _load_streams(connector, rclone, path, name, manifest, target, jobs, progress)
        section("data")  # sequence values, large objects, extensions' configuration rows
        section("post-data", f"--jobs={jobs}")
    return read + manifest.size


def _load_streams(
    connector: PostgresConnector,
    rclone: Rclone,
    path: str,
    name: str,
    manifest: Manifest,
    target: str,
    jobs: int,
    progress: Callable[[int], None] | None,
) -> int:
    total = len(manifest.streams)
    base = connector._command(
        [
            connector.program("psql"),
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            *connector._conn_args(),
            f"--dbname={target}",
            "-f",
            "-",
        ]
    )
    loader = _fast(base)
    lock = threading.Lock()
    done = [0]

    def one(stream: dict[str, Any]) -> int:
        index = int(stream["index"])
        corrupt = InvalidBackup(
            f"{name!r} is corrupt: the checksum of its stream {index} does not match its manifest"
        )
        source = rclone.cat(stream_path(path, stream))
        digest = hashlib.sha256()
        read = [0]

        def chunks() -> Iterator[bytes]:
            # Read, hashed and decompressed here, in small pieces (see READ_SIZE).
            # The manifest's checksum vouches for the stream the backup checked row
            # by row, so only its end is looked at: no second scan of every row
            # (figures in docs/many-databases.md). A stream that fails the check
            # fails inside the pipe, before psql's stdin closes.
            unpack = decompressor(manifest.compression)  # type: ignore[arg-type]
            end = StreamEnd(index, total)
            with process.read_from(source, error=RcloneError) as raw:
                while chunk := raw.read(READ_SIZE):
                    digest.update(chunk)
                    read[0] += len(chunk)
                    for part in unpacked(chunk, unpack):
                        end.feed(part)
                        yield part
                if digest.hexdigest() != stream["sha256"]:
                    raise corrupt
                tail = unpack.finish() if unpack else b""
                if tail:
                    end.feed(tail)
                    yield tail
            end.check(f"stream {index} of backup {name!r}")

        try:
            process.pipe_into(loader, chunks, digest=False)
        except InvalidBackup:
            raise
        except Exception as exc:
            # The load stopped early, its checksum unknown: a changed byte explains
            # more than what psql made of it, so read the stream again to tell.
            if not isinstance(exc, RcloneError) and _sha256(source) != stream["sha256"]:
                raise corrupt from exc
            raise
        with lock:
            done[0] += read[0]
            if progress:
                progress(done[0])
        return read[0]

    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="drc-load") as pool:
        return sum(f.result() for f in [submit(pool, one, s) for s in manifest.streams])


def _sha256(source: Command) -> str:
    digest = hashlib.sha256()
    with process.read_from(source, error=RcloneError) as raw:
        while chunk := raw.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def verify_streams(rclone: Rclone, path: str, name: str, manifest: Manifest) -> list[str]:
    """Read every stream once: size, sha256, zstd frame, end line, rows; the problems found."""
    problems: list[str] = []
    counts: dict[str, int] = {}
    total = len(manifest.streams)
    for stream in manifest.streams:
        index = int(stream["index"])
        pieces = [Piece.from_dict(p) for p in stream["pieces"]]
        script = CopyScript(index, total, len(pieces))
        unpack = decompressor(manifest.compression)  # type: ignore[arg-type]
        digest = hashlib.sha256()
        size = 0
        damage = ""
        with process.read_from(rclone.cat(stream_path(path, stream)), error=RcloneError) as raw:
            while chunk := raw.read(READ_SIZE):
                digest.update(chunk)
                size += len(chunk)
                if damage:
                    continue
                try:
                    for part in unpacked(chunk, unpack):
                        script.feed(part)
                except Exception as exc:  # zstd: corrupt frame
                    damage = f"its zstd stream is corrupt ({exc})"
            if unpack and not damage:
                try:
                    script.feed(unpack.finish())
                except Exception:
                    damage = "its zstd stream ends before the end of its frame (truncated)"
        said = f"stream {index}"
        if size != stream.get("size"):
            problems.append(f"{said} is {size} bytes, its manifest says {stream.get('size')}")
        if digest.hexdigest() != stream.get("sha256"):
            problems.append(f"the checksum of {said} does not match its manifest (sha256)")
        problem = damage or script.problem()
        if problem:
            problems.append(f"{said} {problem}")
            continue
        for piece, rows in zip(pieces, script.rows, strict=True):
            counts[piece.key] = counts.get(piece.key, 0) + rows
    if not problems and manifest.row_counts:
        differ = sorted(t for t in counts if counts[t] != manifest.row_counts.get(t))
        if differ:
            shown = ", ".join(
                f"{t}: {counts[t]} (manifest: {manifest.row_counts.get(t, 'missing')})"
                for t in differ[:5]
            )
            problems.append(f"its streams' row counts differ from its manifest's: {shown}")
    return problems
