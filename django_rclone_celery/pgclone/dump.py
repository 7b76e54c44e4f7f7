"""``pgclone dump``: ``pg_dump -Fc`` streamed to ``<storage>/<key>`` and published atomically.

Dumps stay plain ``pg_dump -Fc`` archives (pg_dump's own compression), not
DJANGO_RCLONE's zstd: a pgclone dump is then byte-for-byte what
django-pgclone writes, so either tool (or a bare ``pg_restore``) reads the
other's dumps, and the dump costs what ``pg_dump -Fc`` costs. A manifest
beside the dump records its size, SHA-256 and schema inventory; restores verify
the checksum when present.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

from .. import exclusion
from ..conf import get_settings
from ..connectors.postgresql import PostgresConnector
from ..floor.catalogue import sweep_partials
from ..floor.manifest import Manifest
from ..floor.publish import stream_and_publish
from ..floor.run import ProgressCallback, Run
from ..process import PipeStats
from ..rclone import Rclone, join
from . import keys
from .conf import get_pgclone_settings, require, resolve
from .hooks import run_hooks
from .local import postgres_connector
from .results import PgcloneResult

logger = logging.getLogger("django_rclone_celery")


def _quote_pattern(table: str) -> str:
    # pg_dump reads its argument as a pattern: quoting keeps '.', '*', '?' and case literal.
    return '"' + table.replace('"', '""') + '"'


def exclude_args(
    labels: tuple[str, ...], connector: PostgresConnector | None = None
) -> tuple[str, ...]:
    """``--exclude-table-data`` for each ``app_label.Model`` and the many-to-many
    tables that go with it; refused if other rows point at them (``exclusion.py``).
    ``connector`` adds the foreign keys the database has beyond the models'."""
    if not labels:
        return ()
    references = connector.foreign_keys_to if connector is not None else None
    planned = exclusion.plan(labels, references)
    return tuple(f"--exclude-table-data={_quote_pattern(table)}" for table in planned.tables)


def dump(
    *,
    exclude: Sequence[str] | None = None,
    pre_dump_hooks: Sequence[str] | None = None,
    instance: str | None = None,
    database: str | None = None,
    storage_location: str | None = None,
    config: str | None = None,
) -> str:
    """Dump a database to the storage location and return its dump key.

    Args:
        exclude: Models (``app_label.Model``) whose table data is left out.
        pre_dump_hooks: Management commands run against the database first.
        instance: The instance name in the key (default ``PGCLONE_INSTANCE``).
        database: The database alias (default ``PGCLONE_DATABASE``).
        storage_location: An rclone path (default ``PGCLONE_STORAGE_LOCATION``).
        config: A name in ``PGCLONE_CONFIGS`` supplying defaults.

    Raises:
        OperationDisabled: ``PGCLONE_ALLOW_DUMP`` is False.
        HookFailed: a pre-dump hook raised; nothing was written.
        ProcessError: pg_dump or rclone failed; nothing was published.
    """
    return dump_run(
        exclude=exclude,
        pre_dump_hooks=pre_dump_hooks,
        instance=instance,
        database=database,
        storage_location=storage_location,
        config=config,
    ).dump_key


def dump_run(
    *,
    exclude: Sequence[str] | None = None,
    pre_dump_hooks: Sequence[str] | None = None,
    instance: str | None = None,
    database: str | None = None,
    storage_location: str | None = None,
    config: str | None = None,
    run_id: str | None = None,
    progress: ProgressCallback | None = None,
) -> PgcloneResult:
    """:func:`dump`, returning the details a task records."""
    settings = get_pgclone_settings()
    require("dump", settings)
    opts = resolve(
        config=config,
        exclude=exclude,
        pre_dump_hooks=pre_dump_hooks,
        instance=instance,
        database=database,
        storage_location=storage_location,
        settings=settings,
    )
    connector = postgres_connector(opts.database, settings)
    # Refused here, before any hook runs or anything is written.
    extra = exclude_args(opts.exclude, connector)
    run = Run.start("pgclone_dump", opts.database, run_id, progress)
    rclone = Rclone(get_settings())

    with run.stage("hooks"):
        run_hooks(opts.pre_dump_hooks, alias=opts.database, dbname=connector.name, stage="pre-dump")
    key = keys.make(instance=opts.instance, database=opts.database, config=opts.config)
    final = join(opts.storage_location, key)
    with run.stage("prepare"):
        directory = final.rsplit("/", 1)[0]
        # Partial uploads of killed runs older than any task may live are removed.
        sweep_partials(
            rclone,
            directory,
            rclone.lsjson(directory),
            older_than=_stale_after(),
        )
        versions = connector.tool_versions()
        inventory = _inventory(connector)

    def manifest(stats: PipeStats) -> bytes:
        return Manifest(
            database=opts.database,
            engine=connector.engine,
            vendor=connector.vendor,
            connector=connector.dotted_path(),
            compression="native",
            size=stats.bytes_out,
            sha256=stats.sha256,
            created=datetime.now(timezone.utc).isoformat(),
            tool_versions=versions,
            inventory=inventory,
        ).to_bytes()

    with run.stage("dump"):
        stats = stream_and_publish(
            rclone,
            connector.dump_command(compress=True, extra=extra),
            final,
            manifest=manifest,
            progress=run.byte_counter(),
            check=connector.stream_check(dumping=True),
        )
    return PgcloneResult(
        operation="pgclone_dump",
        database=opts.database,
        dump_key=key,
        path=final,
        size=stats.bytes_out,
        duration=run.elapsed,
        run_id=run.run_id,
    )


def _inventory(connector: PostgresConnector) -> dict[str, list[str]]:
    """The schema objects, for the manifest; an exclusion keeps every table, so all of them."""
    try:
        return connector.inventory()
    except Exception:  # a description of the dump: never a reason to fail it
        logger.warning("schema inventory unavailable for %s", connector.alias, exc_info=True)
        return {}


def _stale_after() -> timedelta:
    return timedelta(seconds=2 * get_settings().task_time_limit)
