"""Guardrails on the package's shape, read from its source with ``ast``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "django_rclone_celery"
SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _imports(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _rel(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


def test_sources_found() -> None:
    assert len(SOURCES) > 20
    assert PACKAGE / "process.py" in SOURCES


@pytest.mark.parametrize("path", SOURCES, ids=_rel)
def test_only_the_gateway_uses_subprocess(path: Path) -> None:
    if _rel(path) == "process.py":
        return
    tree = _tree(path)
    imported = _imports(tree)
    assert not any(name == "subprocess" or name.startswith("subprocess.") for name in imported)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in {"system", "popen", "execv", "spawnv"}:
            assert not (isinstance(node.value, ast.Name) and node.value.id == "os"), (
                f"{_rel(path)}:{node.lineno} starts a program outside process.py"
            )


@pytest.mark.parametrize("path", SOURCES, ids=_rel)
def test_no_shell(path: Path) -> None:
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.keyword) and node.arg == "shell":
            value = node.value
            where = f"{_rel(path)}:{node.lineno} passes shell="
            assert isinstance(value, ast.Constant), where
            assert value.value is False, where


ADAPTERS = [
    p
    for p in SOURCES
    if _rel(p).startswith("management/") or _rel(p) in {"tasks.py", "admin.py", "enqueue.py"}
]


@pytest.mark.parametrize("path", ADAPTERS, ids=_rel)
def test_adapters_go_through_operations(path: Path) -> None:
    """Commands, tasks and admin call operations; they never drive tools themselves."""
    forbidden = ("process", "rclone", "connectors")
    for name in _imports(_tree(path)):
        last = name.lstrip(".").split(".")
        assert not (
            name.startswith(".") and last and last[0] in forbidden and "portable" not in name
        ), f"{_rel(path)} imports {name}"


def _absolute(path: Path, name: str) -> str:
    """``name`` as imported from ``path``, spelled from the package root."""
    level = len(name) - len(name.lstrip("."))
    if not level:
        return name
    parts = ["django_rclone_celery", *path.relative_to(PACKAGE).parent.parts]
    base = parts[: len(parts) - (level - 1)]
    return ".".join([*base, name[level:]]).rstrip(".")


# The two verb families stand side by side on the floor (``floor/``): neither
# imports the other, so either can change without breaking the other.
FAMILIES = {"pgclone": "operations", "operations": "pgclone"}


@pytest.mark.parametrize(
    "path", [p for p in SOURCES if _rel(p).split("/")[0] in FAMILIES], ids=_rel
)
def test_verb_families_share_only_the_floor(path: Path) -> None:
    other = "django_rclone_celery." + FAMILIES[_rel(path).split("/")[0]]
    for name in _imports(_tree(path)):
        absolute = _absolute(path, name)
        where = f"{_rel(path)} imports {name}; share it through django_rclone_celery.floor instead"
        assert absolute != other, where
        assert not absolute.startswith(other + "."), where


# Below both families: the floor, and the portable format that the floor's tap also serves.
UNDER_BOTH = ("floor/", "portable/")


@pytest.mark.parametrize("path", [p for p in SOURCES if _rel(p).startswith(UNDER_BOTH)], ids=_rel)
def test_the_floor_stands_under_both_families(path: Path) -> None:
    for name in _imports(_tree(path)):
        absolute = _absolute(path, name)
        for family in FAMILIES:
            package = f"django_rclone_celery.{family}"
            assert absolute != package, f"{_rel(path)} imports {name}"
            assert not absolute.startswith(package + "."), f"{_rel(path)} imports {name}"


def test_family_guard_resolves_relative_imports() -> None:
    """The guard above would pass vacuously if relative imports were misread."""
    restore = PACKAGE / "pgclone" / "restore.py"
    assert _absolute(restore, "..floor.run") == "django_rclone_celery.floor.run"
    assert _absolute(restore, ".keys") == "django_rclone_celery.pgclone.keys"
    assert _absolute(restore, "..operations.run.Run") == "django_rclone_celery.operations.run.Run"
    assert _absolute(PACKAGE / "operations" / "backup.py", "..") == "django_rclone_celery"


SIGNAL_NAMES = {
    "pre_db_backup",
    "post_db_backup",
    "pre_db_restore",
    "post_db_restore",
    "pre_media_backup",
    "post_media_backup",
    "pre_media_restore",
    "post_media_restore",
    "pre_stage",
    "post_stage",
    "stage_failed",
}
SENDERS = ("operations/", "pgclone/", "portable/", "floor/run.py")


@pytest.mark.parametrize("path", SOURCES, ids=_rel)
def test_only_operations_send_signals(path: Path) -> None:
    if _rel(path).startswith(SENDERS):
        return
    for node in ast.walk(_tree(path)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in {"send", "send_robust"}
        ):
            target = node.func.value
            name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
            # The run guard may report a failure that happened outside any stage.
            allowed = name == "stage_failed" and _rel(path) == "guard.py"
            if name in SIGNAL_NAMES and not allowed:
                pytest.fail(f"{_rel(path)}:{node.lineno} sends {name}; only operations may")


def test_signal_module_declares_every_signal() -> None:
    from django_rclone_celery import signals

    for name in SIGNAL_NAMES:
        assert hasattr(signals, name), name
        assert name in (signals.__doc__ or ""), f"{name} is not documented in signals.py"


# --- no import cycle inside the package (#17) ----------------------------------------------


def _module_name(path: Path) -> str:
    parts = ["django_rclone_celery", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in SOURCES}


def _runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import, in functions too (a lazy import is still a circle), but not the
    ones under ``if TYPE_CHECKING:``, which never run."""
    found: list[ast.Import | ast.ImportFrom] = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            found.extend(i for n in node.orelse for i in _runtime_imports(n))
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        found.extend(_runtime_imports(node))
    return found


def _imported_modules(module: str) -> set[str]:
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    targets: set[str] = set()
    for node in _runtime_imports(_tree(path)):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:
            anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            base = ".".join([*anchor, *([node.module] if node.module else [])])
        # `from . import signals` imports the module signals, not the package's body.
        for alias in node.names:
            name = f"{base}.{alias.name}"
            targets.add(name if name in MODULES else base)
    return {t for t in targets if t in MODULES and t != module}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_import_graph_sees_relative_and_lazy_imports() -> None:
    schedules = _imported_modules("django_rclone_celery.schedules")
    assert "django_rclone_celery.conf" in schedules
    assert "django_rclone_celery.registry" in _imported_modules(
        "django_rclone_celery.schedule_rules"
    )
    # A function-level import counts: checks imports the connectors inside a check.
    assert "django_rclone_celery.connectors" in _imported_modules("django_rclone_celery.checks")
    assert "django_rclone_celery.conf" in _imported_modules("django_rclone_celery.pgclone.conf")


def test_no_import_cycle_inside_the_package() -> None:
    graph = {module: _imported_modules(module) for module in MODULES}
    assert _cycles(graph) == [], "modules that import each other (directly or around a circle)"
