"""The unit tier: no PostgreSQL, MariaDB, Redis, rclone remote, S3 or worker.

A test here that asks for a fixture of one of those, or for a database other
than the SQLite ``default``, fails before it runs: move it to
``tests/integration`` or ``tests/system`` instead.
"""

from __future__ import annotations

import pytest

SERVER_FIXTURES = frozenset(
    {
        "redis_server",
        "task_app",
        "lock_config",
        "workers",
        "celery_app",
        "celery_worker",
        "moto_s3",
        "s3_remote",
        "remote_dir",
        "live_server",
    }
)


def pytest_runtest_setup(item: pytest.Item) -> None:
    used = SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ()))
    if used:
        pytest.fail(f"a unit test may not use {', '.join(sorted(used))}", pytrace=False)
    for marker in item.iter_markers("django_db"):
        databases = marker.kwargs.get("databases", ["default"])
        if databases == "__all__" or set(databases) - {"default"}:
            pytest.fail(
                f"a unit test may only use the SQLite 'default' database, not {databases}",
                pytrace=False,
            )
