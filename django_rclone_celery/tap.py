"""The one stream tap: every byte of a stream hashed (sha256) and counted in one pass.

It sits on the hot path of every backup, restore and verify, so it copies
nothing: it sees the caller's chunk (often a view of a reused buffer) and
hands the same object on. Optionally it also feeds a completeness check
(``completeness.StreamCheck.feed``). :func:`process.pipe` keeps one per side
of its stream; Python readers of a stream wrap it in :class:`TappedReader`;
as an identity transform it also tells whether a stream reached its end.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import IO

Feed = Callable[[memoryview], object]


class Tap:
    """Hash (unless ``hashing`` is False) and count what :meth:`feed` sees; pass
    each chunk on to ``check``, e.g. a completeness check's ``feed``."""

    __slots__ = ("_hash", "check", "ended", "size")

    def __init__(self, check: Feed | None = None, *, hashing: bool = True) -> None:
        self._hash = hashlib.sha256() if hashing else None
        self.check = check
        self.size = 0
        self.ended = False  # set by finish(): the stream reached its end

    def feed(self, data: bytes | memoryview) -> bytes | memoryview:
        if self._hash is not None:
            self._hash.update(data)
        self.size += len(data)
        if self.check is not None:
            self.check(data if isinstance(data, memoryview) else memoryview(data))
        return data

    def finish(self) -> bytes:
        """The end of the stream (as a :class:`process.Transform`, it adds nothing)."""
        self.ended = True
        return b""

    @property
    def sha256(self) -> str:
        """The hex digest of what was fed so far ("" when not hashing)."""
        return self._hash.hexdigest() if self._hash is not None else ""


class TappedReader:
    """A binary file read through a :class:`Tap`, reporting the bytes read so far."""

    def __init__(
        self, raw: IO[bytes], progress: Callable[[int], None] | None = None, tap: Tap | None = None
    ) -> None:
        self._raw = raw
        self._progress = progress
        self.tap = tap or Tap()

    def read(self, size: int) -> bytes:
        chunk = self._raw.read(size)
        if chunk:
            self.tap.feed(chunk)
            if self._progress is not None:
                self._progress(self.tap.size)
        return chunk

    def drain(self, size: int) -> None:
        """Read (and so hash) what a consumer left unread."""
        while self.read(size):
            pass

    @property
    def size(self) -> int:
        return self.tap.size

    @property
    def sha256(self) -> str:
        return self.tap.sha256
