"""Database backup: dump → compress → ``rclone rcat`` to a partial name → ``moveto``."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import Literal

import django

from .. import naming, process, rc, signals
from ..completeness import StreamCheck
from ..compression import chain, compressor, suffix
from ..conf import Compression, Settings, get_settings
from ..connectors import Connector, get_connector
from ..exceptions import RcloneError
from ..floor.catalogue import sweep_partials
from ..floor.manifest import Manifest
from ..floor.publish import publishing
from ..floor.run import ProgressCallback, Run
from ..parallel import supports as parallel_supported
from ..parallel.dump import stream_set
from ..rclone import Entry, Rclone, join
from ..results import BackupResult
from .catalog import backup_dir, cleanup_backups

logger = logging.getLogger("django_rclone_celery")


def _unique_name(
    settings: Settings, database: str, ext: str, taken: set[str], when: datetime
) -> str:
    """A name no existing object has: two backups in one second must not collide."""
    for _ in range(120):
        name = naming.render(settings, database=database, ext=ext, when=when)
        if name not in taken:
            return name
        when += timedelta(seconds=1)
        wait = (when - datetime.now(timezone.utc)).total_seconds()
        if wait > 0:
            time.sleep(wait)
    raise RuntimeError("could not find a free backup name")  # pragma: no cover


def _list_and_sweep(
    rclone: Rclone, calls: rc.Control, directory: str, settings: Settings
) -> list[Entry]:
    entries = calls.list_files(directory)
    sweep_partials(rclone, directory, entries, timedelta(seconds=2 * settings.task_time_limit))
    return entries


def _describe(connector: Connector, format: str) -> dict[str, str]:
    """Tool versions; failures here must not fail the backup."""
    if format == "portable":
        return {"django": django.get_version()}
    try:
        return connector.tool_versions()
    except Exception:  # pragma: no cover - defensive
        return {}


def _counts(
    check: StreamCheck | None, snapshot_counts: Callable[[], dict[str, int] | None]
) -> dict[str, int]:
    """The dump's own row counts: from its stream, or from the snapshot it read."""
    counted = check.counts() if check else None
    if counted is None:
        counted = snapshot_counts()
        tables = check.tables() if check else None
        if counted is not None and tables is not None:
            counted = {name: rows for name, rows in counted.items() if name in tables}
    return counted or {}


def _inventory(connector: Connector, format: str) -> dict[str, list[str]]:
    """The schema objects a verify compares the restored copy with; never fails the backup."""
    if format == "portable":
        return {}  # loaded through the models: its schema is the migrations'
    try:
        return connector.inventory()
    except Exception:
        logger.warning("schema inventory unavailable for %s", connector.alias, exc_info=True)
        return {}


def backup_database(
    database: str = "default",
    *,
    clean: bool = False,
    compression: Compression | None = None,
    format: Literal["native", "portable"] = "native",
    run_id: str | None = None,
    progress: ProgressCallback | None = None,
    settings: Settings | None = None,
    jobs: int | None = None,
) -> BackupResult:
    """Back up one database alias to the remote and return what was written.

    Nothing is visible under the final name until the whole stream, and its
    manifest, have been uploaded. On any failure the partial object is removed.
    ``format="portable"`` stores ``dumpdb``'s JSON lines instead of the engine's
    dump (see ``portable``): restorable into another engine and changed models.
    ``jobs`` (default ``JOBS``) above 1 dumps PostgreSQL in that many streams
    (``parallel``); other engines and portable backups dump one stream.
    """
    settings = settings or get_settings()
    connector = get_connector(database, settings)
    kind: Compression = compression or settings.compression
    if format == "portable":
        # Imported here: the portable format costs every other command 20 ms.
        from ..portable import stream as portable_stream

        if kind == "native":
            kind = "zstd"  # no dump tool of its own to compress
    # -- parallel (#19.4) --
    jobs = jobs or settings.jobs
    parallel = jobs > 1 and format == "native" and parallel_supported(connector)
    if parallel and connector.db_options.dump_args:
        # The streams could not honour what DUMP_ARGS leaves out (--exclude-table-data...).
        parallel = False
        logger.warning("--jobs %d: %s has DUMP_ARGS, so it dumps in one stream", jobs, database)
    elif jobs > 1 and not parallel:
        logger.warning("--jobs %d: %s dumps in one stream", jobs, connector.vendor)
    if parallel and kind == "native":
        kind = "zstd"  # the streams are text: no dump tool compresses them
    # -- end parallel --
    run = Run.start("db_backup", database, run_id, progress)
    rclone = Rclone(settings)
    directory = backup_dir(settings)

    signals.pre_db_backup.send(sender="db_backup", database=database, run_id=run.run_id)
    with run.stage("prepare"):
        if format == "native":
            connector.prepare_tools()  # pgtools (#19.2): refuse before anything runs
        base = portable_stream.EXTENSION if format == "portable" else connector.extension
        ext = base + suffix(kind)
        # Streamed under a provisional name; the final one is settled at publish.
        started = datetime.now(timezone.utc)
        provisional = join(
            directory, naming.render(settings, database=database, ext=ext, when=started)
        )
    # The listing (for a free name, and to sweep stale partials), the tool
    # versions and the schema inventory each cost a process start or a query:
    # they run beside the dump instead of before it. Row counts come from the
    # dump's own stream or snapshot (completeness.py). The small rclone calls
    # (the listing, and the publication's manifest and moves) go to one
    # ``rclone rcd`` started beside the dump: after the stream, no call waits
    # for an rclone start (rc.py).
    with (
        rc.private_daemon(rclone) as calls,
        ThreadPoolExecutor(max_workers=3, thread_name_prefix="drc-backup") as pool,
    ):
        listed = pool.submit(_list_and_sweep, rclone, calls, directory, settings)
        described = pool.submit(_describe, connector, format)
        inventory = pool.submit(_inventory, connector, format)
        with (
            publishing(rclone, provisional, calls=calls) as publication,
            stream_set(rclone, calls=calls) as streams,
        ):
            with run.stage("dump"):
                exact_counts: dict[str, int]
                if format == "portable":
                    stats, exact_counts = portable_stream.upload(
                        rclone,
                        publication.partial,
                        using=database,
                        compress=kind == "zstd",
                        level=settings.compression_level,
                        threads=settings.compression_threads,
                    )
                elif parallel:
                    stats, exact_counts = streams.dump(
                        connector,  # type: ignore[arg-type]
                        publication.partial,
                        kind=kind,
                        settings=settings,
                        jobs=jobs,
                        progress=run.byte_counter(),
                    )
                else:
                    # Judged before rclone sees the end of its input: a dump that
                    # did not end is never uploaded whole, let alone published.
                    check = connector.stream_check(dumping=True)
                    with connector.counted_snapshot() as snapshot_counts:
                        stats = process.pipe(
                            connector.dump_command(compress=kind == "native"),
                            rclone.rcat(publication.partial),
                            transform=chain(
                                connector.script_filter(),
                                compressor(
                                    kind, settings.compression_level, settings.compression_threads
                                ),
                            ),
                            digest="sink",
                            progress=run.byte_counter(),
                            sink_error=RcloneError,
                            tap=check.feed if check else None,
                            before_end=(
                                partial(check.check, f"the dump of database {database!r}")
                                if check
                                else None
                            ),
                            hold=rc.SMALL_UPLOAD,
                            small=partial(calls.put_bytes, publication.partial),
                        )
                        exact_counts = _counts(check, snapshot_counts)
            with run.stage("publish"):
                taken = {entry.name for entry in listed.result()}
                name = _unique_name(settings, database, ext, taken, started)
                final = join(directory, name)
                versions = described.result()
                manifest = Manifest(
                    database=database,
                    engine=connector.engine,
                    vendor=connector.vendor,
                    connector=connector.dotted_path(),
                    compression=kind,
                    format=format,
                    size=stats.bytes_out,
                    sha256=stats.sha256,
                    created=datetime.now(timezone.utc).isoformat(),
                    tool_versions=versions,
                    row_counts=exact_counts,
                    row_counts_from="dump" if exact_counts else "",
                    inventory=inventory.result(),
                    **streams.manifest_fields(),
                )
                streams.commit(final)
                publication.commit(manifest.to_bytes(), final=final)

    signals.post_db_backup.send_robust(
        sender="db_backup",
        database=database,
        path=final,
        size=stats.bytes_out + streams.size,
        run_id=run.run_id,
    )
    cleaned: list[str] = []
    if clean:
        cleaned = cleanup_backups(
            database, run_id=run.run_id, progress=progress, settings=settings
        ).deleted
    return BackupResult(
        database=database,
        path=final,
        name=name,
        size=stats.bytes_out + streams.size,  # a parallel backup's streams too
        sha256=stats.sha256,
        compression=kind,
        format=format,
        duration=run.elapsed,
        run_id=run.run_id,
        cleaned=cleaned,
    )
