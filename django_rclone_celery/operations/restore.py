"""Database restore: stream the backup into a staged copy, check it, then swap."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from .. import naming, process, signals
from ..compression import ZSTD_SUFFIX, chain, decompressor
from ..conf import Compression, Settings, get_settings
from ..connectors import Connector, get_connector
from ..exceptions import (
    BackupNotFound,
    InvalidBackup,
    ProcessError,
    RcloneError,
    RestoreError,
    missing_backup,
)
from ..floor.catalogue import stat
from ..floor.manifest import Manifest, check_manifest, read_manifest
from ..floor.run import ProgressCallback, Run
from ..floor.staging import StagingSession
from ..parallel.load import load_parallel
from ..rclone import Rclone, join
from ..results import RestoreResult
from .catalog import backup_dir, list_backups


def resolve_backup(
    database: str, input_path: str | None, settings: Settings
) -> tuple[str, int | None]:
    """The backup name to restore (relative to the backup directory) and its size if known."""
    if input_path:
        name = naming.check_relative(input_path)
        base = name.rsplit("/", 1)[-1]
        if naming.is_hidden(base):
            raise InvalidBackup(f"{input_path!r} is not a backup")
        if naming.parse(settings, base, database) is None:
            raise InvalidBackup(
                f"{input_path!r} is not a backup of database {database!r} "
                f"(expected {settings.db_filename_template!r} with database={database!r})"
            )
        # Ask the remote first: on bucket remotes ``rclone cat`` of a missing
        # object prints nothing and succeeds, which would restore an empty database.
        entry = stat(Rclone(settings), join(backup_dir(settings), name))
        if entry is None:
            raise BackupNotFound(f"backup {input_path!r} does not exist in {backup_dir(settings)}")
        return name, entry.size
    backups = list_backups(database, settings=settings)
    if not backups:
        raise BackupNotFound(f"no backups of database {database!r} in {backup_dir(settings)}")
    return backups[0].name, backups[0].size


def _legacy_manifest(connector: Connector, name: str, database: str) -> Manifest:
    """What a manifest would say, inferred from the name of a django-rclone backup."""
    zstd = name.endswith(ZSTD_SUFFIX)
    ext = name[: -len(ZSTD_SUFFIX)] if zstd else name
    if not ext.endswith("." + connector.extension):
        raise InvalidBackup(
            f"{name!r} has no manifest and its extension is not {connector.extension!r}: "
            f"it was not made for a {connector.vendor} database"
        )
    compression: Compression = "zstd" if zstd else "native"
    return Manifest(
        database=database,
        engine=connector.engine,
        vendor=connector.vendor,
        connector=connector.dotted_path(),
        compression=compression,
    )


@dataclass(frozen=True)
class Selection:
    """A backup chosen for ``database``; ``manifest`` is inferred from the name
    when the backup has none (``has_manifest`` is then False)."""

    name: str
    path: str
    size: int | None
    manifest: Manifest
    has_manifest: bool


def select_backup(
    database: str,
    *,
    input_path: str | None = None,
    from_database: str | None = None,
    settings: Settings | None = None,
) -> Selection:
    """The backup a restore of ``database`` would load.

    ``from_database`` picks that alias's backups instead. Refuses an unknown
    alias, a missing backup and a backup ``database``'s engine cannot load,
    all before anything is touched.
    """
    settings = settings or get_settings()
    connector = get_connector(database, settings)
    source = from_database or database
    # The source's connector says what made a manifest-less (django-rclone)
    # backup; an unknown source alias fails here with a ConfigurationError.
    made_by = connector if source == database else get_connector(source, settings)
    name, size = resolve_backup(source, input_path, settings)
    path = join(backup_dir(settings), name)
    found = read_manifest(Rclone(settings), path)
    manifest = found or _legacy_manifest(made_by, name, source)
    check_manifest(manifest, connector, name)
    return Selection(name, path, size, manifest, has_manifest=found is not None)


def restore_database(
    database: str = "default",
    *,
    input_path: str | None = None,
    from_database: str | None = None,
    run_id: str | None = None,
    progress: ProgressCallback | None = None,
    settings: Settings | None = None,
    jobs: int | None = None,
) -> RestoreResult:
    """Restore ``database`` from its latest backup, or from ``input_path``.

    The data goes into a staged copy first; only a complete, verified copy is
    swapped in. If anything fails the staged copy is dropped and the live
    database is exactly as it was. A portable backup is loaded in one
    transaction instead, with the same all-or-nothing result.
    ``from_database`` picks the backups of another alias (production's
    backup into staging, a SQLite project's portable backup into PostgreSQL);
    ``database`` is still the one replaced. A native backup must come from
    the same engine as ``database``. ``jobs`` (default ``JOBS``) is how many
    streams of a parallel PostgreSQL backup load at once, and the index builds.
    """
    settings = settings or get_settings()
    connector = get_connector(database, settings)
    run = Run.start("db_restore", database, run_id, progress)
    rclone = Rclone(settings)

    with run.stage("select"):
        chosen = select_backup(
            database, input_path=input_path, from_database=from_database, settings=settings
        )
    name, path, manifest = chosen.name, chosen.path, chosen.manifest

    source = from_database or database
    signals.pre_db_restore.send(
        sender="db_restore",
        database=database,
        from_database=source,
        path=path,
        run_id=run.run_id,
    )
    restore = _restore_portable if manifest.format == "portable" else _restore_native
    read = restore(run, rclone, connector, path, name, manifest, chosen.size, jobs or settings.jobs)
    signals.post_db_restore.send_robust(
        sender="db_restore",
        database=database,
        from_database=source,
        path=path,
        run_id=run.run_id,
    )
    return RestoreResult(
        database=database,
        from_database=source,
        path=path,
        name=name,
        size=read,
        compression=manifest.compression,
        format=manifest.format,
        duration=run.elapsed,
        run_id=run.run_id,
        verified=bool(manifest.sha256),
    )


def _restore_portable(
    run: Run,
    rclone: Rclone,
    connector: Connector,
    path: str,
    name: str,
    manifest: Manifest,
    size: int | None,
    jobs: int = 1,
) -> int:
    """Load a portable backup; the load is one transaction, so it is all or nothing."""
    from ..portable import stream as portable_stream  # only portable restores pay its import

    with run.stage("restore", bytes_total=manifest.size or size):
        read, _ = portable_stream.restore(
            rclone,
            path,
            using=connector.alias,
            compressed=manifest.compression == "zstd",
            sha256=manifest.sha256,
            name=name,
            progress=run.byte_counter(manifest.size or size),
        )
    return read


def load_staged(
    session: StagingSession,
    rclone: Rclone,
    connector: Connector,
    path: str,
    name: str,
    manifest: Manifest,
    size: int | None,
    jobs: int = 1,
) -> int:
    """Stream the backup into the session's staged copy and check that copy.

    Returns the bytes read. A failure propagates as it was raised; leaving
    the session's block with it drops the staged copy.
    """
    run = session.run
    # The same completeness check as the backup's, on the decoded stream, with
    # or without a manifest: a dump that did not end is never swapped in, and
    # the restore tool is killed before it sees the end of its input.
    check = connector.stream_check()
    connector.prepare_tools(restore=True)  # refuse an unfit tool before anything runs
    session.prepare()
    if manifest.streams:  # a parallel backup (#19.4)
        with run.stage("restore", bytes_total=_streams_size(manifest)):
            read = load_parallel(
                connector,  # type: ignore[arg-type]
                rclone,
                path,
                name,
                manifest,
                session.target,
                jobs=jobs,
                progress=run.byte_counter(_streams_size(manifest)),
            )
        session.check()
        return read
    with run.stage("restore", bytes_total=manifest.size or size):
        stats = process.pipe(
            rclone.cat(path),
            connector.restore_command(session.target),
            # The script filter also fixes backups written before it existed.
            transform=chain(
                decompressor(manifest.compression),  # type: ignore[arg-type]
                connector.script_filter(),
            ),
            digest="source",
            progress=run.byte_counter(manifest.size or size),
            source_error=RcloneError,
            tap=check.feed if check else None,
            tap_side="sink",
            before_end=partial(check.check, f"backup {name!r}") if check else None,
        )
        if manifest.sha256 and stats.sha256 != manifest.sha256:
            raise InvalidBackup(f"{name!r} is corrupt: its checksum does not match its manifest")
    session.check()
    return stats.bytes_in


def _restore_native(
    run: Run,
    rclone: Rclone,
    connector: Connector,
    path: str,
    name: str,
    manifest: Manifest,
    size: int | None,
    jobs: int = 1,
) -> int:
    """Stream into the connector's staged copy, check it, then swap it in."""
    with StagingSession(run, connector.staging()) as session:  # swaps as the block ends
        try:
            with missing_backup(name):
                read = load_staged(session, rclone, connector, path, name, manifest, size, jobs)
        except (BackupNotFound, ProcessError, InvalidBackup, RestoreError):
            raise
        except Exception as exc:
            raise RestoreError(
                f"restore of {connector.alias!r} failed; the live database was not changed: {exc}"
            ) from exc
    return read


def _streams_size(manifest: Manifest) -> int:
    return sum(int(s.get("size", 0)) for s in manifest.streams)
