"""``pgclone dump``: ``pg_dump -Fc`` streamed to ``<storage>/<key>`` and published atomically.

Dumps stay plain ``pg_dump -Fc`` archives (pg_dump's own compression), not
DJANGO_RCLONE's zstd: a pgclone dump is then byte-for-byte what
django-pgclone writes, so either tool (or a bare ``pg_restore``) reads the
other's dumps, and the dump costs what ``pg_dump -Fc`` costs. A manifest
beside the dump records its size and SHA-256; restores verify it when present.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

from django.apps import apps

from ..conf import get_settings
from ..exceptions import ConfigurationError
from ..manifest import Manifest
from ..operations.catalog import sweep_partials
from ..operations.publish import stream_and_publish
from ..operations.run import ProgressCallback, Run
from ..process import PipeStats
from ..rclone import Rclone, join
from . import keys
from .conf import get_pgclone_settings, require, resolve
from .hooks import run_hooks
from .local import postgres_connector
from .results import PgcloneResult


def _quote_pattern(table: str) -> str:
    # pg_dump reads its argument as a pattern: quoting keeps '.', '*', '?' and case literal.
    return '"' + table.replace('"', '""') + '"'


def exclude_args(labels: tuple[str, ...]) -> tuple[str, ...]:
    """``--exclude-table-data`` for each ``app_label.Model``."""
    args = []
    for label in labels:
        try:
            model = apps.get_model(label)
        except (LookupError, ValueError):
            raise ConfigurationError(
                f"cannot exclude {label!r}: not an installed model (use app_label.ModelName)"
            ) from None
        args.append(f"--exclude-table-data={_quote_pattern(model._meta.db_table)}")
    return tuple(args)


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
    extra = exclude_args(opts.exclude)
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


def _stale_after() -> timedelta:
    return timedelta(seconds=2 * get_settings().task_time_limit)
