"""Local databases: the connector pgclone drives, and what ``:name`` keys refer to.

``:pre`` and ``:post`` name ``<db>__pre`` and ``<db>__post``, the restore points
of a reversible restore. Any other ``:name`` is the database ``name`` on the
same server, as in django-pgclone (``pgclone copy :name`` creates it).
"""

from __future__ import annotations

from ..connectors import get_connector
from ..connectors.postgresql import PostgresConnector, PostgresStaging
from ..exceptions import ConfigurationError
from . import keys
from .conf import PgcloneSettings


def postgres_connector(alias: str, settings: PgcloneSettings) -> PostgresConnector:
    connector = get_connector(alias)
    if not isinstance(connector, PostgresConnector):
        raise ConfigurationError(
            f"pgclone works on PostgreSQL databases only; {alias!r} is {connector.vendor}"
        )
    connector.conn_db = settings.conn_db
    connector.session_settings = settings.session_settings()
    return connector


def local_database(connector: PostgresConnector, key: str) -> str:
    name = keys.local_name(key)
    if name in keys.RESERVED_LOCAL:
        return f"{connector.name}__{name}"
    return name


def internal_names(connector: PostgresConnector) -> set[str]:
    """Databases that are never a restore source or a copy target of their own."""
    staging = PostgresStaging(connector)
    return {
        connector.name,
        connector.maintenance_db(),
        staging.target,
        staging.old,
        staging.next_post,
        staging.old_post,
    }


def local_keys(alias: str, settings: PgcloneSettings) -> list[str]:
    """Every local database ``restore`` accepts, as ``:name`` keys."""
    connector = postgres_connector(alias, settings)
    with connector.cursor(connector.maintenance_db()) as cursor:
        cursor.execute("SELECT datname FROM pg_database WHERE NOT datistemplate")
        names = {row[0] for row in cursor.fetchall()}
    found = []
    for reserved in sorted(keys.RESERVED_LOCAL):
        full = f"{connector.name}__{reserved}"
        if full in names:
            found.append(f":{reserved}")
            names.discard(full)
    names -= internal_names(connector)
    return found + [f":{name}" for name in sorted(names)]
