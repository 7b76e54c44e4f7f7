"""``pgclone copy :name``: ``CREATE DATABASE name TEMPLATE <db>`` for fast local snapshots.

The copy needs the source to have no other session, so every other session
on it is terminated first and PostgreSQL blocks new ones while it copies:
meant for development and staging, not production.
"""

from __future__ import annotations

from django.db import connections

from ..exceptions import CopyError
from ..floor.run import ProgressCallback, Run
from . import keys
from .conf import get_pgclone_settings, require, resolve
from .local import internal_names, postgres_connector
from .results import PgcloneResult


def copy(
    dump_key: str | None = None,
    *,
    database: str | None = None,
    config: str | None = None,
) -> str:
    """Copy a database to a local database that ``restore :name`` can restore.

    Args:
        dump_key: The target as a local key, e.g. ``:snap`` (``:pre`` and
            ``:post`` are reserved for reversible restores).
        database: The database alias to copy (default ``PGCLONE_DATABASE``).
        config: A name in ``PGCLONE_CONFIGS`` supplying defaults.

    Returns:
        The local key of the copy.

    Raises:
        OperationDisabled: ``PGCLONE_ALLOW_COPY`` is False.
        CopyError: the target is reserved, in use by the project, or exists.
    """
    return copy_run(dump_key, database=database, config=config).dump_key


def copy_run(
    dump_key: str | None = None,
    *,
    database: str | None = None,
    config: str | None = None,
    run_id: str | None = None,
    progress: ProgressCallback | None = None,
) -> PgcloneResult:
    """:func:`copy`, returning the details a task records."""
    settings = get_pgclone_settings()
    require("copy", settings)
    opts = resolve(config=config, dump_key=dump_key, database=database, settings=settings)
    key = opts.dump_key
    if not key:
        raise CopyError("give the copy's name as a local key, e.g. pgclone copy :snap")
    try:
        name = keys.local_name(key)
    except Exception as exc:
        raise CopyError(str(exc)) from None
    if name in keys.RESERVED_LOCAL:
        raise CopyError(f"{key!r} is reserved for reversible restores; pick another name")
    connector = postgres_connector(opts.database, settings)
    configured = {str(conn.get("NAME")) for conn in connections.settings.values()}
    if name in internal_names(connector) or name in configured:
        raise CopyError(f"{key!r} names a database in use; pick another name")
    run = Run.start("pgclone_copy", opts.database, run_id, progress)
    with run.stage("copy"):
        connections[opts.database].close()
        with connector.cursor(connector.maintenance_db()) as cursor:
            if connector.exists(cursor, name):
                raise CopyError(
                    f"database {name!r} already exists; restore it with `pgclone restore {key}` "
                    "or drop it before copying again"
                )
            connector.copy_database(cursor, connector.name, name)
    return PgcloneResult(
        operation="pgclone_copy",
        database=opts.database,
        dump_key=key,
        path=name,
        size=None,
        duration=run.elapsed,
        run_id=run.run_id,
    )
