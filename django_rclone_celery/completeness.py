"""Is a dump complete? One check per engine, judged on the stream as it passes.

The backup path feeds the dump tool's output to a check before anything is
published; ``verifybackup`` and ``dbrestore`` feed the decoded backup to the
same check. A check keeps a bounded tail of the stream, never the stream, and
needs no second read:

* SQLite ``.dump`` ends with ``COMMIT;`` and holds no ``/**** ERROR`` line
  (the ``sqlite3`` tool prints that, and exits 0, when a lock or a corrupt
  page stops it);
* a mysqldump/mariadb-dump ends with ``-- Dump completed``;
* a PostgreSQL custom-format archive has a readable header and table of
  contents, and one whole data block for every entry the table of contents
  says has data (the format has no end record; a cut archive lacks blocks).

Each check also counts the rows of every table as they pass, so a manifest
states what the backup holds rather than what a separate query saw.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from dataclasses import dataclass
from typing import Any

from .exceptions import IncompleteBackup

TAIL_KEEP = 4096  # bytes kept to find a dump's last line


class StreamCheck:
    """Fed every byte of a plain (uncompressed) dump, in order; then asked for a verdict."""

    vendor = ""

    def __init__(self) -> None:
        self.tail = b""

    def feed(self, data: memoryview | bytes) -> None:
        # Bytes are hashed and counted by the stream's tap (tap.py), not here.
        if len(data) >= TAIL_KEEP:
            self.tail = bytes(data[-TAIL_KEEP:])
        else:
            self.tail = (self.tail + bytes(data))[-TAIL_KEEP:]

    def problem(self) -> str | None:
        """What is wrong with the stream fed so far, or None if it is a whole dump."""
        return None

    def counts(self) -> dict[str, int] | None:
        """Rows per table seen in the stream; None when this stream cannot tell."""
        return None

    def tables(self) -> set[str] | None:
        """The tables whose rows the dump holds, where the stream says (None: it does not)."""
        return None

    def check(self, name: str) -> None:
        """Raise :class:`IncompleteBackup` naming ``name`` unless the stream is whole."""
        problem = self.problem()
        if problem:
            raise IncompleteBackup(f"{name} {problem}")

    def last_line(self) -> bytes:
        lines = [line.strip() for line in self.tail.splitlines() if line.strip()]
        return lines[-1] if lines else b""


class _Lines(StreamCheck):
    """Shared by the SQL text dumps: whole lines are handed to ``line_batch``."""

    def __init__(self) -> None:
        super().__init__()
        self._carry = b""
        self.rows: Counter[bytes] = Counter()

    def feed(self, data: memoryview | bytes) -> None:
        super().feed(data)
        chunk = bytes(data)  # the one copy: ``data`` is a reused buffer
        cut = chunk.rfind(b"\n")
        if cut < 0:
            self._carry += chunk
            return
        start = 0
        if self._carry:  # the line the last chunk began, then the rest in place
            start = chunk.find(b"\n") + 1
            joined = self._carry + chunk[:start]
            self.line_batch(joined, 0, len(joined))
        if start <= cut:
            self.line_batch(chunk, start, cut + 1)
        self._carry = chunk[cut + 1 :]

    def line_batch(self, buf: bytes, start: int, end: int) -> None:
        """Whole lines ``buf[start:end]``, passed by offsets to spare a copy."""
        raise NotImplementedError

    def _flush(self) -> None:
        """A last line without its newline is still a line."""
        if self._carry:
            carry, self._carry = self._carry, b""
            self.line_batch(carry, 0, len(carry))


# ``sqlite3 .dump`` writes one INSERT per row, one row per line (newlines in
# values are written as char(10)), table after table; names are bare or in
# double quotes.
_SQLITE_INSERT = re.compile(rb'^INSERT INTO ("(?:[^"]|"")*"|[^ (]+) VALUES\(', re.M)
_SQLITE_ERROR = re.compile(rb"^/\*\*\*\* ERROR: (.*?) \*\*\*\*\*/$", re.M)
_SQLITE_ROW = b"\nINSERT INTO "


class SqliteDump(_Lines):
    vendor = "sqlite"

    def __init__(self, lock_timeout: float | None = None) -> None:
        super().__init__()
        self.lock_timeout = lock_timeout
        self.error: bytes | None = None

    def line_batch(self, buf: bytes, start: int, end: int) -> None:
        if self.error is None and buf.find(b"/**** ERROR", start, end) >= 0:
            # At a line's start, not inside a value.
            found = _SQLITE_ERROR.search(buf, start, end)
            if found:
                self.error = found.group(1)
        # Rows of one table are contiguous: when a batch's first and last INSERT
        # name the same table, every line between is one of its rows, and a
        # memchr-speed count replaces a regex match per row.
        first = _SQLITE_INSERT.search(buf, start, end)
        if first is None:
            return
        last_at = buf.rfind(_SQLITE_ROW, first.start(), end) + 1
        last = _SQLITE_INSERT.match(buf, last_at, end) if last_at > 0 else first
        if last is not None and last.group(1) == first.group(1):
            self.rows[first.group(1)] += buf.count(_SQLITE_ROW, first.start(), end) + 1
        else:
            self.rows.update(_SQLITE_INSERT.findall(buf, start, end))

    def problem(self) -> str | None:
        self._flush()
        if self.error is not None:
            text = self.error.decode("utf-8", "replace")
            if "database is locked" in text and self.lock_timeout is not None:
                return f"failed: database is locked for more than {self.lock_timeout:g} s"
            return f"is incomplete: sqlite3 stopped on an error ({text})"
        if self.last_line() != b"COMMIT;":
            return "is incomplete: it does not end with sqlite3's final 'COMMIT;' (cut short)"
        return None

    def counts(self) -> dict[str, int]:
        self._flush()
        counted = {_unquote(name, b'"'): count for name, count in self.rows.items()}
        # SQLite's own tables (sqlite_sequence) are its bookkeeping, not data.
        return {name: n for name, n in counted.items() if not name.startswith("sqlite_")}


# mysqldump's INSERTs hold many rows: ``INSERT INTO `t` VALUES (..),(..);`` on
# one line, or (MariaDB 10.11+) one row per line, ``),`` ending each. Strings
# are in single quotes with backslash escapes and never hold a raw newline,
# so only a ``),(`` inside a string can mislead a count (see _mysql_rows).
_MYSQL_INSERT = re.compile(rb"^INSERT INTO (`(?:[^`]|``)*`) VALUES", re.M)


def _mysql_rows(buf: bytes, start: int, end: int) -> int:
    """Row separators in ``buf[start:end]``, part of an INSERT's VALUES, strings excluded."""
    rows = buf.count(b"),\n(", start, end)
    inline = buf.count(b"),(", start, end)
    if inline and buf.find(b"'", start, end) >= 0:
        body = buf[start:end]
        # Without its escapes, every quote opens or closes a string: the odd
        # pieces of a split are the strings' contents. Only there is a
        # separator not one. (Bytes outside strings have no backslash.)
        plain = body.replace(b"\\\\", b"").replace(b"\\'", b"")
        strings = b"\0".join(plain.split(b"'")[1::2])
        inline = plain.count(b"),(") - strings.count(b"),(")
    return rows + inline


class MysqlDump(_Lines):
    vendor = "mysql"

    def __init__(self) -> None:
        super().__init__()
        self._table: bytes | None = None  # the INSERT still open at the end of a batch
        self._split = False  # that batch ended between "),\n" and the next row's "("

    def line_batch(self, buf: bytes, start: int, end: int) -> None:
        if self._table is None and buf.find(b"INSERT INTO ", start, end) < 0:
            return
        pos = start
        if self._table is not None:
            if self._split and buf.startswith(b"(", start):
                self.rows[self._table] += 1
            pos = self._rows_until_end(buf, start, end, self._table, first=False)
        while (found := _MYSQL_INSERT.search(buf, pos, end)) is not None:
            pos = self._rows_until_end(buf, found.end(), end, found.group(1), first=True)

    def _rows_until_end(
        self, buf: bytes, start: int, end: int, table: bytes, *, first: bool
    ) -> int:
        """Count the rows from ``start`` to the statement's end or the batch's; returns where."""
        close = buf.find(b";\n", start, end)
        stop = end if close < 0 else close
        self.rows[table] += _mysql_rows(buf, start, stop) + (1 if first else 0)
        if close < 0:
            self._table, self._split = table, buf.endswith(b"),\n", start, end)
            return end
        self._table, self._split = None, False
        return close + 2

    def problem(self) -> str | None:
        self._flush()
        if not self.last_line().startswith(b"-- Dump completed"):
            return "is incomplete: it does not end with mysqldump's '-- Dump completed' line"
        return None

    def counts(self) -> dict[str, int]:
        self._flush()
        return {_unquote(name, b"`"): count for name, count in self.rows.items()}


def _unquote(name: bytes, quote: bytes) -> str:
    if len(name) >= 2 and name[:1] == quote and name[-1:] == quote:
        name = name[1:-1].replace(quote + quote, quote)
    return name.decode("utf-8", "replace")


class _Need(Exception):
    """More bytes are needed before the structure can be read."""


@dataclass
class _Entry:
    dump_id: int
    desc: str
    name: str
    has_data: bool


@dataclass
class _Block:
    """The data block being read, and where in its chunks we are."""

    dump_id: int
    large_objects: bool
    scan: bool  # uncompressed COPY text: found by its terminator, not walked
    chunk_left: int = -1  # bytes of the current chunk still to pass; -1: a length is next
    expect_oid: bool = False
    zeros: int = 0  # zero bytes that ended the last feed (a terminator may span feeds)
    count_rows: bool = False
    rows: int = 0
    text_end: bytes = b""  # the last bytes of its COPY text
    inflate: Any = None  # a zlib decompressor when pg_dump compressed with gzip


_BLK_DATA = 1
_BLK_LARGE_OBJECTS = 3
_OFFSET_NOT_SET = 1  # K_OFFSET_POS_NOT_SET: the entry has data, written after the TOC
_OFFSET_SET = 2
# A block ends with a zero length: sign byte and four zero bytes. In an
# uncompressed COPY block nothing else holds five zero bytes in a row: COPY
# text has no NUL, and a chunk's length header (sign, 4 bytes) at most four,
# as only a zero length is all zeros. So such a block is found by a
# memchr-speed search instead of a walk over its chunks, one per row.
_TERMINATOR = b"\0" * 5
_COPY_END = b"\\.\n\n\n"


class PostgresArchive(StreamCheck):
    """pg_dump's custom format, read as pg_restore reads a pipe: header, TOC, data blocks.

    Written to a pipe, the archive is the header, the table of contents and
    then one block per entry with data: ``type, dump id, (length, bytes)*, 0``.
    Data bytes pass untouched: an uncompressed COPY block is searched for its
    terminator, other blocks are walked length by length. Row counts are not
    taken here (pg_dump writes one chunk per row: a walk would cost more than
    the 2% budget); the backup counts inside the dump's own snapshot instead.
    """

    vendor = "postgresql"

    def __init__(self, *, count_rows: bool = False) -> None:
        super().__init__()
        self._count_rows = count_rows
        self._rows: dict[str, int] = {}
        self._head = bytearray()
        self._entries: dict[int, _Entry] | None = None
        self._int_size = 4
        self._compression = "none"
        self._seen: set[int] = set()
        self._block: _Block | None = None
        self._buffer = b""  # a length or block header split across feeds
        self._last_end = -2
        self._broken: str | None = None

    def tables(self) -> set[str] | None:
        """``schema.table`` of every table whose data the archive holds (None: TOC not read)."""
        if self._entries is None:
            return None
        return {e.name for e in self._entries.values() if e.desc == "TABLE DATA"}

    # -- reading -----------------------------------------------------------
    def feed(self, data: memoryview | bytes) -> None:
        super().feed(data)
        if self._broken:
            return
        try:
            if self._entries is None:
                self._head += data
                if len(self._head) > 256 << 20:
                    raise ValueError("its table of contents is larger than 256 MiB")
                try:
                    end = self._read_head(bytes(self._head))
                except _Need:
                    return
                rest = bytes(self._head[end:])
                self._head = bytearray()
                self._blocks(rest)
            else:
                self._blocks(bytes(data))
        except ValueError as exc:
            self._broken = str(exc)

    def _read_head(self, buf: bytes) -> int:
        reader = _Reader(buf)
        if reader.take(5) != b"PGDMP":
            raise ValueError("it is not a pg_dump custom-format archive")
        major, minor = reader.byte(), reader.byte()
        revision = reader.byte() if (major, minor) > (1, 0) else 0
        version = (major, minor, revision)
        if version < (1, 12, 0):
            raise ValueError(f"its archive version {major}.{minor} is too old to check")
        reader.int_size = self._int_size = reader.byte()
        offset_size = reader.byte()
        if reader.byte() != 1:  # archCustom
            raise ValueError("it is not a custom-format archive")
        if version >= (1, 15, 0):
            algorithm = reader.byte()
            self._compression = {0: "none", 1: "gzip"}.get(algorithm, "other")
        else:
            level = reader.int()
            self._compression = "none" if level == 0 else "gzip"
        for _ in range(7):  # creation time
            reader.int()
        reader.str()  # database name
        reader.str()  # server version
        reader.str()  # pg_dump version
        entries = {}
        for _ in range(reader.int()):
            dump_id = reader.int()
            reader.int()  # had dumper
            reader.str()  # table oid
            reader.str()  # oid
            tag = reader.str() or ""
            desc = reader.str() or ""
            reader.int()  # section
            reader.str()  # definition
            reader.str()  # drop statement
            reader.str()  # copy statement
            namespace = reader.str() or ""
            reader.str()  # tablespace
            if version >= (1, 14, 0):
                reader.str()  # table access method
            if version >= (1, 16, 0):
                reader.int()  # relkind
            reader.str()  # owner
            reader.str()  # "false": with oids
            while reader.str() is not None:  # dependencies
                pass
            state = reader.byte()
            reader.take(offset_size)
            name = f"{namespace}.{tag}" if namespace else tag
            entries[dump_id] = _Entry(
                dump_id, desc, name, has_data=state in (_OFFSET_NOT_SET, _OFFSET_SET)
            )
        self._entries = entries
        return reader.pos

    def _blocks(self, buf: bytes) -> None:
        pos = 0
        size = len(buf)
        self._last_end = -2  # where this feed's last terminator is; -2: not searched yet
        while pos < size:
            block = self._block
            if block is not None and block.scan:
                pos = self._scan(block, buf, pos)
                continue
            if block is not None and block.chunk_left > 0:
                step = min(block.chunk_left, size - pos)
                if block.count_rows:
                    self._count(block, buf[pos : pos + step])
                block.chunk_left -= step
                pos += step
                if block.chunk_left == 0:
                    block.chunk_left = -1
                continue
            # A small structure is next: a block header or a length.
            need = 1 + 1 + self._int_size if block is None else 1 + self._int_size
            take = min(need - len(self._buffer), size - pos)
            self._buffer += buf[pos : pos + take]
            pos += take
            if len(self._buffer) < need:
                return
            raw, self._buffer = self._buffer, b""
            if block is None:
                self._start_block(raw)
            else:
                self._length(block, _int(raw, self._int_size))

    def _scan(self, block: _Block, buf: bytes, pos: int) -> int:
        """Pass COPY text up to the block's terminator; returns where reading goes on."""
        if block.zeros:
            need = 5 - block.zeros
            lead = buf[pos : pos + need]
            if lead.count(0) == len(lead):
                if len(lead) == need:
                    self._end_block(block)
                    return pos + need
                block.zeros += len(lead)  # the feed ended first
                return len(buf)
            block.zeros = 0
        # Most feeds hold no block end: one reverse search says so (rfind is
        # faster than find on this pattern), and only a feed with an end is
        # searched forward, up to its last end.
        if self._last_end == -2:
            self._last_end = buf.rfind(_TERMINATOR, pos)
        found = buf.find(_TERMINATOR, pos, self._last_end + 5) if self._last_end >= pos else -1
        if found >= 0:
            self._end_block(block)
            return found + 5
        tail = buf[max(pos, len(buf) - 4) :]
        block.zeros = len(tail) - len(tail.rstrip(b"\0"))
        return len(buf)

    def _start_block(self, raw: bytes) -> None:
        kind = raw[0]
        if kind not in (_BLK_DATA, _BLK_LARGE_OBJECTS):
            raise ValueError(f"it has an unknown data block type {kind}")
        dump_id = _int(raw[1:], self._int_size)
        assert self._entries is not None
        entry = self._entries.get(dump_id)
        if entry is None or not entry.has_data or dump_id in self._seen:
            raise ValueError(f"it has an unexpected data block for entry {dump_id}")
        large = kind == _BLK_LARGE_OBJECTS
        scan = kind == _BLK_DATA and self._compression == "none" and not self._count_rows
        block = _Block(dump_id, large, scan, expect_oid=large)
        block.count_rows = (
            self._count_rows and entry.desc == "TABLE DATA" and self._compression != "other"
        )
        self._block = block

    def _length(self, block: _Block, value: int) -> None:
        if block.expect_oid:  # large objects: an oid, then its chunks; oid 0 ends the block
            if value == 0:
                self._end_block(block)
            else:
                block.expect_oid = False
            return
        if value < 0:
            raise ValueError("it has a negative chunk length")
        if value == 0:  # the end of this data (or of this large object)
            if block.large_objects:
                block.expect_oid = True
            else:
                self._end_block(block)
            return
        block.chunk_left = value

    def _end_block(self, block: _Block) -> None:
        self._seen.add(block.dump_id)
        self._block = None
        if block.count_rows:
            assert self._entries is not None
            if block.inflate is not None:
                self._count_text(block, block.inflate.flush())
            # pg_dump ends a table's COPY text with the "\\." line and two blank lines.
            end = 3 if block.text_end.endswith(_COPY_END) else 0
            self._rows[self._entries[block.dump_id].name] = block.rows - end

    def _count(self, block: _Block, data: bytes) -> None:
        if self._compression == "gzip":
            if block.inflate is None:
                block.inflate = zlib.decompressobj()
            data = block.inflate.decompress(data)
        self._count_text(block, data)

    @staticmethod
    def _count_text(block: _Block, text: bytes) -> None:
        if text:
            block.rows += text.count(b"\n")
            block.text_end = (block.text_end + text[-len(_COPY_END) :])[-len(_COPY_END) :]

    def counts(self) -> dict[str, int] | None:
        """Rows per table when counting was asked for (verification), else None."""
        if not self._count_rows or self._compression == "other":
            return None
        return dict(self._rows)

    # -- verdict -------------------------------------------------------------
    def problem(self) -> str | None:
        if self._broken:
            return f"is not a readable archive: {self._broken}"
        if self._entries is None:
            return "is incomplete: it ends inside pg_dump's table of contents"
        if self._block is not None or self._buffer:
            return "is incomplete: it ends inside a data block (cut short)"
        missing = [e for e in self._entries.values() if e.has_data and e.dump_id not in self._seen]
        if missing:
            return (
                f"is incomplete: {len(missing)} of its table-of-contents entries have no data "
                f"block (the first: {missing[0].desc} {missing[0].name})"
            )
        return None


def _int(raw: bytes, size: int) -> int:
    value = int.from_bytes(raw[1 : 1 + size], "little")
    return -value if raw[0] else value


class _Reader:
    """Reads pg_dump's integers (sign byte + little-endian) and strings from a buffer."""

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0
        self.int_size = 4

    def take(self, size: int) -> bytes:
        end = self.pos + size
        if end > len(self.buf):
            raise _Need
        out = self.buf[self.pos : end]
        self.pos = end
        return out

    def byte(self) -> int:
        return self.take(1)[0]

    def int(self) -> int:
        return _int(self.take(1 + self.int_size), self.int_size)

    def str(self) -> str | None:
        size = self.int()
        if size < 0:
            return None
        return self.take(size).decode("utf-8", "replace")


def stream_check(
    vendor: str, *, lock_timeout: float | None = None, counting: bool = False
) -> StreamCheck | None:
    """The completeness check for ``vendor``'s native dumps; None where there is none.

    ``counting`` asks a PostgreSQL check to count rows too, walking every
    chunk (verification: time matters less there than on the backup path).
    """
    if vendor == "sqlite":
        return SqliteDump(lock_timeout)
    if vendor == "mysql":
        return MysqlDump()
    if vendor == "postgresql":
        return PostgresArchive(count_rows=counting)
    return None
