"""Celery's embedded test worker on the session's throwaway Redis, for the entry-point tests.

Import the fixtures into a test module::

    from tests.celery_redis import celery_config, celery_includes  # noqa: F401

``celery_config`` points Celery's ``celery_app`` / ``celery_worker`` fixtures
(``celery.contrib.pytest``) at ``redis_server``, the one throwaway Redis of the
test session (``tests/helpers/workers.py``, available to every module: request it by
name, do not import it), on its own databases ``EMBEDDED_BROKER_DB`` and
``EMBEDDED_BACKEND_DB``: messages go through a real broker to a real worker
thread, never eager mode. Tests that only queue (no worker) take
``depends_on_current_app`` as well.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import django_rclone_celery.tasks  # noqa: F401
from tests.helpers.workers import EMBEDDED_BACKEND_DB, EMBEDDED_BROKER_DB, RedisServer

# Imported above, before any test app exists: celery.contrib.pytest forgets
# shared tasks first seen while one of its apps was alive (it restores
# Celery's list of app finalizers after each test).


@pytest.fixture(scope="session")
def celery_config(redis_server: RedisServer) -> dict[str, Any]:
    return {
        "broker_url": redis_server.url(EMBEDDED_BROKER_DB),
        "result_backend": redis_server.url(EMBEDDED_BACKEND_DB),
        "broker_transport_options": {"visibility_timeout": 24 * 3600},
        "worker_prefetch_multiplier": 1,
    }


@pytest.fixture(scope="session")
def celery_includes() -> list[str]:
    return ["django_rclone_celery.tasks"]


@pytest.fixture
def no_project_app() -> Iterator[None]:
    """Celery as in a project that never imports its app: only the fallback app exists."""
    from celery import _state

    saved = (_state.default_app, _state._tls.current_app)
    _state.set_default_app(None)
    _state._tls.current_app = None
    try:
        yield
    finally:
        _state.set_default_app(saved[0])
        _state._tls.current_app = saved[1]
