"""The portable format and the foreign-key order, without a database."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest
from django.db import models

from django_rclone_celery.portable import PortableFormatError
from django_rclone_celery.portable import format as fmt
from django_rclone_celery.portable.order import order_models
from django_rclone_celery.portable.selection import select_models
from tests.portable_app.models import Every, Item, Person, Stamped, Tag, Team

PLUS_TWO = dt.timezone(dt.timedelta(hours=2))


@pytest.mark.parametrize(
    ("code", "value", "stored"),
    [
        ("decimal", Decimal("12345678901234567890.0123456789"), "12345678901234567890.0123456789"),
        ("decimal", Decimal("0.1"), "0.1"),
        (
            "datetime",
            dt.datetime(2024, 2, 29, 23, 59, 59, 1, tzinfo=PLUS_TWO),
            "2024-02-29T23:59:59.000001+02:00",
        ),
        ("datetime", dt.datetime(2024, 1, 1, 12), "2024-01-01T12:00:00"),
        ("date", dt.date(1, 1, 1), "0001-01-01"),
        ("time", dt.time(23, 59, 59, 123456), "23:59:59.123456"),
        ("duration", dt.timedelta(days=-3, seconds=5, microseconds=7), -259194999993),
        ("uuid", uuid.UUID(int=7), "00000000-0000-0000-0000-000000000007"),
        ("bytes", b"\x00\xff", "AP8="),
    ],
)
def test_typed_values_round_trip_exactly(code: str, value: Any, stored: Any) -> None:
    encode, decode = fmt.encoder(code), fmt.decoder(code)
    assert encode is not None
    assert decode is not None
    assert encode(value) == stored
    back = decode(fmt.parse_line(fmt.dumps(stored).encode(), "test"))
    assert back == value
    assert type(back) is type(value)
    if isinstance(value, dt.datetime):
        assert back.utcoffset() == value.utcoffset()  # the zone is kept, not just the instant


def test_a_decimal_written_as_a_float_is_refused() -> None:
    decode = fmt.decoder("decimal")
    assert decode is not None
    with pytest.raises(ValueError, match="must be written as a string"):
        decode(0.1)


def test_type_codes_follow_the_fields() -> None:
    codes = {f.column: fmt.type_code(f) for f in Every._meta.concrete_fields}
    assert codes["price"] == "decimal"
    assert codes["moment"] == "datetime"
    assert codes["blob"] == "bytes"
    assert codes["data"] == "json"
    assert codes["char"] == codes["integer"] == ""
    # A foreign key is stored like the key it points at.
    tag_id = Person.tags.through._meta.get_field("tag")
    assert fmt.type_code(tag_id) == "uuid"


def _header(**changes: Any) -> dict[str, Any]:
    header = {"portable": 1, "table": "t", "fields": ["a"], "types": {}, "default": {}}
    header.update(changes)
    return header


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"portable": 2}, "newer than this release"),
        ({"fields": ["a", "a"]}, "names a column twice"),
        ({"types": {"a": "pickle"}}, '"types" must map'),
        ({"default": {"b": ["eval", "1+1"]}}, "kind one of value, reference, date"),
        ({"default": {"b": "value"}}, "must be \\[kind, value\\]"),
    ],
)
def test_bad_headers_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(PortableFormatError, match=message):
        fmt.Header(_header(**changes), "f.jsonl, line 1")


def _lines(*items: Any) -> list[bytes]:
    return [fmt.dumps(item).encode() + b"\n" for item in items]


def _read_all(lines: list[bytes]) -> None:
    for _, records in fmt.sections(lines, "s"):
        list(records)


def test_sections_split_a_stream() -> None:
    lines = _lines(_header(), [1], [2], {"end": "t"}, _header(table="u"), {"end": "u"})
    found = [(h.table, list(records)) for h, records in fmt.sections(lines, "s")]
    assert found == [("t", [(2, [1]), (3, [2])]), ("u", [])]


def test_a_section_without_its_end_line_is_cut_short() -> None:
    lines = _lines(_header(), [1])
    with pytest.raises(PortableFormatError, match="no end line; the data was cut short"):
        _read_all(lines)


def test_a_python_line_is_not_json() -> None:
    lines = [*_lines(_header()), b"__import__('os').system('true')\n"]
    with pytest.raises(PortableFormatError, match="s, line 2: not a JSON line"):
        _read_all(lines)


class _A(models.Model):  # noqa: DJ008
    b = models.ForeignKey("_B", null=True, on_delete=models.SET_NULL)

    class Meta:
        app_label = "portable_order"


class _B(models.Model):  # noqa: DJ008
    a = models.ForeignKey(_A, null=True, on_delete=models.SET_NULL)

    class Meta:
        app_label = "portable_order"


class _C(models.Model):  # noqa: DJ008
    b = models.ForeignKey(_B, on_delete=models.CASCADE)
    parent = models.ForeignKey("self", null=True, on_delete=models.CASCADE)

    class Meta:
        app_label = "portable_order"


def test_a_cycle_is_broken_and_the_rest_stays_in_order() -> None:
    for attempt in ([_C, _B, _A], [_A, _C, _B], [_B, _A, _C]):
        assert order_models(attempt) == [_A, _B, _C]


def test_models_come_after_what_they_point_at_and_m2m_tables_last() -> None:
    ordered = select_models(["portable_app"])
    through = Person.tags.through
    assert set(ordered) == {Every, Item, Stamped, Tag, Team, Person, through}
    position = {m: i for i, m in enumerate(ordered)}
    assert position[through] > position[Person] > position[Tag]
    # Team <-> Person is a cycle; it is broken at Team's nullable captain.
    assert position[Person] > position[Team]
    assert position[through] == len(ordered) - 1


class _D(models.Model):  # noqa: DJ008
    e = models.ForeignKey("_E", on_delete=models.CASCADE)

    class Meta:
        app_label = "portable_order"


class _E(models.Model):  # noqa: DJ008
    d = models.ForeignKey(_D, null=True, on_delete=models.SET_NULL)

    class Meta:
        app_label = "portable_order"


def test_a_cycle_breaks_at_the_nullable_key() -> None:
    assert order_models([_D, _E]) == [_E, _D]
