"""The docs tell the truth: settings match the code, the site builds, every example runs.

Code examples follow one rule (checked here, explained in docs/index.md's
"About the examples"): a ```python or ```bash block in docs/ is written out in
the page (so it reads the same on GitHub as in mkdocs) and is either

* preceded by ``<!-- same-as: path:section -->``: the block is, line for line,
  that section of a tested file (``--8<-- [start:section]`` ... ``[end:section]``
  comments, or the whole file without a section), where the path is under
  ``example_project/`` (run end to end by tests/system/test_demo.py and
  tests/system/test_browser.py), ``docs/examples/`` (run by this module) or ``tests/``;
* preceded by ``<!-- test: run -->``: a bash block this module runs, line by
  line, against a private copy of the example project;
* preceded by ``<!-- tested-by: tests/<tier>/test_x.py::test_name -->``: an example a
  named test exercises (the test must exist).
"""

from __future__ import annotations

import ast
import os
import re
import runpy
import shlex
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from django_rclone_celery import conf
from tests.helpers.docs import table_rows

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
EXAMPLE = ROOT / "example_project"
VENV_BIN = Path(sys.executable).parent
TESTED_ROOTS = ("example_project/", "docs/examples/", "tests/")
CODE_LANGS = {"python", "py", "bash", "sh", "shell", "console"}
SAME_AS = re.compile(r"<!-- same-as: (?P<path>[^\s:]+)(?::(?P<section>[\w-]+))? -->")
CHECK_ID = re.compile(r"django_rclone_celery\.[EW]\d{3}")


# --- (a) settings reference -----------------------------------------------------------------


def _pgclone_names() -> dict[str, object] | None:
    try:
        from django_rclone_celery.pgclone import conf as pgconf
    except ImportError:
        return None
    return dict.fromkeys(pgconf.NAMES)


def test_every_setting_is_documented_and_every_documented_setting_exists() -> None:
    text = (DOCS / "settings.md").read_text()
    rows = table_rows(text, "## `DJANGO_RCLONE` keys")
    assert set(rows) == set(conf.DEFAULTS), (
        f"missing from docs: {sorted(set(conf.DEFAULTS) - set(rows))}; "
        f"not in code: {sorted(set(rows) - set(conf.DEFAULTS))}"
    )
    pg_rows = table_rows(text, "## `PGCLONE_*` settings")
    pg_code = _pgclone_names()
    if pg_code is not None:
        assert set(pg_rows) == set(pg_code)
    else:  # until the pgclone module lands, the documented names are django-pgclone's
        assert all(name.startswith("PGCLONE_") for name in pg_rows)


def test_documented_defaults_are_the_code_defaults() -> None:
    rows = table_rows((DOCS / "settings.md").read_text(), "## `DJANGO_RCLONE` keys")
    for key, cells in rows.items():
        literal = re.fullmatch(r"`([^`]+)`", cells[2])
        assert literal, f"{key}: default cell {cells[2]!r} is not a `literal`"
        assert ast.literal_eval(literal.group(1)) == conf.DEFAULTS[key], key


def test_every_check_id_in_the_code_is_documented() -> None:
    code = "\n".join(p.read_text() for p in (ROOT / "django_rclone_celery").rglob("*.py"))
    docs = "\n".join(p.read_text() for p in DOCS.rglob("*.md"))
    short = set(re.findall(r"`([EW]\d{3})`", docs))
    documented = set(CHECK_ID.findall(docs)) | {f"django_rclone_celery.{i}" for i in short}
    missing = set(CHECK_ID.findall(code)) - documented
    assert not missing, f"check ids not in the docs: {sorted(missing)}"


def test_full_settings_example_is_the_defaults() -> None:
    example = runpy.run_path(str(DOCS / "examples" / "settings_full.py"))["DJANGO_RCLONE"]
    assert {k: v for k, v in example.items() if k != "REMOTE"} == {
        k: v for k, v in conf.DEFAULTS.items() if k != "REMOTE"
    }


# --- (b) the site builds -----------------------------------------------------------------


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(VENV_BIN / "mkdocs"), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "site" / "settings" / "index.html").is_file()


# --- (c) code examples -------------------------------------------------------------------


@dataclass
class Block:
    page: str
    line: int
    lang: str
    body: list[str]
    marker: str


def code_blocks() -> list[Block]:
    blocks = []
    for page in sorted(DOCS.rglob("*.md")):
        lines = page.read_text().splitlines()
        i = 0
        while i < len(lines):
            opening = re.match(r"^(\s*)(`{3,})(\w*)", lines[i])
            if not opening:
                i += 1
                continue
            indent, fence, lang = opening.groups()
            start = i
            i += 1
            body = []
            while i < len(lines) and not lines[i].strip().startswith(fence):
                body.append(lines[i][len(indent) :])
                i += 1
            i += 1
            before = [ln.strip() for ln in lines[max(0, start - 2) : start] if ln.strip()]
            marker = before[-1] if before and before[-1].startswith("<!--") else ""
            if lang in CODE_LANGS or SAME_AS.fullmatch(marker):
                rel = str(page.relative_to(ROOT))
                blocks.append(Block(rel, start + 1, lang, body, marker))
    return blocks


def _section(path: Path, section: str | None) -> list[str] | None:
    """The lines of ``section`` of ``path`` (dedented), or the whole file; None if absent."""
    lines = path.read_text().splitlines()
    if not section:
        return lines
    start, end = f"--8<-- [start:{section}]", f"--8<-- [end:{section}]"
    starts = [i for i, ln in enumerate(lines) if start in ln]
    ends = [i for i, ln in enumerate(lines) if end in ln]
    if not starts or not ends:
        return None
    return textwrap.dedent("\n".join(lines[starts[0] + 1 : ends[0]])).splitlines()


def _test_exists(ref: str) -> bool:
    file, _, name = ref.partition("::")
    path = ROOT / file
    if not path.is_file() or not name:
        return False
    tree = ast.parse(path.read_text())
    return any(
        isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name
        for node in ast.walk(tree)
    )


def test_every_code_example_is_tested() -> None:
    untested = []
    for block in code_blocks():
        where = f"{block.page}:{block.line}"
        if any(ln.strip().startswith("--8<--") for ln in block.body):
            untested.append(f"{where}: a snippet marker shows raw on GitHub; write the code out")
            continue
        same_as = SAME_AS.fullmatch(block.marker)
        if same_as:
            path, section = same_as.group("path"), same_as.group("section")
            expected = _section(ROOT / path, section) if (ROOT / path).is_file() else None
            if not path.startswith(TESTED_ROOTS):
                untested.append(f"{where}: {path} is not a tested file")
            elif expected is None:
                untested.append(f"{where}: {path} has no section {section!r}")
            elif [ln.rstrip() for ln in block.body] != [ln.rstrip() for ln in expected]:
                untested.append(f"{where}: differs from {path}:{section}; copy it again")
            continue
        if block.marker == "<!-- test: run -->":
            if block.lang not in ("bash", "sh", "shell"):
                untested.append(f"{where}: only bash blocks can be run")
            continue
        tested_by = re.fullmatch(r"<!-- tested-by: (\S+) -->", block.marker)
        if tested_by:
            if not _test_exists(tested_by.group(1)):
                untested.append(f"{where}: {tested_by.group(1)} does not exist")
            continue
        untested.append(f"{where}: {block.lang} block is neither included nor tested")
    assert not untested, "\n".join(untested)


def test_docs_examples_settings_are_valid() -> None:
    examples = sorted((DOCS / "examples").glob("*.py"))
    assert examples
    for path in examples:
        namespace = runpy.run_path(str(path))
        if "DJANGO_RCLONE" in namespace:
            problems = conf.validate(namespace["DJANGO_RCLONE"])
            assert problems == [], f"{path.name}: {problems}"


def runnable_blocks() -> list[Block]:
    return [b for b in code_blocks() if b.marker == "<!-- test: run -->"]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The example project on embedded defaults, in a private directory."""
    var = tmp_path_factory.mktemp("bookshop-var")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "BACKUP_REMOTE", "DJANGO_SETTINGS_MODULE")
        and not k.startswith("RCLONE_CONFIG_")
    }
    env.update(BOOKSHOP_VAR=str(var), PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}")
    _manage(["migrate", "--noinput"], env)
    _manage(["shell", "-c", "from catalog.seed import seed; seed()"], env)
    return env


def _manage(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE / "manage.py"), *args],
        cwd=EXAMPLE,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, f"manage.py {shlex.join(args)}:\n{proc.stdout}{proc.stderr}"
    return proc


def _check_pip_install(requirements: list[str]) -> None:
    """Nothing is downloaded in tests: check the name and extras against pyproject.toml."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in requirements:
        m = re.fullmatch(r"([\w.-]+)(?:\[([\w,-]+)\])?", requirement)
        assert m, f"cannot read requirement {requirement!r}"
        assert m.group(1) == project["name"], requirement
        for extra in filter(None, (m.group(2) or "").split(",")):
            assert extra in project["optional-dependencies"], f"no extra {extra!r}"


# Paths the docs use for "your backup directory", moved into the sandbox.
SANDBOXED_PATHS = ("/srv/backups", "/tmp/bookshop-dump")


def _run_block(block: Block, base_env: dict[str, str], replace: dict[str, str]) -> None:
    env = dict(base_env)
    for raw in block.body:
        line = raw.strip()
        for old, new in replace.items():
            line = line.replace(old, new)
        for path in SANDBOXED_PATHS:
            line = line.replace(path, f"{env['BOOKSHOP_VAR']}/{path.strip('/').replace('/', '-')}")
        if not line or line.startswith("#"):
            continue
        argv = shlex.split(line, comments=True)
        if argv[0] == "export":
            name, _, value = argv[1].partition("=")
            env[name] = value
        elif argv[:2] == ["pip", "install"]:
            _check_pip_install(argv[2:])
        elif argv[:2] == ["python", "manage.py"]:
            _manage(argv[2:], env)
        elif argv[0] == "rclone":
            proc = subprocess.run(
                [str(VENV_BIN / "rclone"), *argv[1:]],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert proc.returncode == 0, f"{line}:\n{proc.stderr}"
        else:
            pytest.fail(f"{block.page}:{block.line}: cannot run {line!r}")


# The S3 endpoint the docs show; tests point it at a local S3 emulator (moto).
S3_ENDPOINT = "http://127.0.0.1:9000"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.parametrize("block", runnable_blocks(), ids=lambda b: f"{b.page}:{b.line}")
def test_run_bash_example(
    block: Block, sandbox: dict[str, str], request: pytest.FixtureRequest
) -> None:
    replace = {}
    if any(S3_ENDPOINT in line for line in block.body):
        replace[S3_ENDPOINT] = request.getfixturevalue("s3_endpoint")
    _run_block(block, sandbox, replace)


# --- commands reference -------------------------------------------------------------------

# Django's own options, documented once at the top of commands.md.
_DJANGO_OPTIONS = {
    "-h",
    "--help",
    "--version",
    "-v",
    "--verbosity",
    "--settings",
    "--pythonpath",
    "--traceback",
    "--no-color",
    "--force-color",
    "--skip-checks",
}


def _options(parser: object) -> dict[str, set[str]]:
    """Option strings by (sub)command path, walking argparse subparsers."""
    import argparse

    assert isinstance(parser, argparse.ArgumentParser)
    found: dict[str, set[str]] = {"": set()}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                for path, opts in _options(sub).items():
                    found[f"{name} {path}".strip()] = opts
        else:
            found[""].update(o for o in action.option_strings if o not in _DJANGO_OPTIONS)
    return found


def test_every_command_option_is_documented() -> None:
    from django.core.management import get_commands, load_command_class

    text = (DOCS / "commands.md").read_text()
    ours = sorted(n for n, app in get_commands().items() if app == "django_rclone_celery")
    assert "dbbackup" in ours
    missing = []
    for name in ours:
        if f"## {name}" not in text:
            missing.append(f"section ## {name}")
            continue
        parser = load_command_class("django_rclone_celery", name).create_parser("manage.py", name)
        for sub, opts in _options(parser).items():
            heading = f"## {name} {sub}".strip()
            section = text.split(f"\n{heading}\n", 1)[-1] if sub else text.split(f"## {name}", 1)[1]
            section = re.split(r"\n## (?!#)", section, maxsplit=1)[0]
            for opt in sorted(opts):
                if f"`{opt}`" not in section:
                    missing.append(f"{heading}: {opt}")
    assert not missing, "undocumented: " + ", ".join(missing)


# --- signals reference ---------------------------------------------------------------------


def _signal_rows_from_docstring() -> dict[str, tuple[str, ...]]:
    from django_rclone_celery import signals

    rows: dict[str, list[str]] = {}
    last = ""
    for line in (signals.__doc__ or "").splitlines():
        m = re.match(r"^(\w+)\s{2,}.+?\s{2,}(\S.*)$", line)
        if m and hasattr(signals, m.group(1)):
            last = m.group(1)
            rows[last] = [k.strip() for k in m.group(2).split(",") if k.strip()]
        elif last and re.match(r"^\s{20,}\S", line):
            rows[last] += [k.strip() for k in line.split(",") if k.strip()]
        elif not line.strip():
            last = ""
    return {name: tuple(kwargs) for name, kwargs in rows.items()}


def test_signals_page_matches_the_module() -> None:
    from django.dispatch import Signal

    from django_rclone_celery import signals

    documented = {}
    for line in (DOCS / "signals.md").read_text().splitlines():
        m = re.match(r"^\| `(\w+)` \|.*\| (`.*`) \|$", line)
        if m:
            documented[m.group(1)] = tuple(re.findall(r"`(\w+)`", m.group(2)))
    defined = {n for n, v in vars(signals).items() if isinstance(v, Signal)}
    assert set(documented) == defined
    assert documented == _signal_rows_from_docstring()


@pytest.mark.django_db(transaction=True)
def test_signal_receivers_example_fires_with_documented_kwargs(
    settings: object,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util
    import logging

    from django_rclone_celery import signals
    from django_rclone_celery.operations import backup_database, restore_database

    settings.DJANGO_RCLONE = {"REMOTE": str(tmp_path / "remote")}  # type: ignore[attr-defined]
    spec = importlib.util.spec_from_file_location(
        "docs_receivers", DOCS / "examples" / "receivers.py"
    )
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        with caplog.at_level(logging.INFO, logger="myproject.backups"):
            result = backup_database("default")
        assert f"backup of default: {result.path} ({result.size} bytes), run {result.run_id}" in (
            caplog.text
        )
        blocker = tmp_path / "a-file"
        blocker.write_text("not a directory\n")
        settings.DJANGO_RCLONE = {"REMOTE": str(blocker / "remote")}  # type: ignore[attr-defined]
        with caplog.at_level(logging.ERROR, logger="myproject.backups"), pytest.raises(Exception):
            backup_database("default")
        assert re.search(r"db_backup failed in stage \w+: ", caplog.text), caplog.text
        settings.DJANGO_RCLONE = {"REMOTE": str(tmp_path / "remote")}  # type: ignore[attr-defined]
        monkeypatch.setenv("DEPLOYMENT", "production")
        with pytest.raises(PermissionError, match="refusing to restore default"):
            restore_database("default")
        assert "db_restore failed in stage" not in caplog.text  # the veto came before any stage
    finally:
        signals.post_db_backup.disconnect(module.log_backup)
        signals.stage_failed.disconnect(module.alert_on_failure)
        signals.pre_db_restore.disconnect(module.no_restore_in_production)


# --- troubleshooting: every message is the code's ---------------------------------------


def test_troubleshooting_messages_exist_in_the_code() -> None:
    source = "\n".join(p.read_text() for p in (ROOT / "django_rclone_celery").rglob("*.py"))
    # f-strings spell placeholders {x!r}; the docs spell them '<x>'.
    joined = re.sub(r"\"\s*\n\s*f?\"", "", source)  # adjacent string literals
    flat = re.sub(r"\s+", " ", joined)
    missing = []
    headings = re.findall(r"^### `(.+)`", (DOCS / "troubleshooting.md").read_text(), re.M)
    assert len(headings) > 15
    for message in headings:
        for fragment in re.split(r"'?<[^>]+>'?", message):
            fragment = fragment.strip()
            if len(fragment) >= 8 and fragment not in flat:
                missing.append(f"{message!r}: {fragment!r}")
    assert not missing, "\n".join(missing)


def test_documented_pgclone_defaults_are_the_code_defaults() -> None:
    pgconf = pytest.importorskip("django_rclone_celery.pgclone.conf")
    rows = table_rows((DOCS / "settings.md").read_text(), "## `PGCLONE_*` settings")
    actual = pgconf.get_pgclone_settings()
    checked = 0
    for name, cells in rows.items():
        literal = re.fullmatch(r"`([^`]+)`", cells[2])
        if not literal:  # a computed default, explained in words
            continue
        value = ast.literal_eval(literal.group(1))
        current = getattr(actual, name.removeprefix("PGCLONE_").lower())
        if isinstance(value, list):
            value = tuple(value)
        assert current == value, name
        checked += 1
    assert checked >= 10
