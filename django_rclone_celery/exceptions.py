"""The error tree. Everything the package raises on purpose derives from one root.

Each class is drawn once, under its parent; ``[module]`` names its home when
that is not this module. tests/unit/test_public_api.py checks the drawing against
the classes the package defines, and docs/reference.md against this drawing.

    DjangoRcloneCeleryError
    ├── ConfigurationError        also django's ImproperlyConfigured
    │   └── CeleryNotConfigured   [enqueue] no Celery app, broker or result backend
    ├── BackupNotFound            no backup matches the request
    ├── InvalidBackup             path escapes its directory, wrong engine, corrupt data
    │   ├── IncompleteBackup      a dump that did not end (cut short, tool error, lock)
    │   └── PortableFormatError   [portable.errors] a malformed or cut-short portable file
    │       └── UnknownApp        [portable.selection] an app label that is not installed
    ├── OperationDisabled         a kill switch (e.g. PGCLONE_ALLOW_RESTORE) refuses
    ├── InvalidArguments          a task's (or schedule's) arguments break the command line's rules
    ├── OperationBusy             another operation holds the database's lock
    │   └── LeaseLost             ... took it while this run worked: this run stopped
    ├── BrokerUnavailable         the broker or result backend did not answer; nothing queued
    ├── TooManyAttempts           [ledger] a run started more often than TASK_MAX_RETRIES allows
    ├── TaskFailed                [enqueue] a queued run ended in failure
    ├── WaitTimedOut              [enqueue] --wait --timeout ran out; the run goes on
    ├── RestoreError              a restore failed; the live database was left as it was
    │   └── PortableLoadError     [portable.errors] a portable load failed and was rolled back
    ├── HookFailed                a pgclone pre-dump or pre-swap hook command raised
    ├── CopyError                 a pgclone copy was refused or failed
    ├── DatabaseUnavailable       the database refused the login or cannot be reached
    ├── SyncRefused               a media guard refused a sync before anything changed
    └── ProcessError              an external program failed (argv, returncode, stderr)
        ├── RcloneError           ... and that program was rclone (knows if transient)
        └── PgRestoreFailed       [pgclone.restore] pg_restore failed; check_errors decides

Internal signals, caught in the module that raises them, never reach a caller:

    _Stop                         [operations.verify] the stream cannot be decoded further
    _Stop                         [portable.load] errorquit: leave at the first error
    _Need                         [completeness] more bytes are needed

Messages never contain secrets: the gateway scrubs them from stderr before
an exception is built.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from django.core.exceptions import ImproperlyConfigured


class DjangoRcloneCeleryError(Exception):
    """Root of every error this package raises on purpose."""


class ConfigurationError(DjangoRcloneCeleryError, ImproperlyConfigured):
    """Settings are missing, malformed or point at something that does not exist."""


class BackupNotFound(DjangoRcloneCeleryError):
    """No backup matches the alias, name or prefix asked for."""


class InvalidBackup(DjangoRcloneCeleryError):
    """A backup was refused: bad path, wrong engine, bad checksum, unknown format."""


class IncompleteBackup(InvalidBackup):
    """A dump lacks its end: cut short, or its tool stopped on an error and still exited 0."""


class OperationDisabled(DjangoRcloneCeleryError):
    """A setting switches this operation off."""


class OperationBusy(DjangoRcloneCeleryError):
    """Another operation is running against the same database."""


class BrokerUnavailable(DjangoRcloneCeleryError):
    """The Celery broker or result backend did not answer; nothing was queued."""


class LeaseLost(OperationBusy):
    """The run lost its lease mid-way and was stopped: tools killed, partial work discarded."""


class InvalidArguments(DjangoRcloneCeleryError):
    """A task was sent arguments the command line would refuse (unknown, wrong type or value)."""


class RestoreError(DjangoRcloneCeleryError):
    """A restore failed before the swap; the live database is unchanged."""


class HookFailed(DjangoRcloneCeleryError):
    """A pgclone hook (a management command) raised."""


class CopyError(DjangoRcloneCeleryError):
    """A pgclone copy was refused (reserved or existing target) or failed."""


class DatabaseUnavailable(DjangoRcloneCeleryError):
    """The database refused the login or cannot be reached (from Python, not a tool)."""


class SyncRefused(DjangoRcloneCeleryError):
    """A media backup or restore was refused (empty source, too many deletions); nothing changed."""


class ProcessError(DjangoRcloneCeleryError):
    """An external program exited non-zero, was killed, or could not start."""

    def __init__(self, argv: Sequence[str], returncode: int | None, stderr: str = "") -> None:
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stderr = stderr
        program = self.argv[0] if self.argv else "?"
        if returncode is None:
            status = "did not finish"
        elif returncode < 0:
            status = f"was killed by signal {-returncode}"
        else:
            status = f"exited with status {returncode}"
        self.message = f"{program} {status}{self._detail(stderr)}"
        super().__init__(self.message)
        # Celery's JSON result backend rebuilds an error as ``cls(*args)``: keep
        # the constructor's arguments there, or a worker's RcloneError reaches
        # the caller as a bare Exception (argv never holds secrets; stderr is scrubbed).
        self.args = (list(self.argv), returncode, stderr)

    def __str__(self) -> str:
        return self.message

    @classmethod
    def _detail(cls, stderr: str) -> str:
        """What follows the status in the message: the last lines the program said."""
        tail = stderr.strip().splitlines()[-5:]
        return ("\n" + "\n".join(tail)) if tail else ""


# rclone exit codes (rclone docs, "Exit Code"): 5 is "temporary error, more
# retries might fix"; 1 is uncategorised and covers network failures too, so
# its stderr is inspected. 2-4 and 6-10 are usage, not-found or fatal errors.
_TRANSIENT_CODES = frozenset({5})
_NOT_FOUND_CODES = frozenset({3, 4})  # directory / file not found
_TRANSIENT_MARKERS = (
    "connection refused",
    "connection reset",
    "timeout",
    "timed out",
    "temporary failure",
    "no such host",
    "too many requests",
    "service unavailable",
    "slowdown",
    "internal error",
    "broken pipe",
    "eof",
)


# One line of rclone's log: "2026/12/06 16:40:29 CRITICAL: ..." or "... ERROR : ...".
_RCLONE_FAILURE = re.compile(r"^(?:\d{4}/\d\d/\d\d \d\d:\d\d:\d\d )?(?:CRITICAL|ERROR)\s*:\s*(.+)$")


class RcloneError(ProcessError):
    """rclone failed. ``transient`` says whether a retry may succeed.

    The message is one line with rclone's own last error as the reason
    (``rclone exited with status 1: Failed to create file system for
    "typo:bucket": didn't find section in config file ("typo")``), not its
    notices; the whole stderr stays in ``stderr``.
    """

    @classmethod
    def _detail(cls, stderr: str) -> str:
        reasons = [
            found.group(1)
            for line in stderr.splitlines()
            if (found := _RCLONE_FAILURE.match(line.strip()))
        ]
        return f": {reasons[-1]}" if reasons else super()._detail(stderr)

    @property
    def not_found(self) -> bool:
        return self.returncode in _NOT_FOUND_CODES

    @property
    def no_such_remote(self) -> bool:
        """The path names a remote rclone's config does not have: nothing is there."""
        return "didn't find section in config file" in self.stderr

    @property
    def transient(self) -> bool:
        if self.returncode in _TRANSIENT_CODES:
            return True
        if self.returncode == 1:
            text = self.stderr.lower()
            return any(marker in text for marker in _TRANSIENT_MARKERS)
        return False


@contextmanager
def missing_backup(name: str) -> Iterator[None]:
    """Inside this block, rclone's "object not found" means backup ``name`` is gone."""
    try:
        yield
    except RcloneError as exc:
        if exc.not_found:
            raise BackupNotFound(f"backup {name!r} does not exist") from exc
        raise
