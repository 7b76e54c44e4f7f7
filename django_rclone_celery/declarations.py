"""Settings declared once.

A settings class is a frozen dataclass whose fields are made by
:func:`setting`: the default (as written in ``settings.py``), the accepted
types, the rules (each with its check id) and the conversion into the
attribute's value. A :class:`Family` reads those fields and derives the rest:
the table of defaults, the type checks, validation and building the object.
A field's name is its key, lower-cased and without the family's prefix.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Generic, TypeVar

from .problems import Problem, problem

T = TypeVar("T")
Found = str | Problem  # a message (given the rule's id) or a whole problem

_KINDS: dict[tuple[type, ...], str] = {
    (str,): "a string",
    (int,): "an integer",
    (bool,): "a boolean",
    (str, type(None)): "a string or None",
    (int, type(None)): "an integer or None",
}


@dataclass(frozen=True)
class Rule:
    """One check of a value: ``test`` says what is wrong, nothing when it is right."""

    id: str  # the short check id, "E006"
    test: Callable[[Any], Iterable[Found]]
    hint: str = ""
    warning: bool = False

    def problems(self, value: Any) -> list[Problem]:
        return [
            found
            if isinstance(found, Problem)
            else problem(self.id, found, self.hint, warning=self.warning)
            for found in self.test(value)
        ]


def rule(number: str, bad: Callable[[Any], bool], msg: str, hint: str = "") -> Rule:
    """A rule with one fixed message, given when ``bad(value)`` is true."""
    return Rule(number, lambda value: [msg] if bad(value) else [], hint)


@dataclass(frozen=True)
class Joint:
    """A rule on several keys, checked when all are given and of the right type."""

    keys: tuple[str, ...]
    rule: Rule


@dataclass(frozen=True)
class Setting:
    """One key's declaration (see :func:`setting`)."""

    default: Any
    accepts: Callable[[Any], bool]
    kind: str  # what ``accepts`` wants, for the message: "an integer"
    rules: tuple[Rule, ...]
    convert: Callable[[Any], Any]
    type_id: str  # "" for the family's


def _same(value: Any) -> Any:
    return value


def of_type(*types: type) -> Callable[[Any], bool]:
    """Accepts instances of ``types``; a bool only where bool is named (it is an int too)."""

    def accepts(value: Any) -> bool:
        return isinstance(value, types) and (bool in types or not isinstance(value, bool))

    return accepts


def setting(
    default: Any,
    accepts: type | tuple[type | None, ...] | Callable[[Any], bool],
    kind: str = "",
    *,
    rules: Iterable[Rule] = (),
    convert: Callable[[Any], Any] = _same,
    required: bool = False,
    type_id: str = "",
) -> Any:
    """A settings field: ``default`` as written in settings, ``accepts`` types or a test.

    ``required``: the dataclass has no default (its value is computed, or must
    be given). ``kind`` defaults to a description of simple types.
    """
    if isinstance(accepts, type):
        accepts = (accepts,)
    if isinstance(accepts, tuple):
        types = tuple(type(None) if t is None else t for t in accepts)
        test = of_type(*types)
        kind = kind or _KINDS[types]
    else:
        test = accepts
    declared = Setting(default, test, kind, tuple(rules), convert, type_id)
    metadata = {"setting": declared}
    if required:
        return dataclasses.field(metadata=metadata)
    return dataclasses.field(default_factory=lambda: convert(default), metadata=metadata)


@dataclass(frozen=True)
class Family(Generic[T]):
    """The settings of one dataclass: ``DJANGO_RCLONE`` keys, or ``PGCLONE_*`` names."""

    cls: type[T]
    prefix: str  # the key of field ``lock_ttl`` is prefix + "LOCK_TTL"
    type_id: str  # the check id of a value of the wrong type
    wrong_type: Callable[[str, str], str]  # (key, kind) -> message
    joint: tuple[Joint, ...] = ()

    @cached_property
    def declared(self) -> dict[str, tuple[str, Setting]]:
        """Key -> (attribute, declaration), in declaration order."""
        return {
            self.prefix + f.name.upper(): (f.name, f.metadata["setting"])
            for f in dataclasses.fields(self.cls)  # type: ignore[arg-type]
            if "setting" in f.metadata
        }

    @cached_property
    def defaults(self) -> dict[str, Any]:
        return {key: declared.default for key, (_, declared) in self.declared.items()}

    def problems(self, values: Mapping[str, Any]) -> list[Problem]:
        """Type problems first (a value of the wrong type gets no other check), then
        each key's rules (a key not given is checked at its default: so REMOTE is
        required by a rule), then joint rules."""
        wrong = [
            key
            for key, (_, declared) in self.declared.items()
            if key in values and not declared.accepts(values[key])
        ]
        found = [
            problem(declared.type_id or self.type_id, self.wrong_type(key, declared.kind))
            for key in wrong
            for declared in [self.declared[key][1]]
        ]
        for key, (_, declared) in self.declared.items():
            if key not in wrong:
                for each in declared.rules:
                    found.extend(each.problems(values.get(key, declared.default)))
        for joint in self.joint:
            if all(key in values and key not in wrong for key in joint.keys):
                found.extend(joint.rule.problems(tuple(values[key] for key in joint.keys)))
        return found

    def build(self, values: Mapping[str, Any]) -> T:
        """The settings object from valid ``values``; absent keys take their default."""
        return self.cls(
            **{
                attr: declared.convert(values.get(key, declared.default))
                for key, (attr, declared) in self.declared.items()
            }
        )
