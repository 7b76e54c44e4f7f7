"""Several runs at once in one process (``dbbackup --all``) writing a SQLite ledger.

SQLite takes one writer at a time; a writer that finds the file locked sleeps
1, 2, 5, 10... ms before it looks again. This process's own writers queue on
a lock instead, so no write waits inside SQLite for another of ours.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.db import connections

from django_rclone_celery import ledger


@pytest.mark.django_db(transaction=True)
def test_this_processs_writers_take_turns_on_a_sqlite_ledger() -> None:
    alias = ledger.ledger_alias()
    assert connections[alias].vendor == "sqlite"
    rows = [
        ledger.claim_for_caller("db_backup", f"db{i}", f"manual:{i}", f"task{i}")[0]
        for i in range(4)
    ]
    spans: list[tuple[float, float]] = []
    record = threading.Lock()

    def timed(execute: Callable[..., Any], sql: str, *args: Any) -> Any:
        started = time.monotonic()
        try:
            return execute(sql, *args)
        finally:
            if sql.lstrip().upper().startswith("UPDATE"):
                with record:
                    spans.append((started, time.monotonic()))

    def write(index: int) -> None:
        try:
            with connections[alias].execute_wrapper(timed):
                for n in range(25):
                    ledger.succeed(rows[index], {"path": f"p{n}", "size": n})
        finally:
            connections[alias].close()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, range(4)))
    assert len(spans) == 100
    spans.sort()
    overlaps = sum(1 for a, b in itertools.pairwise(spans) if b[0] < a[1])
    assert overlaps == 0  # one write at a time: none waited inside SQLite for another
