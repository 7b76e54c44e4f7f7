"""The portable file format: JSON lines, one table per section, never executed.

A section is three kinds of line::

    {"portable": 1, "table": "shop_book", "model": "shop.Book",
     "fields": ["id", "title", "price"], "types": {"price": "decimal"}, "default": {}}
    [1, "Dune", "12.50"]
    {"end": "shop_book"}

The header names the table, its columns in record order, the type of every
column that JSON cannot carry by itself, and ``default``: per-column overrides
a person may add by hand before a load. Each record is a JSON array. A file
holds one section; a stream (``--stdout``, portable backups) is sections one
after another. The end line is how a cut-short file is told from a short one.

Values that JSON cannot hold exactly are strings or numbers with a type code:
``decimal`` (the exact digits), ``datetime`` / ``date`` / ``time`` (ISO 8601,
datetimes with their UTC offset), ``duration`` (microseconds), ``uuid``,
``bytes`` (base64) and ``json`` (the value itself, nested). ``text`` marks a
field type this module does not know: its value goes through the field's
``to_python`` on load.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import models

from .errors import PortableFormatError

VERSION = 1
SUFFIX = ".jsonl"
OVERRIDE_KINDS = ("value", "reference", "date", "datetime", "time")

# Field internal types whose values JSON carries as they are (str, int, bool).
_NATIVE = frozenset(
    {
        "AutoField",
        "BigAutoField",
        "SmallAutoField",
        "IntegerField",
        "BigIntegerField",
        "SmallIntegerField",
        "PositiveIntegerField",
        "PositiveBigIntegerField",
        "PositiveSmallIntegerField",
        "BooleanField",
        "NullBooleanField",
        "CharField",
        "TextField",
        "SlugField",
        "EmailField",
        "URLField",
        "FileField",
        "ImageField",
        "FilePathField",
        "GenericIPAddressField",
        "IPAddressField",
    }
)
_CODED = {
    "DecimalField": "decimal",
    "DateTimeField": "datetime",
    "DateField": "date",
    "TimeField": "time",
    "DurationField": "duration",
    "UUIDField": "uuid",
    "BinaryField": "bytes",
    "JSONField": "json",
    "FloatField": "float",
}
TYPE_CODES = frozenset({"", "text", *_CODED.values()})

Encoder = Callable[[Any], Any]
Decoder = Callable[[Any], Any]


def type_code(field: models.Field[Any, Any]) -> str:
    """The code stored for ``field``'s values ("" when JSON holds them natively)."""
    target = getattr(field, "target_field", None) if field.is_relation else None
    while target is not None:
        field = target  # a foreign key is stored like the key it points at
        target = getattr(field, "target_field", None) if field.is_relation else None
    internal = field.get_internal_type()
    if internal in _NATIVE:
        return ""
    return _CODED.get(internal, "text")


def _duration_out(value: dt.timedelta) -> int:
    return (value.days * 86400 + value.seconds) * 1_000_000 + value.microseconds


def _text_out(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool, list, dict)):
        return value
    return str(value)


_ENCODERS: dict[str, Encoder | None] = {
    "": None,
    "float": None,
    "json": None,
    "decimal": str,
    "datetime": dt.datetime.isoformat,
    "date": dt.date.isoformat,
    "time": dt.time.isoformat,
    "duration": _duration_out,
    "uuid": str,
    "bytes": lambda value: base64.b64encode(bytes(value)).decode("ascii"),
    "text": _text_out,
}


def _decimal_in(value: Any) -> Decimal:
    # A float in the file would already have lost digits: only strings and ints.
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"a decimal must be written as a string, not {value!r}")
    try:
        return Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a decimal number") from None


def _string(parse: Callable[[str], Any]) -> Decoder:
    def decode(value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {value!r}")
        return parse(value)

    return decode


def _duration_in(value: Any) -> dt.timedelta:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"a duration must be an integer of microseconds, not {value!r}")
    return dt.timedelta(microseconds=value)


def _bytes_in(value: str) -> bytes:
    return base64.b64decode(value.encode("ascii"), validate=True)


_DECODERS: dict[str, Decoder | None] = {
    "": None,
    "float": None,
    "json": None,
    "text": None,
    "decimal": _decimal_in,
    "datetime": _string(dt.datetime.fromisoformat),
    "date": _string(dt.date.fromisoformat),
    "time": _string(dt.time.fromisoformat),
    "duration": _duration_in,
    "uuid": _string(uuid.UUID),
    "bytes": _string(_bytes_in),
}


def encoder(code: str) -> Encoder | None:
    return _ENCODERS[code]


def decoder(code: str) -> Decoder | None:
    return _DECODERS[code]


# JSON text ------------------------------------------------------------------
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=True).encode


def dumps(value: Any) -> str:
    return _dumps(value)


def header_line(*, table: str, model: str, fields: list[str], types: dict[str, str]) -> str:
    header = {
        "portable": VERSION,
        "table": table,
        "model": model,
        "fields": fields,
        "types": types,
        "default": {},
    }
    return _dumps(header) + "\n"


def footer_line(table: str) -> str:
    return _dumps({"end": table}) + "\n"


class Header:
    """A checked section header."""

    def __init__(self, raw: dict[str, Any], where: str) -> None:
        def bad(message: str) -> PortableFormatError:
            return PortableFormatError(f"{where}: {message}")

        version = raw.get("portable")
        if not isinstance(version, int) or isinstance(version, bool):
            raise bad('the header has no "portable" version')
        if version > VERSION:
            raise bad(f"format version {version} is newer than this release understands")
        table, fields = raw.get("table"), raw.get("fields")
        if not isinstance(table, str) or not table:
            raise bad('the header has no "table"')
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            raise bad(f'table {table}: "fields" must be a list of names')
        if len(set(fields)) != len(fields):
            raise bad(f'table {table}: "fields" names a column twice')
        types = raw.get("types") or {}
        if not isinstance(types, dict) or not all(
            isinstance(v, str) and v in TYPE_CODES for v in types.values()
        ):
            raise bad(f'table {table}: "types" must map fields to one of {sorted(TYPE_CODES)}')
        default = raw.get("default") or {}
        if not isinstance(default, dict):
            raise bad(f'table {table}: "default" must be an object')
        for name, override in default.items():
            if (
                not isinstance(override, list)
                or len(override) != 2
                or override[0] not in OVERRIDE_KINDS
            ):
                raise bad(
                    f"table {table}: default for {name!r} must be [kind, value] with kind one of "
                    f"{', '.join(OVERRIDE_KINDS)}; got {override!r}"
                )
        self.table: str = table
        self.model: str = str(raw.get("model") or "")
        self.fields: list[str] = fields
        self.types: dict[str, str] = types
        self.default: dict[str, list[Any]] = default


def parse_line(line: bytes, where: str) -> Any:
    try:
        return json.loads(line)
    except ValueError as exc:
        raise PortableFormatError(f"{where}: not a JSON line ({exc})") from None


Section = tuple[Header, Iterator[tuple[int, list[Any]]]]


def sections(lines: Iterable[bytes], name: str) -> Iterator[Section]:
    """Split a stream of lines into (header, records) pairs.

    Records are ``(line number, values)``. Each section's records must be read
    before the next section is asked for; the end line must be present.
    """
    numbered = enumerate(lines, start=1)
    for number, line in numbered:
        if not line.strip():
            continue
        raw = parse_line(line, f"{name}, line {number}")
        if not isinstance(raw, dict) or "table" not in raw:
            raise PortableFormatError(f"{name}, line {number}: expected a table header")
        header = Header(raw, f"{name}, line {number}")
        state = {"ended": False}
        records = _records(numbered, header, name, state)
        yield header, records
        for _ in records:  # the consumer may stop early (a table skipped)
            pass
        if not state["ended"]:
            raise PortableFormatError(
                f"{name}: table {header.table} has no end line; the data was cut short"
            )


def _records(
    numbered: Iterator[tuple[int, bytes]], header: Header, name: str, state: dict[str, bool]
) -> Iterator[tuple[int, list[Any]]]:
    for number, line in numbered:
        if not line.strip():
            continue
        value = parse_line(line, f"{name}, line {number}")
        if isinstance(value, list):
            yield number, value
        elif isinstance(value, dict) and value.get("end") == header.table:
            state["ended"] = True
            return
        else:
            raise PortableFormatError(
                f"{name}, line {number}: expected a record or the end of table {header.table}"
            )
