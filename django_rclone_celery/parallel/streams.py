"""The data stream format: a psql script of ``COPY ... FROM stdin`` blocks.

A stream starts with the session settings its rows were written under
(encoding, date style), then one block per piece, then an end line naming
the stream. Rows are COPY's text format, one line each, so the blocks can be
counted while the stream passes, and a stream without its end line is cut
short: it is never loaded to its end, and never verified.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from ..completeness import StreamCheck

_TERMINATOR = b"\\."
_PLAIN = re.compile(r'[A-Za-z0-9_$.," ]*')
_COPY_SLICE = 64 << 10
# What pg_dump sets for its own COPY output, so the rows read back the same way.
DUMP_SETTINGS = (
    "SET DateStyle = ISO",
    "SET IntervalStyle = postgres",
    "SET extra_float_digits = 3",
    "SET row_security = off",
    "SET statement_timeout = 0",
    "SET lock_timeout = 0",
    "SET idle_in_transaction_session_timeout = 0",
)


@dataclass(frozen=True)
class Piece:
    """Rows of one table: all of them, or the ``ctid`` blocks ``[first, end)``.

    ``schema`` and ``table`` are raw names; ``target`` and ``columns`` are
    already quoted by the server (``quote_ident``).
    """

    schema: str
    table: str
    target: str
    columns: str
    first: int | None = None  # first block; None: from the start
    end: int | None = None  # block after the last; None: to the end
    size: int = 0  # bytes on disk, to balance the streams

    @property
    def key(self) -> str:
        """The table as row counts name it (``schema.table``)."""
        return f"{self.schema}.{self.table}"

    def select(self) -> str:
        """The ``COPY ... TO STDOUT`` reading this piece."""
        return f"COPY {self.source()} TO STDOUT"

    def source(self) -> str:
        """What the piece's COPY reads: the table and its columns, or a ``ctid`` range."""
        if self.first is None and self.end is None:
            return f"{self.target}{self._listed()}"
        where = []
        if self.first is not None:
            where.append(f"ctid >= '({self.first},0)'::tid")
        if self.end is not None:
            where.append(f"ctid < '({self.end},0)'::tid")
        return f"(SELECT {self.columns} FROM ONLY {self.target} WHERE {' AND '.join(where)})"

    def plain(self) -> bool:
        """Whether its names are plain ASCII identifiers, quoted at most as a whole.

        psql's ``\\copy`` and ``\\echo`` take such names on one line as they
        are; any other name (a doubled quote, a newline, a non-ASCII letter
        in a database of another encoding) is read through SQL instead.
        """
        names = f"{self.target} {self.columns}"
        return _PLAIN.fullmatch(names) is not None and '""' not in names

    def header(self) -> str:
        return f"COPY {self.target}{self._listed()} FROM stdin;"

    def _listed(self) -> str:
        # A table without columns (CREATE TABLE t ()) has rows but no list to give.
        return f" ({self.columns})" if self.columns else ""

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Piece:
        known = {k: raw[k] for k in cls.__dataclass_fields__ if k in raw}
        return cls(**known)


def end_line(index: int, total: int) -> bytes:
    return f"-- end of stream {index} of {total}".encode()


def sql_literal(text: str) -> str:
    # standard_conforming_strings is on in every supported server: only quotes double.
    return "'" + text.replace("'", "''") + "'"


class StreamEnd(StreamCheck):
    """Whether a stream ends with its end line; only its last bytes are kept."""

    def __init__(self, index: int, total: int) -> None:
        super().__init__()
        self.end = end_line(index, total) + b"\n"

    def problem(self) -> str | None:
        if not self.tail.endswith(self.end):
            return "is incomplete: it ends before its end line (cut short)"
        return None


class CopyScript(StreamCheck):
    """Counts the rows of every block of a stream and checks that it ended.

    ``pieces`` is how many blocks the manifest says the stream holds.
    """

    vendor = "postgresql"

    def __init__(self, index: int, total: int, pieces: int) -> None:
        super().__init__()
        self.end = end_line(index, total)
        self.pieces = pieces
        self.rows: list[int] = []  # per block, in order
        self._copy = False
        self._pending = b""  # an unfinished line
        self._ended = False
        self._broken: str | None = None

    def feed(self, data: memoryview | bytes) -> None:
        super().feed(data)
        if self._broken:
            return
        # The decoder's own bytes when it gave bytes: no copy of a whole chunk.
        raw = data.obj if isinstance(data, memoryview) and isinstance(data.obj, bytes) else data
        if isinstance(raw, bytes) and len(raw) == len(data):
            self._feed(raw)
            return
        # A view of a reused buffer: copied a slice at a time, not a whole 1 MiB read.
        for start in range(0, len(data), _COPY_SLICE):
            self._feed(bytes(data[start : start + _COPY_SLICE]))

    def _feed(self, chunk: bytes) -> None:
        pos = 0
        if self._pending:  # finish the line the last chunk cut, on its own
            newline = chunk.find(b"\n")
            if newline < 0:
                self._pending += chunk
                return
            line, self._pending = self._pending + chunk[: newline + 1], b""
            self._scan(line)
            pos = newline + 1
        self._pending = chunk[self._scan(chunk, pos) :]

    def _scan(self, buf: bytes, pos: int = 0) -> int:
        """Read whole lines of ``buf`` from ``pos``; returns where the unfinished one starts."""
        while pos < len(buf) and not self._broken:
            if self._copy:
                pos, ended = self._rows(buf, pos)
                if not ended:
                    break
                continue
            newline = buf.find(b"\n", pos)
            if newline < 0:
                break
            self._line(buf[pos:newline])
            pos = newline + 1
        return pos

    def _rows(self, buf: bytes, pos: int) -> tuple[int, bool]:
        """Count rows from ``pos`` (a line start) up to the block's terminator.

        Returns where counting stopped and whether the block ended there.
        """
        if buf.startswith(_TERMINATOR + b"\n", pos):
            self._copy = False
            return pos + len(_TERMINATOR) + 1, True
        found = buf.find(b"\n" + _TERMINATOR + b"\n", pos)
        if found >= 0:
            self.rows[-1] += buf.count(b"\n", pos, found + 1)
            self._copy = False
            return found + len(_TERMINATOR) + 2, True
        last = buf.rfind(b"\n", pos)
        if last < 0:
            return pos, False
        self.rows[-1] += buf.count(b"\n", pos, last + 1)
        return last + 1, False

    def _line(self, line: bytes) -> None:
        if self._ended:
            self._broken = "has text after its end line"
        elif line.startswith(b"COPY ") and line.endswith(b" FROM stdin;"):
            self.rows.append(0)
            self._copy = True
        elif line == self.end:
            self._ended = True
        elif not (line.startswith(b"SET ") or not line):
            self._broken = f"has a line that is not part of a stream: {line[:60]!r}"

    def problem(self) -> str | None:
        if self._broken:
            return self._broken
        if not self._ended or self._pending or self._copy:
            return "is incomplete: it ends before its end line (cut short)"
        if len(self.rows) != self.pieces:
            return f"holds {len(self.rows)} tables or ranges, its manifest says {self.pieces}"
        return None
