"""django-rclone-celery: scheduled, observable, idempotent Django backups over rclone.

The public API is ``__all__``, listed with one line each in docs/reference.md.
The operations are its heart; commands, Celery tasks and admin actions all
call them. Names load on first use, so importing the package (for its
AppConfig, or ``__version__``) needs neither settings nor ready apps.
"""

from __future__ import annotations

from importlib import import_module, metadata
from typing import TYPE_CHECKING, Any

try:
    __version__ = metadata.version("django-rclone-celery")
except metadata.PackageNotFoundError:  # a bare checkout on sys.path, never installed
    __version__ = "0+unknown"

# Each public name and the module (under this package) it lives in. No name
# may be a submodule's: importing that submodule would overwrite it.
_HOME: dict[str, str] = {
    # operations
    "backup_database": "operations",
    "backup_media": "operations",
    "cleanup_backups": "operations",
    "cleanup_media": "operations",
    "list_backups": "operations",
    "list_media": "operations",
    "list_media_points": "operations",
    "restore_database": "operations",
    "restore_media": "operations",
    "verify_backup": "operations",
    "Progress": "operations",
    "ProgressCallback": "operations",
    "dump_portable": "portable",
    "load_portable": "portable",
    # results
    "BackupInfo": "results",
    "BackupResult": "results",
    "CleanupResult": "results",
    "MediaCleanupResult": "results",
    "MediaPointInfo": "results",
    "MediaResult": "results",
    "RestoreResult": "results",
    "VerifyResult": "results",
    # errors: every class of the tree drawn in exceptions.py
    "DjangoRcloneCeleryError": "exceptions",
    "BackupNotFound": "exceptions",
    "BrokerUnavailable": "exceptions",
    "ConfigurationError": "exceptions",
    "CopyError": "exceptions",
    "DatabaseUnavailable": "exceptions",
    "HookFailed": "exceptions",
    "IncompleteBackup": "exceptions",
    "InvalidArguments": "exceptions",
    "InvalidBackup": "exceptions",
    "LeaseLost": "exceptions",
    "OperationBusy": "exceptions",
    "OperationDisabled": "exceptions",
    "ProcessError": "exceptions",
    "RcloneError": "exceptions",
    "RestoreError": "exceptions",
    "SyncRefused": "exceptions",
    "CeleryNotConfigured": "enqueue",
    "TaskFailed": "enqueue",
    "WaitTimedOut": "enqueue",
    "TooManyAttempts": "ledger",
    "PortableFormatError": "portable",
    "PortableLoadError": "portable",
    "UnknownApp": "portable",
    "PgRestoreFailed": "pgclone.restore",
    # signals
    "pre_db_backup": "signals",
    "post_db_backup": "signals",
    "pre_db_restore": "signals",
    "post_db_restore": "signals",
    "pre_media_backup": "signals",
    "post_media_backup": "signals",
    "pre_media_restore": "signals",
    "post_media_restore": "signals",
    "pre_stage": "signals",
    "post_stage": "signals",
    "stage_failed": "signals",
    "backup_overdue": "signals",
}

# The same names, written out for tools that read __all__ (tested equal).
__all__ = [
    "BackupInfo",
    "BackupNotFound",
    "BackupResult",
    "BrokerUnavailable",
    "CeleryNotConfigured",
    "CleanupResult",
    "ConfigurationError",
    "CopyError",
    "DatabaseUnavailable",
    "DjangoRcloneCeleryError",
    "HookFailed",
    "IncompleteBackup",
    "InvalidArguments",
    "InvalidBackup",
    "LeaseLost",
    "MediaCleanupResult",
    "MediaPointInfo",
    "MediaResult",
    "OperationBusy",
    "OperationDisabled",
    "PgRestoreFailed",
    "PortableFormatError",
    "PortableLoadError",
    "ProcessError",
    "Progress",
    "ProgressCallback",
    "RcloneError",
    "RestoreError",
    "RestoreResult",
    "SyncRefused",
    "TaskFailed",
    "TooManyAttempts",
    "UnknownApp",
    "VerifyResult",
    "WaitTimedOut",
    "__version__",
    "backup_database",
    "backup_media",
    "backup_overdue",
    "cleanup_backups",
    "cleanup_media",
    "dump_portable",
    "list_backups",
    "list_media",
    "list_media_points",
    "load_portable",
    "post_db_backup",
    "post_db_restore",
    "post_media_backup",
    "post_media_restore",
    "post_stage",
    "pre_db_backup",
    "pre_db_restore",
    "pre_media_backup",
    "pre_media_restore",
    "pre_stage",
    "restore_database",
    "restore_media",
    "stage_failed",
    "verify_backup",
]

if TYPE_CHECKING:
    from .enqueue import CeleryNotConfigured, TaskFailed, WaitTimedOut
    from .exceptions import (
        BackupNotFound,
        BrokerUnavailable,
        ConfigurationError,
        CopyError,
        DatabaseUnavailable,
        DjangoRcloneCeleryError,
        HookFailed,
        IncompleteBackup,
        InvalidArguments,
        InvalidBackup,
        LeaseLost,
        OperationBusy,
        OperationDisabled,
        ProcessError,
        RcloneError,
        RestoreError,
        SyncRefused,
    )
    from .ledger import TooManyAttempts
    from .operations import (
        Progress,
        ProgressCallback,
        backup_database,
        backup_media,
        cleanup_backups,
        cleanup_media,
        list_backups,
        list_media,
        list_media_points,
        restore_database,
        restore_media,
        verify_backup,
    )
    from .pgclone.restore import PgRestoreFailed
    from .portable import (
        PortableFormatError,
        PortableLoadError,
        UnknownApp,
        dump_portable,
        load_portable,
    )
    from .results import (
        BackupInfo,
        BackupResult,
        CleanupResult,
        MediaCleanupResult,
        MediaPointInfo,
        MediaResult,
        RestoreResult,
        VerifyResult,
    )
    from .signals import (
        backup_overdue,
        post_db_backup,
        post_db_restore,
        post_media_backup,
        post_media_restore,
        post_stage,
        pre_db_backup,
        pre_db_restore,
        pre_media_backup,
        pre_media_restore,
        pre_stage,
        stage_failed,
    )


def __getattr__(name: str) -> Any:
    # Lazy: most homes import models, which need ready apps.
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOME})
