"""Backup verification: read a backup end to end, without touching any database.

The backup is picked exactly as a restore picks it (``restore.py``), then
streamed once with ``rclone cat`` and checked on the way:

1. its size and sha256 against the manifest (django-rclone's backups have
   none: that is noted, not failed);
2. a zstd stream must decode to the end of its frame (truncation);
3. the engine's own reader where one is cheap: ``pg_restore --file=-`` reads
   a custom-format archive through every data block into nothing (``--list``
   would stop after the table of contents and pass a truncated archive);
   a portable backup goes through the portable reader, and its row counts
   must match the manifest's. MongoDB archives are not parsed;
4. every native dump goes through the backup path's own completeness check
   (``completeness.py``: mysqldump's last line is ``-- Dump completed``,
   ``sqlite3 .dump``'s is ``COMMIT;`` with no ERROR line, a custom archive
   has a data block for every entry), and the rows it counts must be the
   manifest's when the manifest counted them from the stream.

``restore=True`` then restores it into the connector's staged copy, checks
that copy, compares its schema objects and row counts with the manifest's
(``fidelity.py``) and drops it instead of swapping it in: the live database
is never written. Nothing goes through local disk; memory stays at one chunk.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import IO, cast

import zstandard

from .. import fidelity, process
from ..compression import decompressor
from ..conf import Settings, get_settings
from ..connectors import Connector, get_connector
from ..exceptions import (
    BackupNotFound,
    InvalidBackup,
    ProcessError,
    RcloneError,
    RestoreError,
    missing_backup,
)
from ..floor.manifest import Manifest
from ..floor.run import ProgressCallback, Run
from ..floor.staging import StagingSession
from ..parallel.load import verify_streams
from ..process import CHUNK_SIZE, Command
from ..rclone import Rclone
from ..results import VerifyResult
from ..tap import TappedReader
from .restore import load_staged, select_backup

logger = logging.getLogger("django_rclone_celery")

OPERATION = "db_verify"


class _Stop(Exception):
    """The stream cannot be decoded any further; the reason is already recorded."""


def verify_backup(
    database: str = "default",
    *,
    input_path: str | None = None,
    from_database: str | None = None,
    restore: bool = False,
    run_id: str | None = None,
    progress: ProgressCallback | None = None,
    settings: Settings | None = None,
) -> VerifyResult:
    """Check that the latest backup of ``database`` (or ``input_path``) is whole and readable.

    Raises :class:`InvalidBackup` if it is not (every problem found is named,
    checksum first), :class:`BackupNotFound` if there is none, ``RcloneError``
    if it cannot be read, :class:`RestoreError` if the trial restore fails.
    ``from_database`` picks the backups of another alias, as for a restore.
    """
    settings = settings or get_settings()
    connector = get_connector(database, settings)
    run = Run.start(OPERATION, database, run_id, progress)
    rclone = Rclone(settings)

    with run.stage("select"):
        chosen = select_backup(
            database, input_path=input_path, from_database=from_database, settings=settings
        )
    name, path, size, manifest = chosen.name, chosen.path, chosen.size, chosen.manifest

    checks: list[str] = []
    notes: list[str] = []
    with run.stage("verify", bytes_total=manifest.size or size):
        read, sha256 = _read_and_check(run, rclone, connector, path, name, manifest, size)
        if manifest.streams:  # a parallel backup's data streams (#19.4)
            problems = verify_streams(rclone, path, name, manifest)
            if problems:
                raise InvalidBackup(f"{name!r} failed verification: " + "; ".join(problems))
    if not chosen.has_manifest:
        notes.append(
            "no manifest (a django-rclone backup): its size and sha256 could not be checked"
        )
    elif manifest.sha256:
        checks += ["size", "sha256"]
    else:
        notes.append("its manifest has no sha256: the checksum could not be checked")
    checks += _structure_checks(connector, manifest)
    if manifest.streams:
        checks.append("streams")
    notes += _structure_notes(connector, manifest)

    restored = False
    restore_seconds: float | None = None
    compared: list[str] = []
    if restore:
        reason = _why_no_trial(connector, manifest)
        if reason:
            notes.append(f"trial restore skipped: {reason}")
        else:
            restore_seconds, comparison = _trial_restore(
                run, rclone, connector, path, name, manifest, size
            )
            restored = True
            checks.append("restore")
            compared, notes = comparison.compared, notes + comparison.notes

    for note in notes:
        logger.warning("db_verify %s: %s: %s", database, name, note)
    return VerifyResult(
        database=database,
        path=path,
        name=name,
        size=read,
        sha256=sha256,
        compression=manifest.compression,
        format=manifest.format,
        verified=bool(manifest.sha256),
        restored=restored,
        restore_seconds=restore_seconds,
        compared=compared,
        checks=checks,
        notes=notes,
        duration=run.elapsed,
        run_id=run.run_id,
    )


def _structure_checks(connector: Connector, manifest: Manifest) -> list[str]:
    """Names of the checks :func:`_read_and_check` passed beside the checksum."""
    done = ["zstd"] if manifest.compression == "zstd" else []
    if manifest.format == "portable":
        return [*done, "portable"]
    if connector.vendor == "postgresql":
        return [*done, "pg_restore"]
    if connector.vendor in ("mysql", "sqlite"):
        return [*done, "end marker"]
    return done


def _structure_notes(connector: Connector, manifest: Manifest) -> list[str]:
    if manifest.format == "portable" or connector.vendor in ("postgresql", "mysql", "sqlite"):
        return []
    if connector.vendor == "mongodb":
        return ["MongoDB archives are not parsed: only the checksum and compression were checked"]
    return [f"no structural check for {connector.vendor} backups"]


def _read_and_check(
    run: Run,
    rclone: Rclone,
    connector: Connector,
    path: str,
    name: str,
    manifest: Manifest,
    size: int | None,
) -> tuple[int, str]:
    """Stream the backup once through every check; returns the bytes read and their sha256."""
    problems: list[str] = []
    with missing_backup(name), process.read_from(rclone.cat(path), error=RcloneError) as raw:
        # The stored bytes as read from rclone, hashed and counted on the way.
        tap = TappedReader(raw, run.byte_counter(manifest.size or size))
        if manifest.format == "portable":
            problem = _scan_portable(tap, manifest, name)
        else:
            problem = _scan_native(tap, connector, manifest)
        tap.drain(CHUNK_SIZE)  # the checksum verdict counts even where a decoder stopped
    # The checksum first: if the bytes are not the ones uploaded, that explains the rest.
    if manifest.sha256:
        if manifest.size and tap.size != manifest.size:
            problems.append(f"its size is {tap.size} bytes, its manifest says {manifest.size}")
        if tap.sha256 != manifest.sha256:
            problems.append("its checksum does not match its manifest (sha256)")
    if problem:
        problems.append(problem)
    if problems:
        raise InvalidBackup(f"{name!r} failed verification: " + "; ".join(problems))
    return tap.size, tap.sha256


def _scan_native(tap: TappedReader, connector: Connector, manifest: Manifest) -> str | None:
    """Decode the dump and run the engine's check on it; returns what is wrong, if anything."""
    unpack = decompressor(manifest.compression)  # type: ignore[arg-type]
    # The backup path's own completeness check (completeness.py), fed the decoded dump.
    check = connector.stream_check(counting=True)
    damage: list[str] = []

    def decoded() -> Iterator[bytes]:
        while chunk := tap.read(CHUNK_SIZE):
            try:
                out = bytes(unpack.feed(memoryview(chunk))) if unpack else chunk
            except zstandard.ZstdError as exc:
                damage.append(f"its zstd stream is corrupt ({exc})")
                raise _Stop from None
            if out:
                if check:
                    check.feed(out)
                yield out
        if unpack:
            try:
                unpack.finish()
            except zstandard.ZstdError:
                damage.append("its zstd stream ends before the end of its frame (truncated)")
                raise _Stop from None

    stream = decoded()
    structure: str | None = None
    try:
        if connector.vendor == "postgresql":
            structure = _pg_restore_reads(connector, stream)
        for _ in stream:  # whatever the engine's reader left
            pass
    except _Stop:
        pass
    if damage:
        return damage[0]
    if structure:  # the engine's own reader explains best what it cannot read
        return structure
    if check:
        problem = check.problem()
        if problem:
            return f"it {problem}"
        counted = check.counts()
        # A parallel backup's rows are in its streams, counted by verify_streams.
        if counted is not None and manifest.row_counts_from == "dump" and not manifest.streams:
            differ = _count_difference(counted, manifest.row_counts)
            if differ:
                return differ
    return None


def _pg_restore_reads(connector: Connector, stream: Iterator[bytes]) -> str | None:
    """Feed the archive to ``pg_restore`` writing its script to nowhere (no database)."""
    reader = Command(argv=(connector.restore_tool, "--file=-"))
    try:
        process.pipe_into(reader, lambda: stream)
    except ProcessError as exc:
        if exc.returncode == 127:  # no pg_restore here: not the backup's fault
            raise
        return f"pg_restore cannot read it as a custom-format archive: {exc}"
    return None


def _scan_portable(tap: TappedReader, manifest: Manifest, name: str) -> str | None:
    """Read every section and record; the row counts must be the manifest's."""
    from ..portable import format as portable_format  # only portable backups pay its import
    from ..portable import stream as portable_stream

    counts: dict[str, int] = {}
    try:
        # checked_lines only calls read(): the tap is file enough.
        lines = portable_stream.checked_lines(
            cast(IO[bytes], tap), compressed=manifest.compression == "zstd", name=name
        )
        for header, records in portable_format.sections(lines, name):
            width = len(header.fields)
            rows = 0
            for number, values in records:
                if len(values) != width:
                    return (
                        f"line {number} of table {header.table} has {len(values)} values "
                        f"for {width} fields"
                    )
                rows += 1
            counts[header.table] = counts.get(header.table, 0) + rows
    except InvalidBackup as exc:  # PortableFormatError: bad line, cut short, bad zstd
        return str(exc)
    if manifest.row_counts:
        return _count_difference(counts, manifest.row_counts)
    return None


def _count_difference(counts: dict[str, int], claimed: dict[str, int]) -> str | None:
    """How the rows in the backup differ from what its manifest claims; None if they agree."""
    if counts == claimed:
        return None
    differ = sorted(set(counts) ^ set(claimed)) + sorted(
        t for t in set(counts) & set(claimed) if counts[t] != claimed[t]
    )
    shown = ", ".join(
        f"{t}: {counts.get(t, 'missing')} (manifest: {claimed.get(t, 'missing')})"
        for t in differ[:5]
    )
    return f"its row counts differ from its manifest's: {shown}"


def _why_no_trial(connector: Connector, manifest: Manifest) -> str:
    if manifest.format == "portable":
        return "a portable backup loads through the models into a migrated database; use dbrestore"
    if connector.staging().target == connector.name:
        # No staged copy (MongoDB): the restore tool would write into the live database.
        return f"{connector.vendor} restores in place, which would change the live database"
    return ""


def _trial_restore(
    run: Run,
    rclone: Rclone,
    connector: Connector,
    path: str,
    name: str,
    manifest: Manifest,
    size: int | None,
) -> tuple[float, fidelity.Comparison]:
    """Restore into the staged copy, compare it with the manifest, then drop it: never swap.

    Returns the time the restore took (the staged copy loaded and checked)
    and what was compared.
    """
    started = time.monotonic()
    with StagingSession(run, connector.staging(), swap=False) as session:  # never swapped
        try:
            with missing_backup(name):
                load_staged(
                    session, rclone, connector, path, name, manifest, size, get_settings().jobs
                )
        except zstandard.ZstdError as exc:
            raise InvalidBackup(f"{name!r} failed its trial restore: {exc}") from exc
        except (BackupNotFound, RcloneError, InvalidBackup, RestoreError):
            raise
        except Exception as exc:
            raise RestoreError(
                f"trial restore of {name!r} into {connector.alias!r}'s staged copy failed "
                f"(the live database was not touched): {exc}"
            ) from exc
        seconds = time.monotonic() - started
        try:
            # Read before the staged copy is dropped; part of the restore's check.
            compared = fidelity.compare_restored(connector, session.target, manifest)
        except Exception as exc:
            raise RestoreError(
                f"the trial restore of {name!r} could not be compared with its manifest: {exc}"
            ) from exc
        finally:
            session.discard()
    if compared.differences:
        raise InvalidBackup(
            f"{name!r} failed its trial restore (restored in {seconds:.1f} s): the restored "
            f"copy differs from its manifest: {'; '.join(compared.differences)}"
        )
    return seconds, compared
