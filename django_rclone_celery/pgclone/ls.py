"""``pgclone ls``: dump keys in storage, their parts, or the local databases to restore."""

from __future__ import annotations

from ..conf import get_settings
from ..exceptions import ConfigurationError
from ..rclone import Rclone
from . import keys
from .conf import get_pgclone_settings, resolve
from .local import local_keys
from .storage import list_keys


def ls(
    dump_key: str | None = None,
    *,
    instances: bool = False,
    databases: bool = False,
    configs: bool = False,
    local: bool = False,
    database: str | None = None,
    storage_location: str | None = None,
    config: str | None = None,
) -> list[str]:
    """List dump keys (newest first), or only their instances, databases or configs.

    Args:
        dump_key: Only keys starting with this prefix (``:`` prefixes with ``local``).
        instances: List the distinct ``<instance>`` parts of the keys instead.
        databases: List the distinct ``<database>`` parts (bare names) instead.
        configs: List the distinct ``<config>`` parts (bare names) instead.
        local: List local databases that ``restore`` accepts, as ``:name``.
        database: The database alias whose server ``local`` lists.
        storage_location: An rclone path; default ``PGCLONE_STORAGE_LOCATION``.
        config: A name in ``PGCLONE_CONFIGS`` supplying defaults.

    Raises:
        ConfigurationError: more than one listing mode, or an unknown config.
    """
    if sum((instances, databases, configs, local)) > 1:
        raise ConfigurationError(
            "--instances, --databases, --configs and --local are mutually exclusive"
        )
    settings = get_pgclone_settings()
    opts = resolve(
        config=config,
        dump_key=dump_key,
        database=database,
        storage_location=storage_location,
        settings=settings,
    )
    prefix = opts.dump_key or ""
    if local:
        return [key for key in local_keys(opts.database, settings) if key.startswith(prefix)]
    found = list_keys(
        Rclone(get_settings()),
        opts.storage_location,
        keys.check_path(prefix),
        strict=settings.validate_dump_keys,
    )
    # Which part of <instance>/<database>/<config>/<timestamp>.dump to list:
    # the bare, distinct names, as django-pgclone prints them.
    part = 0 if instances else 1 if databases else 2 if configs else None
    if part is None:
        return found
    return sorted({key.split("/")[part] for key in found if key.count("/") >= 3})
