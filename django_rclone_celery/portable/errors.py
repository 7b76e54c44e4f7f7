"""Errors of the portable format: a bad file, or a load that was rolled back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.db import OperationalError, connections

from ..exceptions import DatabaseUnavailable, InvalidBackup, RestoreError
from ..process import redact, secret_forms


class PortableFormatError(InvalidBackup):
    """A portable file or stream is malformed (bad header, bad line, cut short)."""


@dataclass(frozen=True)
class RowError:
    """One problem found while loading: ``line`` is 0 when it concerns the whole table."""

    table: str
    line: int
    message: str

    def __str__(self) -> str:
        where = f"{self.table}, line {self.line}" if self.line else self.table
        return f"{where}: {self.message}"


class PortableLoadError(RestoreError):
    """A load failed and was rolled back: the database is as it was before."""

    def __init__(self, errors: list[RowError], total: int | None = None) -> None:
        self.errors = errors
        self.total = total if total is not None else len(errors)
        shown = "\n".join(f"  {error}" for error in errors[:20])
        more = self.total - min(len(errors), 20)
        tail = f"\n  ... and {more} more" if more > 0 else ""
        noun = "error" if self.total == 1 else "errors"
        super().__init__(
            f"load rolled back, the database is unchanged; {self.total} {noun}:\n{shown}{tail}"
        )


@contextmanager
def database_errors(using: str) -> Iterator[None]:
    """A login refused or a server out of reach becomes one line, not a driver traceback.

    Only when no connection could be opened: an error on an open connection is
    about the data, and keeps its own type and handling.
    """
    try:
        yield
    except OperationalError as exc:
        if connections[using].connection is not None:
            raise
        password = str(connections.settings[using].get("PASSWORD") or "")
        text = redact(str(exc), secret_forms(password)).strip()
        raise DatabaseUnavailable(f"database {using!r} cannot be used: {text}") from exc
