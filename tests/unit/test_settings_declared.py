"""Each setting is declared once: defaults, type checks, rules and the object follow (#17)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.core import checks

from django_rclone_celery import conf
from django_rclone_celery.declarations import Family, Joint, Rule, rule, setting
from django_rclone_celery.pgclone import conf as pgconf
from django_rclone_celery.problems import Problem, problem
from tests.helpers.docs import table_rows

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_MD = (ROOT / "docs" / "settings.md").read_text()


def _ids(cell: str) -> set[str]:
    """The short ids of a docs "Checks" cell, with ranges (an en dash) expanded."""
    found = set(re.findall(r"[EW]\d{3}", cell))
    for kind, first, last in re.findall(r"([EW])(\d{3})`?\s*[\u2013-]\s*`?[EW](\d{3})", cell):
        found |= {f"{kind}{n:03d}" for n in range(int(first), int(last) + 1)}
    return found


@pytest.mark.parametrize(
    ("family", "heading"),
    [(conf.SETTINGS, "## `DJANGO_RCLONE` keys"), (pgconf.SETTINGS, "## `PGCLONE_*` settings")],
    ids=["DJANGO_RCLONE", "PGCLONE"],
)
def test_each_declared_rule_is_in_its_keys_docs_row(family: Family[object], heading: str) -> None:
    rows = table_rows(SETTINGS_MD, heading)
    assert set(rows) == set(family.declared)
    for key, (_, declared) in family.declared.items():
        documented = _ids(rows[key][3])
        for each in declared.rules:
            assert each.id in documented, f"{key}: {each.id} is not in its Checks cell"
    for joint in family.joint:
        for key in joint.keys:
            assert joint.rule.id in _ids(rows[key][3]), f"{key}: {joint.rule.id} is not documented"


def test_every_short_check_id_in_the_code_is_documented() -> None:
    code = "\n".join(p.read_text() for p in (ROOT / "django_rclone_celery").rglob("*.py"))
    docs = "\n".join(p.read_text() for p in (ROOT / "docs").rglob("*.md"))
    used = set(re.findall(r"\b(?:problem|rule|Rule)\(\s*\"([EW]\d{3})\"", code))
    used |= set(re.findall(r"type_id=\"([EW]\d{3})\"", code))
    assert {"E002", "E006", "E070", "W030", "E101", "E103"} <= used  # the search finds them
    missing = {i for i in used if f"`{i}`" not in docs and f"django_rclone_celery.{i}" not in docs}
    assert not missing, f"check ids not in the docs: {sorted(missing)}"


def test_the_dataclass_defaults_are_the_declared_defaults_built() -> None:
    # Settings(remote=...) (used by tests and callers) equals the settings of a
    # DJANGO_RCLONE that gives only REMOTE.
    assert conf.Settings(remote="r:") == conf._build({"REMOTE": "r:"})
    assert conf.DEFAULTS["RCLONE_FLAGS"] == []  # as written in settings.py
    assert conf.Settings(remote="r:").rclone_flags == ()  # as the code reads it


def test_pgclone_names_are_django_pgclones() -> None:
    assert pgconf.NAMES[0] == "PGCLONE_ALLOW_DUMP"
    assert "PGCLONE_VALIDATE_DUMP_KEYS" in pgconf.NAMES
    assert pgconf.DEFAULTS["PGCLONE_PRE_SWAP_HOOKS"] == ["migrate"]


# --- what one declaration gives -------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Toy:
    size: int = setting(
        3, int, rules=[rule("E900", lambda v: v < 1, "SIZE must be at least 1.", "Try 3.")]
    )
    names: tuple[str, ...] = setting([], (list, tuple), "a list of names", convert=tuple)
    low: int = setting(1, int)
    high: int = setting(2, int)


TOY = Family(
    Toy,
    prefix="TOY_",
    type_id="E901",
    wrong_type=lambda key, kind: f"{key} must be {kind}.",
    joint=(Joint(("TOY_LOW", "TOY_HIGH"), rule("E902", lambda v: v[0] >= v[1], "low >= high")),),
)


def test_one_declaration_gives_default_type_check_rule_and_attribute() -> None:
    assert TOY.defaults == {"TOY_SIZE": 3, "TOY_NAMES": [], "TOY_LOW": 1, "TOY_HIGH": 2}
    assert TOY.problems({}) == []
    assert TOY.problems({"TOY_SIZE": 0}) == [
        Problem("django_rclone_celery.E900", "SIZE must be at least 1.", "Try 3.")
    ]
    # A value of the wrong type is reported once, by the family's id, and gets no rule.
    assert [(p.id, p.msg) for p in TOY.problems({"TOY_SIZE": "big"})] == [
        ("django_rclone_celery.E901", "TOY_SIZE must be an integer.")
    ]
    assert [p.msg for p in TOY.problems({"TOY_SIZE": True})] == ["TOY_SIZE must be an integer."]
    assert TOY.build({"TOY_NAMES": ["a"]}) == Toy(size=3, names=("a",), low=1, high=2)


def test_a_joint_rule_runs_only_when_all_its_keys_are_given_and_typed() -> None:
    assert TOY.problems({"TOY_LOW": 5}) == []
    assert [p.id for p in TOY.problems({"TOY_LOW": 5, "TOY_HIGH": 2})] == [
        "django_rclone_celery.E902"
    ]
    assert [p.id for p in TOY.problems({"TOY_LOW": 5, "TOY_HIGH": "2"})] == [
        "django_rclone_celery.E901"
    ]


def test_a_rule_may_give_whole_problems_and_several_messages() -> None:
    each = Rule("E903", lambda v: [f"bad {x}" for x in v] + [problem("W904", "odd", warning=True)])
    found = each.problems(["a", "b"])
    assert [(p.id, p.msg, p.warning) for p in found] == [
        ("django_rclone_celery.E903", "bad a", False),
        ("django_rclone_celery.E903", "bad b", False),
        ("django_rclone_celery.W904", "odd", True),
    ]


def test_problems_become_check_messages_one_way() -> None:
    error = problem("E006", "DB_CLEANUP_KEEP must be at least 1.", "Keep one.")
    message = error.message()
    assert (type(message), message.id, message.hint) == (
        checks.Error,
        "django_rclone_celery.E006",
        "Keep one.",
    )
    downgraded = error.message(as_warning=True, extra_hint="No backups here.")
    assert (type(downgraded), downgraded.hint) == (checks.Warning, "Keep one. No backups here.")
    assert problem("W001", "unknown", warning=True).message().level == checks.WARNING
    assert problem("E001", "x").message().hint is None
