"""The public API: ``__all__``, ``__version__``, the drawn error tree and the reference agree."""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import pkgutil
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import django_rclone_celery
from django_rclone_celery import exceptions

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "reference.md"
PACKAGE = "django_rclone_celery"
TREE_LINE = re.compile(
    r"^(?P<lead>(?:│   |    )*)(?P<branch>[├└]── )?(?P<name>\w+)(?:\s+\[(?P<home>[\w.]+)\])?"
)


def _modules() -> list[ModuleType]:
    names = [
        info.name
        for info in pkgutil.walk_packages(django_rclone_celery.__path__, f"{PACKAGE}.")
        if ".migrations" not in info.name
    ]
    return [django_rclone_celery, *(importlib.import_module(name) for name in names)]


def _exception_classes() -> set[tuple[str, str]]:
    """(module relative to the package, class name) of every exception class defined in it."""
    found = set()
    for module in _modules():
        for value in vars(module).values():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == module.__name__
            ):
                found.add((module.__name__.removeprefix(f"{PACKAGE}."), value.__name__))
    return found


def _drawing(text: str, first: str) -> list[str]:
    """The lines of the block of ``text`` starting at the line ``first``, dedented."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == first)
    indent = len(lines[start]) - len(lines[start].lstrip())
    block = []
    for line in lines[start:]:
        if not line.strip() or line.startswith("```"):
            break
        block.append(line[indent:])
    return block


def _docstring_tree() -> list[str]:
    return _drawing(exceptions.__doc__ or "", "DjangoRcloneCeleryError")


def _internal() -> set[tuple[str, str]]:
    lines = _drawing(
        exceptions.__doc__ or "",
        next(
            line.strip()
            for line in (exceptions.__doc__ or "").splitlines()
            if line.strip().startswith("_")
        ),
    )
    found = set()
    for line in lines:
        m = TREE_LINE.match(line)
        assert m, line
        assert m.group("home"), line
        found.add((m.group("home"), m.group("name")))
    return found


def _tree() -> dict[str, tuple[str | None, str]]:
    """Each drawn class: (its parent in the drawing, its module)."""
    drawn: dict[str, tuple[str | None, str]] = {}
    parents: list[str] = []
    for line in _docstring_tree():
        m = TREE_LINE.match(line)
        assert m, f"cannot read {line!r}"
        depth = len(m.group("lead")) // 4 + (1 if m.group("branch") else 0)
        del parents[depth:]
        name = m.group("name")
        assert name not in drawn, f"{name} is drawn twice"
        drawn[name] = (parents[-1] if parents else None, m.group("home") or "exceptions")
        parents.append(name)
    return drawn


def _documented_names() -> list[str]:
    text = REFERENCE.read_text()
    rows = re.findall(r"^\| `(\w+)` \|", text, re.MULTILINE)
    return rows + list(_tree())


# --- the error tree ----------------------------------------------------------------------


def test_the_drawn_tree_is_every_exception_class() -> None:
    defined = _exception_classes()
    drawn = _tree()
    public = {(home, name) for home, name in defined if not name.startswith("_")}
    assert public == {(home, name) for name, (_, home) in drawn.items()}
    assert defined - public == _internal()


@pytest.mark.parametrize(("home", "name"), sorted(_internal()))
def test_internal_exceptions_are_caught_where_they_are_raised(home: str, name: str) -> None:
    tree = ast.parse((PACKAGE_DIR / (home.replace(".", "/") + ".py")).read_text())
    caught = {
        ast.unparse(handler.type)
        for handler in ast.walk(tree)
        if isinstance(handler, ast.ExceptHandler) and handler.type is not None
    }
    assert name in caught


@pytest.mark.parametrize("name", list(_tree()))
def test_each_drawn_class_sits_under_its_parent(name: str) -> None:
    parent, home = _tree()[name]
    cls = getattr(importlib.import_module(f"{PACKAGE}.{home}"), name)
    own_bases = [base.__name__ for base in cls.__bases__ if base.__module__.startswith(PACKAGE)]
    if parent is None:
        assert own_bases == []
        assert cls.__bases__ == (Exception,)
    else:
        assert own_bases == [parent]


def test_the_reference_page_draws_the_same_tree() -> None:
    page = REFERENCE.read_text()
    assert _drawing(page, "DjangoRcloneCeleryError") == _docstring_tree()
    first_internal = next(
        line for line in (exceptions.__doc__ or "").splitlines() if line.strip().startswith("_")
    )
    assert _drawing(page, first_internal.strip()) == _drawing(
        exceptions.__doc__ or "", first_internal.strip()
    )


# --- __all__ -----------------------------------------------------------------------------


def test_all_is_exactly_the_documented_list() -> None:
    documented = _documented_names()
    assert len(documented) == len(set(documented)), "a name is documented twice"
    assert sorted(django_rclone_celery.__all__) == sorted(documented)
    assert len(django_rclone_celery.__all__) == len(set(django_rclone_celery.__all__))


def test_all_and_the_lazy_table_agree() -> None:
    assert set(django_rclone_celery.__all__) == {"__version__", *django_rclone_celery._HOME}


@pytest.mark.parametrize("name", django_rclone_celery.__all__)
def test_each_public_name_resolves_to_its_home(name: str) -> None:
    value = getattr(django_rclone_celery, name)
    if name == "__version__":
        return
    home = importlib.import_module(f"{PACKAGE}.{django_rclone_celery._HOME[name]}")
    assert value is getattr(home, name)


def test_star_import_gives_every_public_name() -> None:
    namespace: dict[str, Any] = {}
    exec(f"from {PACKAGE} import *", namespace)  # the statement users write
    assert set(django_rclone_celery.__all__) <= set(namespace)


def test_no_public_name_is_a_submodule() -> None:
    # Importing a submodule sets the package attribute of its name, hiding the export.
    submodules = {info.name for info in pkgutil.iter_modules(django_rclone_celery.__path__)}
    assert not submodules & set(django_rclone_celery.__all__)


def test_every_drawn_error_is_public() -> None:
    assert set(_tree()) <= set(django_rclone_celery.__all__)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        django_rclone_celery.no_such_name


def test_importing_the_package_needs_no_settings() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    code = (
        "import sys, django_rclone_celery as d; "
        "print(d.__version__); "
        "print(sorted(m for m in sys.modules if m.startswith('django_rclone_celery.')))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    version, loaded = proc.stdout.splitlines()
    assert version == django_rclone_celery.__version__
    assert loaded == "[]"


# --- __version__ ------------------------------------------------------------------------


def test_version_is_the_metadata_and_pyproject_version() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project.get("dynamic", [])
    assert django_rclone_celery.__version__ == project["version"]
    assert django_rclone_celery.__version__ == metadata.version("django-rclone-celery")


# --- docs/architecture.md --------------------------------------------------------------

ARCHITECTURE = ROOT / "docs" / "architecture.md"
PACKAGE_DIR = ROOT / PACKAGE


def _named_paths() -> set[str]:
    """Every `x.py`, `x/` or `x/y.py` the page names in backticks."""
    return set(re.findall(r"`([\w/]+(?:\.py|/))`", ARCHITECTURE.read_text()))


def test_architecture_names_every_module() -> None:
    expected = {
        p.name if p.is_file() else f"{p.name}/"
        for p in PACKAGE_DIR.iterdir()
        if (p.suffix == ".py" and p.name != "__init__.py")
        or (p.is_dir() and (p / "__init__.py").is_file() and p.name != "migrations")
    }
    assert expected - _named_paths() == set()


def test_architecture_names_only_existing_paths() -> None:
    named = _named_paths()
    assert named
    missing = [
        path
        for path in named
        if not (
            ROOT / path
            if path.startswith(("tests/", "docs/", f"{PACKAGE}/"))
            else PACKAGE_DIR / path
        ).exists()
    ]
    assert missing == []


# Upward imports the page names as known exceptions: (importer, imported).
UPWARD_IMPORTS = {("conf.py", "schedule_rules.py"), ("enqueue.py", "tasks.py")}


def _floors() -> dict[str, int]:
    """Each module or package the page's tables name, and its floor (0 is the top)."""
    floors: dict[str, int] = {}
    floor = -1
    heading = ""
    for line in ARCHITECTURE.read_text().split("## The run protocol")[0].splitlines():
        if line.startswith("**"):
            heading = line
        elif line.startswith("| `"):
            if heading:
                floor, heading = floor + 1, ""
            first_cell = line.split("|")[1]
            for name in re.findall(r"`([\w]+(?:\.py|/))`", first_cell):
                floors[name] = floor
    return floors


def _top(parts: list[str]) -> str:
    """``["operations", "backup"]`` -> ``operations/``; ``["conf"]`` -> ``conf.py``."""
    return f"{parts[0]}/" if (PACKAGE_DIR / parts[0]).is_dir() else f"{parts[0]}.py"


def _imported_tops(path: Path) -> set[str]:
    rel = path.relative_to(PACKAGE_DIR)
    package = list(rel.parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name.split(".")[1:] for a in node.names if a.name.startswith(PACKAGE)]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if not (node.module or "").startswith(PACKAGE):
                    continue
                base = (node.module or "").split(".")[1:]
            else:
                base = package[: len(package) - (node.level - 1)] + (
                    node.module.split(".") if node.module else []
                )
            targets = [base] if base else [[a.name] for a in node.names]
        else:
            continue
        found.update(_top(t) for t in targets if t)
    return found


def test_imports_go_down_the_floors() -> None:
    floors = _floors()
    assert len(set(floors.values())) == 6
    upward = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        rel = path.relative_to(PACKAGE_DIR)
        if "migrations" in rel.parts or rel.as_posix() == "__init__.py":
            continue
        importer = _top([rel.parts[0].removesuffix(".py")])
        for imported in _imported_tops(path):
            if (
                imported in floors
                and floors[imported] < floors[importer]
                and (importer, imported) not in UPWARD_IMPORTS
            ):
                upward.append(f"{rel} imports {imported}")
    assert upward == []
