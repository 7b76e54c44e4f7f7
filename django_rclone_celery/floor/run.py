"""One run of an operation: its id, its stage signals and its progress reports."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from .. import signals

logger = logging.getLogger("django_rclone_celery")

PROGRESS_INTERVAL = 0.5  # seconds between progress reports inside a stream


@dataclass(frozen=True)
class Progress:
    operation: str
    stage: str
    database: str | None
    run_id: str
    bytes_done: int = 0
    bytes_total: int | None = None


ProgressCallback = Callable[[Progress], None]


@dataclass
class Run:
    operation: str
    database: str | None
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    on_progress: ProgressCallback | None = None
    started: float = field(default_factory=time.monotonic)
    stage_name: str = ""
    _last_report: float = 0.0

    @classmethod
    def start(
        cls,
        operation: str,
        database: str | None,
        run_id: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> Run:
        return cls(operation, database, run_id or uuid.uuid4().hex, progress)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def _kwargs(self) -> dict[str, object]:
        return {
            "operation": self.operation,
            "stage": self.stage_name,
            "database": self.database,
            "run_id": self.run_id,
        }

    @contextmanager
    def stage(self, name: str, bytes_total: int | None = None) -> Iterator[None]:
        """Wrap one stage in pre_stage / post_stage / stage_failed and log it."""
        self.stage_name = name
        signals.pre_stage.send(sender=self.operation, **self._kwargs())
        self.report(0, bytes_total, force=True)
        logger.info("%s %s: %s", self.operation, self.database or "", name)
        try:
            yield
        except BaseException as exc:
            signals.stage_failed.send_robust(sender=self.operation, exception=exc, **self._kwargs())
            raise
        signals.post_stage.send_robust(sender=self.operation, **self._kwargs())

    def report(
        self, bytes_done: int, bytes_total: int | None = None, *, force: bool = False
    ) -> None:
        if self.on_progress is None:
            return
        now = time.monotonic()
        if not force and now - self._last_report < PROGRESS_INTERVAL:
            return
        self._last_report = now
        self.on_progress(
            Progress(
                self.operation, self.stage_name, self.database, self.run_id, bytes_done, bytes_total
            )
        )

    def byte_counter(self, bytes_total: int | None = None) -> Callable[[int], None]:
        return lambda done: self.report(done, bytes_total)
