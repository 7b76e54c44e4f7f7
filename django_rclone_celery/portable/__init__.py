"""Portable dump and load: table by table through the models, as JSON lines.

Data survives model changes (added, removed and renamed fields) and moves
between engines. See ``docs/portable.md``.
"""

from __future__ import annotations

from .dump import DumpResult, TableDump, dump_portable, iter_dump
from .errors import PortableFormatError, PortableLoadError, RowError
from .load import LoadResult, TableLoad, load_portable, load_portable_stream
from .selection import UnknownApp

__all__ = [
    "DumpResult",
    "LoadResult",
    "PortableFormatError",
    "PortableLoadError",
    "RowError",
    "TableDump",
    "TableLoad",
    "UnknownApp",
    "dump_portable",
    "iter_dump",
    "load_portable",
    "load_portable_stream",
]
