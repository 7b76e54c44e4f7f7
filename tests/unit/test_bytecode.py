"""The project's virtualenv is compiled to bytecode (docs/deployment.md, "Bytecode").

scripts/bootstrap.sh installs through uv, which writes no ``.pyc`` unless asked;
with ``PYTHONDONTWRITEBYTECODE`` set, every ``manage.py`` and worker start in
the suite would then compile Django and Celery again.
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


def _ours() -> bool:
    """Made by scripts/bootstrap.sh or, for a version pair, scripts/test-versions."""
    return any(
        Path(sys.prefix, stamp).exists() for stamp in (".drc-installed-test", ".drc-installed")
    )


@pytest.mark.skipif(not _ours(), reason="not a virtualenv of scripts/bootstrap.sh or test-versions")
@pytest.mark.parametrize("name", STARTUP_MODULES)
def test_the_modules_every_start_imports_have_bytecode(name: str) -> None:
    source = importlib.import_module(name).__file__
    assert source is not None
    cached = importlib.util.cache_from_source(source)
    assert Path(cached).is_file(), f"no bytecode for {name}: {cached}"
