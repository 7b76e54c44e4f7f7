"""Parallel PostgreSQL backups and restores (``--jobs N``, ``JOBS``).

A parallel backup is one object, the schema archive (``pg_dump -Fc`` without
the rows of the tables the streams carry), plus N data streams
``<backup>.stream-<i>``: psql scripts of ``COPY ... FROM stdin`` blocks, each
read by its own ``psql`` from one exported snapshot. Tables larger than a
share of the database are split by ``ctid`` block ranges, so one big table
still gives N streams. The manifest lists every stream with its size, sha256
and pieces; the backup is listed once, through its schema archive.

``dump`` writes them, ``load`` restores and verifies them, ``streams`` holds
the stream format shared by both.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

from ..connectors import Connector

T = TypeVar("T")


def supports(connector: Connector) -> bool:
    """Whether ``connector`` can dump and restore in parallel (PostgreSQL and PostGIS)."""
    from ..connectors.postgresql import PostgresConnector

    return isinstance(connector, PostgresConnector)


LAYOUT = "pg-parallel"


def parse_jobs(value: str | int | None) -> int | None:
    """``--jobs`` as given on the command line: a whole number from 1 to ``MAX_JOBS``.

    Raises ``ValueError`` with the one line to show; None stays None (``JOBS``).
    """
    from ..conf import MAX_JOBS

    if value is None:
        return None
    text = str(value).strip()
    if not text.isdigit() or not 1 <= int(text) <= MAX_JOBS:
        raise ValueError(f"--jobs must be a whole number from 1 to {MAX_JOBS}, not {value!r}")
    return int(text)


def submit(pool: Executor, fn: Callable[..., T], *args: Any) -> Future[T]:
    """``pool.submit`` in a copy of this thread's context: a run's stop button
    (``process.cancellable``) reaches the tools the pool's threads start."""
    return pool.submit(contextvars.copy_context().run, fn, *args)
