"""The classifiers say exactly which Python and Django versions the test runs cover."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import django

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "test-versions"


def _pairs(variable: str) -> list[tuple[str, str]]:
    m = re.search(rf'^{variable}="([^"]+)"', SCRIPT.read_text(), re.MULTILINE)
    assert m, f"scripts/test-versions sets no {variable}"
    return [tuple(pair.split(":")) for pair in m.group(1).split()]


def _classified(prefix: str) -> set[str]:
    classifiers = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["classifiers"]
    return {c.removeprefix(prefix) for c in classifiers if re.fullmatch(rf"{prefix}\d+\.\d+", c)}


def _tested() -> list[tuple[str, str]]:
    return [*_pairs("PAIRS"), *_pairs("MAIN_PAIR")]


def test_python_classifiers_are_the_tested_pythons() -> None:
    assert _classified("Programming Language :: Python :: ") == {py for py, _ in _tested()}


def test_django_classifiers_are_the_tested_djangos() -> None:
    assert _classified("Framework :: Django :: ") == {dj for _, dj in _tested()}


def test_requires_python_is_the_oldest_tested_python() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    oldest = min((tuple(map(int, py.split("."))) for py, _ in _tested()))
    assert project["requires-python"] == ">=" + ".".join(map(str, oldest))
    oldest_django = min(tuple(map(int, dj.split("."))) for _, dj in _tested())
    assert f"Django>={'.'.join(map(str, oldest_django))}" in project["dependencies"]


def test_this_run_is_one_of_the_declared_pairs() -> None:
    """scripts/test's own venv runs MAIN_PAIR; each .venv-pyXYZ-djAB runs its pair."""
    running = (
        f"{sys.version_info[0]}.{sys.version_info[1]}",
        f"{django.VERSION[0]}.{django.VERSION[1]}",
    )
    venv = re.fullmatch(r"\.venv-py(\d)(\d+)-dj(\d)(\d)", Path(sys.prefix).name)
    if venv:
        major, minor, dj_major, dj_minor = venv.groups()
        assert running == (f"{major}.{minor}", f"{dj_major}.{dj_minor}")
        assert running in _pairs("PAIRS")
    else:
        assert running in _pairs("MAIN_PAIR"), (
            f"this run is Python {running[0]} + Django {running[1]}: update MAIN_PAIR in "
            "scripts/test-versions and the classifiers"
        )
