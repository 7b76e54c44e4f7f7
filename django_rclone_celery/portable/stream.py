"""The single-stream form as bytes for rclone: compressed on the way out, checked on the way in.

A portable backup is one object: the sections of every table one after
another (what ``dumpdb --stdout`` prints), zstd-compressed, uploaded by
``rclone rcat`` and read back by ``rclone cat``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import IO

from django.db import DatabaseError, transaction

from .. import process
from ..compression import ZstdCompress, ZstdDecompress, auto_threads, usable_cpus
from ..exceptions import DjangoRcloneCeleryError, RcloneError, RestoreError, missing_backup
from ..process import CHUNK_SIZE, PipeStats
from ..rclone import Rclone
from ..tap import Tap, TappedReader
from .dump import TableCallback, TableDump, iter_dump
from .errors import PortableFormatError
from .load import LoadResult, load_portable_stream
from .selection import ModelType

EXTENSION = "portable.jsonl"  # backup names end .portable.jsonl.zst


def compressed_dump(
    *,
    using: str,
    compress: bool,
    level: int = 1,
    threads: int | None = None,
    app_labels: Sequence[str] = (),
    models: Sequence[ModelType] | None = None,
    on_table: TableCallback | None = None,
) -> Callable[[], Iterator[bytes]]:
    """A producer for ``process.pipe_into``: the dump, zstd-compressed if asked, in ~1 MB chunks."""

    if threads is None:
        threads = auto_threads(usable_cpus(), python_producer=True)

    def chunks() -> Iterator[bytes]:
        packer = ZstdCompress(level, threads) if compress else None
        pending: list[bytes] = []
        size = 0
        for piece in iter_dump(app_labels, models=models, using=using, on_table=on_table):
            out = packer.feed(piece) if packer else piece
            if out:
                pending.append(out)
                size += len(out)
            if size >= CHUNK_SIZE:
                yield b"".join(pending)
                pending, size = [], 0
        if packer:
            pending.append(packer.finish())
        tail = b"".join(pending)
        if tail:
            yield tail

    return chunks


def checked_lines(
    reader: IO[bytes],
    *,
    compressed: bool,
    sha256: str = "",
    name: str = "backup",
    progress: Callable[[int], None] | None = None,
) -> Iterator[bytes]:
    """Lines of a stored stream; the checksum and the end of the zstd frame are checked
    once the last byte is read, so a load consuming these lines fails before commit."""
    unpack = ZstdDecompress() if compressed else None
    # Hashed only when there is a checksum to match (verify hashes the stream itself).
    tapped = TappedReader(reader, progress, Tap(hashing=bool(sha256)))
    rest = b""
    while True:
        chunk = tapped.read(CHUNK_SIZE)
        if not chunk:
            break
        try:
            data = rest + (unpack.feed(chunk) if unpack else chunk)
        except Exception as exc:  # zstandard.ZstdError: corrupt compressed data
            raise PortableFormatError(f"{name} is corrupt: {exc}") from None
        lines = data.split(b"\n")
        rest = lines.pop()
        yield from lines
    if unpack:
        try:
            rest += unpack.finish()
        except Exception as exc:
            raise PortableFormatError(f"{name} is cut short: {exc}") from None
    if sha256 and tapped.sha256 != sha256:
        raise PortableFormatError(f"{name} is corrupt: its checksum does not match its manifest")
    if rest:
        yield rest


def upload(
    rclone: Rclone,
    partial: str,
    *,
    using: str,
    compress: bool,
    level: int,
    threads: int | None,
    progress: Callable[[int], None] | None = None,
) -> tuple[PipeStats, dict[str, int]]:
    """Stream the whole dump of ``using`` into ``rclone rcat partial``.

    Returns the upload's statistics (size and sha256 of the stored bytes) and
    the exact row count of every table, for the manifest.
    """
    counts: dict[str, int] = {}

    def on_table(table: TableDump) -> None:
        counts[table.table] = table.rows
        if progress:
            progress(sum(counts.values()))

    producer = compressed_dump(
        using=using, compress=compress, level=level, threads=threads, on_table=on_table
    )
    stats = process.pipe_into(rclone.rcat(partial), producer, error=RcloneError)
    return stats, counts


def restore(
    rclone: Rclone,
    path: str,
    *,
    using: str,
    compressed: bool,
    sha256: str = "",
    name: str = "backup",
    progress: Callable[[int], None] | None = None,
) -> tuple[int, LoadResult]:
    """Load a portable backup into ``using``, all or nothing.

    The load, the checksum and the zstd end-of-frame check, and rclone's exit
    status are all settled inside one transaction: any failure rolls back and
    the database is as it was. Returns the bytes read and the load's result.
    """
    read = [0]

    def count(done: int) -> None:
        read[0] = done
        if progress:
            progress(done)

    try:
        with (
            missing_backup(name),
            transaction.atomic(using=using),
            process.read_from(rclone.cat(path), error=RcloneError) as reader,
        ):
            lines = checked_lines(
                reader, compressed=compressed, sha256=sha256, name=name, progress=count
            )
            result = load_portable_stream(lines, using=using, name=name)
    except DjangoRcloneCeleryError:
        raise
    except DatabaseError as exc:
        raise RestoreError(
            f"restore of {using!r} from {name!r} failed and was rolled back: {exc}"
        ) from exc
    return read[0], result
