"""The project's virtualenv is compiled to bytecode at install (docs/deployment.md,
"Bytecode"), and its own modules by scripts/bootstrap.sh.

scripts/bootstrap.sh installs through uv, which writes no ``.pyc`` unless asked;
with ``PYTHONDONTWRITEBYTECODE`` set, every ``manage.py`` and worker start in
the suite would then compile Django and Celery again. Bytecode that Python
wrote while importing (newer than the install's stamp) does not count: it
would hide an install that compiled nothing. The version pairs' virtualenvs
are left to write their own (scripts/test-versions).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import pytest

# Modules that every command and worker start imports.
STARTUP_MODULES = (
    "django.db.models.fields",
    "django.urls.resolvers",
    "celery.app.base",
    "kombu.entity",
)
STAMP = Path(sys.prefix, ".drc-installed-test")  # written by scripts/bootstrap.sh test


@pytest.mark.skipif(not STAMP.exists(), reason="not the virtualenv of scripts/bootstrap.sh test")
@pytest.mark.parametrize("name", STARTUP_MODULES)
def test_the_modules_every_start_imports_were_compiled_at_install(name: str) -> None:
    source = importlib.import_module(name).__file__
    assert source is not None
    cached = Path(importlib.util.cache_from_source(source))
    assert cached.is_file(), f"no bytecode for {name}: {cached}"
    assert cached.stat().st_mtime <= STAMP.stat().st_mtime, f"{cached} was written after install"


ROOT = Path(__file__).resolve().parents[2]
# The project's own modules that a manage.py or worker start imports: an
# editable install, compiled by scripts/bootstrap.sh at each run.
OWN_MODULES = (
    "django_rclone_celery/process.py",
    "django_rclone_celery/operations/backup.py",
    "django_rclone_celery/tasks.py",
    "example_project/bookshop/settings.py",
    "tests/worker_settings.py",
)


@pytest.mark.skipif(not STAMP.exists(), reason="not the virtualenv of scripts/bootstrap.sh test")
@pytest.mark.skipif(
    not sys.flags.dont_write_bytecode, reason="imports write bytecode: nothing to tell apart"
)
@pytest.mark.parametrize("path", OWN_MODULES)
def test_the_projects_own_modules_were_compiled_by_bootstrap(path: str) -> None:
    # With PYTHONDONTWRITEBYTECODE no import writes it, so only bootstrap can have.
    cached = Path(importlib.util.cache_from_source(str(ROOT / path)))
    assert cached.is_file(), f"no bytecode for {path}: {cached}"
