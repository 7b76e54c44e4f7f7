"""django-rclone-celery: scheduled, observable, idempotent Django backups over rclone.

The operations are the public Python API; commands, Celery tasks and admin
actions all call them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "backup_database",
    "backup_media",
    "cleanup_backups",
    "list_backups",
    "restore_database",
    "restore_media",
]

if TYPE_CHECKING:
    from .operations import (
        backup_database,
        backup_media,
        cleanup_backups,
        list_backups,
        restore_database,
        restore_media,
    )


def __getattr__(name: str) -> Any:
    # Lazy, so importing the package (e.g. for its AppConfig) needs no settings.
    if name in __all__:
        from . import operations

        return getattr(operations, name)
    raise AttributeError(name)
