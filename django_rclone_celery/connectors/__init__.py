"""Connector registry: which connector backs up which database alias.

Resolution order: ``CONNECTORS[alias]``, then ``CONNECTOR_MAPPING[engine]``,
then the defaults below. django-rclone's dotted paths are accepted as
spellings of ours, so its users' settings keep working.
"""

from __future__ import annotations

from django.db import connections
from django.utils.module_loading import import_string

from ..conf import Settings, get_settings
from ..exceptions import ConfigurationError
from .base import Connector, Staging

__all__ = ["Connector", "Staging", "check_alias", "get_connector", "resolve_path"]

_PKG = "django_rclone_celery.connectors"
POSTGRES = f"{_PKG}.postgresql.PostgresConnector"
POSTGIS = f"{_PKG}.postgresql.PostgisConnector"
MYSQL = f"{_PKG}.mysql.MysqlConnector"
SQLITE = f"{_PKG}.sqlite.SqliteConnector"
MONGO = f"{_PKG}.mongodb.MongoConnector"

DEFAULT_MAPPING: dict[str, str] = {
    "django.db.backends.postgresql": POSTGRES,
    "django.db.backends.postgresql_psycopg2": POSTGRES,
    "django.contrib.gis.db.backends.postgis": POSTGIS,
    "django.db.backends.mysql": MYSQL,
    "django.contrib.gis.db.backends.mysql": MYSQL,
    "django.db.backends.sqlite3": SQLITE,
    "django.contrib.gis.db.backends.spatialite": SQLITE,
    "djongo": MONGO,
    "django_mongodb_engine": MONGO,
    "django_mongodb_backend": MONGO,
    "django_prometheus.db.backends.postgresql": POSTGRES,
    "django_prometheus.db.backends.postgis": POSTGIS,
    "django_prometheus.db.backends.mysql": MYSQL,
    "django_prometheus.db.backends.sqlite3": SQLITE,
}

# django-rclone's class paths, so its users' CONNECTORS settings work unchanged.
COMPAT_PATHS: dict[str, str] = {
    "django_rclone.db.postgresql.PgDumpConnector": POSTGRES,
    "django_rclone.db.postgresql.PgDumpGisConnector": POSTGIS,
    "django_rclone.db.mysql.MysqlDumpConnector": MYSQL,
    "django_rclone.db.sqlite.SqliteConnector": SQLITE,
    "django_rclone.db.mongodb.MongoDumpConnector": MONGO,
}


def check_alias(alias: str) -> None:
    if alias not in connections.settings:
        known = ", ".join(sorted(connections.settings)) or "none"
        raise ConfigurationError(f"unknown database alias {alias!r} (configured: {known})")


def resolve_path(alias: str, settings: Settings | None = None) -> str:
    settings = settings or get_settings()
    check_alias(alias)
    if alias in settings.connectors:
        path = settings.connectors[alias]
    else:
        engine = connections.settings[alias].get("ENGINE", "")
        mapping = {**DEFAULT_MAPPING, **settings.connector_mapping}
        if engine not in mapping:
            raise ConfigurationError(
                f"no connector for database {alias!r} (engine {engine!r}); "
                "set DJANGO_RCLONE['CONNECTORS'] or ['CONNECTOR_MAPPING']"
            )
        path = mapping[engine]
    return COMPAT_PATHS.get(path, path)


def get_connector(alias: str, settings: Settings | None = None) -> Connector:
    path = resolve_path(alias, settings)
    try:
        cls = import_string(path)
    except ImportError as exc:
        raise ConfigurationError(f"cannot import connector {path!r}: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise ConfigurationError(f"{path!r} is not a Connector subclass")
    connector: Connector = cls(alias, connections.settings[alias])
    connector.db_options = (settings or get_settings()).database_options.get(
        alias, connector.db_options
    )  # pgtools (#19.3)
    return connector
