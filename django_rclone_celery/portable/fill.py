"""Match a file's columns to today's model: where each column's value comes from.

For every stored field of the model, in this order:

1. the file has the column: its value;
2. the header's ``default`` names the field: that override (``["value", x]``,
   ``["reference", "old_column"]``, ``["date" | "datetime" | "time", "now" | text]``);
3. the field has a model default: it (a callable is called for every row);
4. the field has a database default (``db_default``): the database fills it;
5. ``auto_now`` / ``auto_now_add``: the time the load started;
6. the field is nullable: NULL;
7. the field is an auto-incremented key: the database numbers the row.

Anything else is a required field with no source: an error naming table and field.
Columns of the file that the model no longer has are ignored and listed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from . import format as fmt
from .dump import dump_fields
from .format import Header
from .selection import ModelType

Getter = Callable[[list[Any]], Any]


@dataclass
class TablePlan:
    """How to turn a file record into the parameters of one INSERT."""

    table: str
    columns: list[str] = field(default_factory=list)
    getters: list[Getter] = field(default_factory=list)
    preps: list[Callable[[Any], Any]] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)  # filled columns -> where from
    ignored: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    width: int = 0


def _message(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(str(m) for m in exc.messages)
    return str(exc)


def _from_column(index: int, file_code: str, target: models.Field[Any, Any]) -> Getter:
    decode = fmt.decoder(file_code)
    # A changed field type (or an unknown one) goes through the field's own parser.
    changed = file_code == "text" or file_code != fmt.type_code(target)
    convert = target.to_python if changed else None
    if decode is None and convert is None:
        return lambda row: row[index]

    def get(row: list[Any]) -> Any:
        value = row[index]
        if value is None:
            return None
        if decode is not None:
            value = decode(value)
        if convert is not None:
            value = convert(value)
        return value

    return get


def _called(target: models.Field[Any, Any]) -> Getter:
    return lambda row: target.get_default()


# Exact field classes whose get_db_prep_save returns a value of this Python type
# unchanged. Subclasses are left out: they may encrypt, normalise or validate.
_IDENTITY: dict[type[Any], type[Any]] = {
    **dict.fromkeys(
        (models.CharField, models.TextField, models.SlugField, models.EmailField, models.URLField),
        str,
    ),
    **dict.fromkeys(
        (
            models.IntegerField,
            models.BigIntegerField,
            models.SmallIntegerField,
            models.PositiveIntegerField,
            models.PositiveBigIntegerField,
            models.PositiveSmallIntegerField,
        ),
        int,
    ),
    models.BooleanField: bool,
}


def _prep(target: models.Field[Any, Any], connection: BaseDatabaseWrapper) -> Callable[[Any], Any]:
    """The field's database form of a value; skips the call where it changes nothing."""
    full = target.get_db_prep_save
    same = _IDENTITY.get(type(target))

    def prep(value: Any) -> Any:
        if value is None or type(value) is same:
            return value
        return full(value, connection)

    return prep


def _constant(value: Any) -> Getter:
    return lambda row: value


def _moment(kind: str, text: Any, now: dt.datetime) -> Any:
    """The value of a ``date`` / ``datetime`` / ``time`` override."""
    local = timezone.localtime(now) if timezone.is_aware(now) else now
    if not isinstance(text, str):
        raise ValueError(f'expected "now" or a {kind} string, got {text!r}')
    if kind == "datetime":
        if text == "now":
            return now
        value = dt.datetime.fromisoformat(text)
        if timezone.is_naive(value) and timezone.is_aware(now):
            value = timezone.make_aware(value)
        return value
    if kind == "date":
        return local.date() if text == "now" else dt.date.fromisoformat(text)
    return local.time().replace(tzinfo=None) if text == "now" else dt.time.fromisoformat(text)


def _now_for(target: models.Field[Any, Any], now: dt.datetime) -> Any:
    local = timezone.localtime(now) if timezone.is_aware(now) else now
    if isinstance(target, models.DateTimeField):
        return now
    if isinstance(target, models.DateField):
        return local.date()
    return local.time().replace(tzinfo=None)


def _is_auto_now(target: models.Field[Any, Any]) -> bool:
    return bool(getattr(target, "auto_now", False) or getattr(target, "auto_now_add", False))


def plan_table(
    model: ModelType, header: Header, connection: BaseDatabaseWrapper, now: dt.datetime
) -> TablePlan:
    table = model._meta.db_table
    plan = TablePlan(table=table, width=len(header.fields))
    position = {name: i for i, name in enumerate(header.fields)}
    targets = dump_fields(model)
    known = {str(f.column) for f in targets}
    plan.ignored = [name for name in header.fields if name not in known]

    for target in targets:
        column = str(target.column)
        getter: Getter | None = None
        if column in position:
            getter = _from_column(position[column], header.types.get(column, ""), target)
        elif column in header.default or target.name in header.default:
            override = header.default.get(column) or header.default[target.name]
            try:
                getter, source = _override(override, target, header, position, now)
            except (ValueError, ValidationError) as exc:
                plan.problems.append(f"field {column!r}: bad default {override!r}: {_message(exc)}")
                continue
            plan.sources[column] = source
        elif target.has_default():
            if callable(target.default):
                getter, source = _called(target), "model default (callable)"
            else:
                getter, source = _constant(target.get_default()), "model default"
            plan.sources[column] = source
        elif getattr(target, "has_db_default", lambda: False)():
            plan.sources[column] = "database default"
            continue
        elif _is_auto_now(target):
            getter = _constant(_now_for(target, now))
            which = "auto_now" if getattr(target, "auto_now", False) else "auto_now_add"
            plan.sources[column] = f"now ({which})"
        elif target.null:
            getter = _constant(None)
            plan.sources[column] = "NULL"
        elif getattr(target, "db_returning", False):  # AutoField and its kin
            plan.sources[column] = "numbered by the database"
            continue
        else:
            plan.problems.append(
                f"field {column!r} is required, but the file has no such column and "
                'neither its "default" nor the model gives it a value '
                f'(add e.g. "default": {{"{column}": ["value", ...]}} to the header)'
            )
            continue
        plan.columns.append(column)
        plan.getters.append(getter)
        plan.preps.append(_prep(target, connection))
    return plan


def _override(
    override: list[Any],
    target: models.Field[Any, Any],
    header: Header,
    position: dict[str, int],
    now: dt.datetime,
) -> tuple[Getter, str]:
    kind, value = override
    if kind == "reference":
        if value not in position:
            raise ValueError(f"the file has no column {value!r} to take the value from")
        code = header.types.get(value, "")
        return _from_column(position[value], code, target), f"reference to {value!r}"
    if kind == "value":
        converted = None if value is None else target.to_python(value)
        return _constant(converted), "default value from the file"
    moment = _moment(kind, value, now)
    converted = target.to_python(moment)
    return _constant(converted), f"{kind} {value!r} from the file"
