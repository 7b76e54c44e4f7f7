"""A staging session: stage beside the live database, discard on failure, swap on success.

Every restore that replaces a database (``dbrestore``, ``pgclone restore``)
and every trial restore (``verifybackup --restore``) goes through one::

    with StagingSession(run, connector.staging()) as session:
        session.prepare()
        ...  # fill session.target, then session.check()
    # left cleanly: swapped in; left by an exception: discarded

A trial (``swap=False``) is discarded however the block is left.
"""

from __future__ import annotations

import logging
from types import TracebackType

from ..connectors.base import Staging
from .run import Run

logger = logging.getLogger("django_rclone_celery")


class StagingSession:
    """One staged copy through its life; each step is a stage of ``run``."""

    def __init__(self, run: Run, staging: Staging, *, swap: bool = True) -> None:
        self.run = run
        self.staging = staging
        self.swaps = swap
        self.prepared = False
        self.settled = False  # swapped in or discarded: nothing left to do on exit

    @property
    def target(self) -> str:
        return self.staging.target

    def __enter__(self) -> StagingSession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.settled:
            return
        if exc_type is not None:
            self.discard_quietly()
        elif self.swaps:
            self.swap()
        else:
            self.discard()

    def prepare(self) -> None:
        """Clear what a crashed run left and create the staged copy."""
        with self.run.stage("prepare"):
            self.staging.prepare()
        self.prepared = True

    def check(self) -> None:
        """The connector's check of the filled copy, before it may go live."""
        with self.run.stage("check"):
            self.staging.check()

    def swap(self) -> None:
        """Put the staged copy live in one atomic step; if that fails, drop it."""
        try:
            with self.run.stage("swap"):
                self.staging.swap()
        except BaseException:
            self.discard_quietly()
            raise
        self.settled = True

    def discard(self) -> None:
        """Drop the staged copy as a stage of its own; its failure is the run's."""
        self.settled = True
        with self.run.stage("discard"):
            self.staging.discard()

    def discard_quietly(self) -> None:
        """Drop the staged copy after a failure, which stays the error to report."""
        self.settled = True
        try:
            self.staging.discard()
        except Exception as exc:
            if self.prepared:
                logger.warning("could not clean up the staged restore", exc_info=True)
            else:
                # Preparing failed, most often for the same reason (server down, login
                # refused): the caller's error says it; a traceback here would only bury it.
                logger.debug("nothing staged to clean up: %s", exc, exc_info=True)
