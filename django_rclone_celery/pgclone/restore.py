"""``pgclone restore``: into ``<db>__temp``, hooks, then an atomic swap by renames.

The live database is never written to. The dump (or a local database, for a
``:name`` key) fills ``<db>__temp``; pre-swap hooks run against it; then one
transaction renames it into place. Any failure drops ``__temp`` and leaves
the live database as it was; a crash leaves scratch databases that the next
run drops before it starts.

pg_restore runs without ``--exit-on-error`` so that it reports every error;
the restore then fails unless each one is on :data:`HARMLESS_ERRORS`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from .. import process
from ..conf import get_settings
from ..connectors.postgresql import PostgresConnector, PostgresStaging
from ..exceptions import (
    BackupNotFound,
    DjangoRcloneCeleryError,
    HookFailed,
    InvalidBackup,
    ProcessError,
    RcloneError,
    RestoreError,
)
from ..floor.manifest import check_manifest, read_manifest
from ..floor.run import ProgressCallback, Run
from ..floor.staging import StagingSession
from ..rclone import Rclone, join
from ..tap import Tap
from . import keys
from .conf import get_pgclone_settings, require, resolve
from .hooks import run_hooks
from .local import internal_names, local_database, postgres_connector
from .results import PgcloneResult
from .storage import list_keys

logger = logging.getLogger("django_rclone_celery")

# pg_restore errors that leave a complete, correct database behind. Every
# other error fails the restore (django-pgclone ignored all of them).
HARMLESS_ERRORS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"must be owner of extension \S+"),
        "COMMENT ON EXTENSION run by a role that does not own the extension, as on "
        "managed services (RDS, Cloud SQL): only the extension's comment is lost",
    ),
)
_ERROR = re.compile(r"^pg_restore: error: (.+)$", re.MULTILINE)
_IGNORED = re.compile(r"errors ignored on restore: (\d+)")


class PgRestoreFailed(ProcessError):
    """pg_restore exited non-zero; :func:`check_errors` decides whether that matters."""


def check_errors(stderr: str) -> list[str]:
    """Return pg_restore's errors if all are harmless; raise :class:`RestoreError` otherwise.

    pg_restore ends with "errors ignored on restore: N". Unless exactly N
    errors were read and each is allow-listed, the restore fails: a fatal
    error (truncated input) has no such line, and a stderr tail that lost
    some errors has fewer than N.
    """
    errors = _ERROR.findall(stderr)
    counted = _IGNORED.search(stderr)
    harmful = [e for e in errors if not any(p.search(e) for p, _ in HARMLESS_ERRORS)]
    if harmful or not errors or counted is None or int(counted.group(1)) != len(errors):
        shown = "\n".join((harmful or errors)[:5]) or stderr.strip()[-2000:]
        raise RestoreError(f"pg_restore failed; the live database was not changed:\n{shown}")
    return errors


def _pg_restore(
    rclone: Rclone, path: str, connector: PostgresConnector, target: str, run: Run, sha256: str
) -> None:
    # An identity transform: hashes the stored bytes and notes that they reached their end.
    digest = Tap()
    try:
        process.pipe(
            rclone.cat(path),
            connector.restore_command(target, exit_on_error=False),
            transform=digest,
            digest=None,  # hashed once, by the tap, which outlives a pg_restore failure
            progress=run.byte_counter(),
            source_error=RcloneError,
            sink_error=PgRestoreFailed,
        )
    except PgRestoreFailed as exc:
        if not digest.ended:
            raise
        for error in check_errors(exc.stderr):
            logger.warning("pgclone restore: ignored harmless pg_restore error: %s", error)
    if sha256 and digest.sha256 != sha256:
        raise InvalidBackup(f"{path!r} is corrupt: its checksum does not match its manifest")


def _exists(connector: PostgresConnector, name: str) -> bool:
    with connector.cursor(connector.maintenance_db()) as cursor:
        return connector.exists(cursor, name)


def restore(
    dump_key: str | None = None,
    *,
    pre_swap_hooks: Sequence[str] | None = None,
    reversible: bool | None = None,
    database: str | None = None,
    storage_location: str | None = None,
    config: str | None = None,
) -> str:
    """Restore a dump key, the newest key matching a prefix, or a local ``:name``.

    Args:
        dump_key: A key, a prefix of keys, or ``:name`` / ``:pre`` / ``:post``.
        pre_swap_hooks: Management commands run on the restored copy before the
            swap (default ``PGCLONE_PRE_SWAP_HOOKS``, i.e. ``["migrate"]``).
        reversible: Keep ``<db>__pre`` (the replaced database) and ``<db>__post``
            (the restored one). No effect on local restores.
        database: The database alias (default ``PGCLONE_DATABASE``).
        storage_location: An rclone path (default ``PGCLONE_STORAGE_LOCATION``).
        config: A name in ``PGCLONE_CONFIGS`` supplying defaults.

    Returns:
        The dump key (or local key) that was restored.

    Raises:
        OperationDisabled: ``PGCLONE_ALLOW_RESTORE`` is False.
        BackupNotFound: nothing matches the key, prefix or local name.
        RestoreError: the restore, a hook or the swap failed; the live
            database was not changed.
    """
    return restore_run(
        dump_key,
        pre_swap_hooks=pre_swap_hooks,
        reversible=reversible,
        database=database,
        storage_location=storage_location,
        config=config,
    ).dump_key


def restore_run(
    dump_key: str | None = None,
    *,
    pre_swap_hooks: Sequence[str] | None = None,
    reversible: bool | None = None,
    database: str | None = None,
    storage_location: str | None = None,
    config: str | None = None,
    run_id: str | None = None,
    progress: ProgressCallback | None = None,
) -> PgcloneResult:
    """:func:`restore`, returning the details a task records."""
    settings = get_pgclone_settings()
    require("restore", settings)
    opts = resolve(
        config=config,
        dump_key=dump_key,
        pre_swap_hooks=pre_swap_hooks,
        reversible=reversible,
        database=database,
        storage_location=storage_location,
        settings=settings,
    )
    key = opts.dump_key
    if not key:
        raise BackupNotFound("give a dump key, a prefix of one, or a local key such as :pre")
    connector = postgres_connector(opts.database, settings)
    run = Run.start("pgclone_restore", opts.database, run_id, progress)
    rclone = Rclone(get_settings())
    local = key.startswith(keys.LOCAL_PREFIX)

    with run.stage("select"):
        if local:
            source = local_database(connector, key)
            if source in internal_names(connector):
                raise InvalidBackup(f"{key!r} names a database pgclone cannot restore from")
            if not _exists(connector, source):
                raise BackupNotFound(
                    f"local database {source!r} does not exist; `pgclone ls --local` lists them"
                )
            staging = PostgresStaging(connector, template=source)
            path, size = source, None
        else:
            found = list_keys(
                rclone,
                opts.storage_location,
                keys.check_path(key),
                strict=settings.validate_dump_keys,
            )
            key = keys.newest(found, key)
            path = join(opts.storage_location, key)
            manifest = read_manifest(rclone, path)
            size = manifest.size if manifest else None
            if manifest is not None:
                check_manifest(manifest, connector, key)
                if manifest.compression != "native":
                    raise InvalidBackup(f"{key!r} is not a pg_dump -Fc archive")
            staging = PostgresStaging(
                connector, reversible=opts.reversible, drop_restore_points=not opts.reversible
            )

    try:
        with StagingSession(run, staging) as session:  # swaps as the block ends
            session.prepare()
            if not local:
                with run.stage("restore"):
                    _pg_restore(
                        rclone,
                        path,
                        connector,
                        session.target,
                        run,
                        manifest.sha256 if manifest else "",
                    )
            with run.stage("hooks"):
                run_hooks(
                    opts.pre_swap_hooks,
                    alias=opts.database,
                    dbname=session.target,
                    stage="pre-swap",
                )
    except BaseException as exc:
        if isinstance(exc, HookFailed):
            raise HookFailed(f"{exc}; the live database was not changed") from exc
        if isinstance(exc, DjangoRcloneCeleryError) or not isinstance(exc, Exception):
            raise
        raise RestoreError(
            f"restore of {opts.database!r} failed; the live database was not changed: {exc}"
        ) from exc
    return PgcloneResult(
        operation="pgclone_restore",
        database=opts.database,
        dump_key=key,
        path=path,
        size=size,
        duration=run.elapsed,
        run_id=run.run_id,
    )
