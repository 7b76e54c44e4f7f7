"""A restore killed in the middle of its swap: the live database survives, the next run recovers.

The restore runs in a child process (this file, run as a script). A fault
injector in the child pauses it right after a chosen SQL statement of the
swap; the test then SIGKILLs it, so the server sees the client vanish with
the swap's transaction open (or, for ``commit``, just after it committed).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def _child(live: str, storage: str, key: str, marker: str, after: str) -> None:
    """Run ``pgclone.restore(key)`` and freeze after the first statement matching ``after``."""
    sys.path.insert(0, str(REPO))
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    import django
    from django.conf import settings

    settings.DATABASES["pg"]["NAME"] = live
    settings.PGCLONE_DATABASE = "pg"
    settings.PGCLONE_STORAGE_LOCATION = storage
    settings.PGCLONE_PRE_SWAP_HOOKS = []
    django.setup()
    from django.db.backends.utils import CursorWrapper

    execute = CursorWrapper.execute

    def paused_execute(self: Any, sql: str, params: Any = None) -> Any:
        result = execute(self, sql, params)
        text = sql.strip().upper()
        hit = {
            "rename": text.startswith("ALTER DATABASE") and "RENAME" in text,
            "commit": text == "COMMIT",
        }[after]
        if hit:
            Path(marker).write_text(sql)
            time.sleep(3600)  # the test kills us here
        return result

    CursorWrapper.execute = paused_execute  # type: ignore[method-assign]
    from django_rclone_celery import pgclone

    pgclone.restore(key)


if __name__ == "__main__":
    _child(*sys.argv[1:6])
    sys.exit(0)


from django.db import connections  # noqa: E402

from django_rclone_celery import pgclone  # noqa: E402
from tests.helpers.databases import damage, drops_finished, populate, snapshot  # noqa: E402

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True, databases=["default", "pg"]),
]


def _databases() -> set[str]:
    with connections["pg"].cursor() as cursor:
        cursor.execute("SELECT datname FROM pg_database")
        return {row[0] for row in cursor.fetchall()}


def _beside(live: str) -> list[str]:
    drops_finished("pg")
    return sorted(n for n in _databases() if n.startswith(live + "__"))


@pytest.fixture
def store(settings: Any, remote_dir: Path) -> Any:
    settings.PGCLONE_DATABASE = "pg"
    settings.PGCLONE_INSTANCE = "ci"
    settings.PGCLONE_PRE_SWAP_HOOKS = []
    yield remote_dir / "pgclone"
    connections["pg"].close()


def _kill_restore_after(after: str, store: Path, key: str, tmp_path: Path) -> str:
    """Run the restore in a child, SIGKILL it once it passed ``after``; return that SQL."""
    live = str(connections["pg"].settings_dict["NAME"])
    marker = tmp_path / f"paused-{after}"
    connections["pg"].close()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, __file__, live, str(store), key, str(marker), after],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            if child.poll() is not None:
                _out, err = child.communicate()
                pytest.fail(f"the restore ended before the swap: {err.decode()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail("the restore never reached the swap")
            time.sleep(0.05)
        statement = marker.read_text()
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.communicate()
    assert child.returncode == -signal.SIGKILL
    return statement


def test_kill_between_the_renames_leaves_live_intact_and_next_run_recovers(
    store: Path, tmp_path: Path
) -> None:
    populate("pg")
    dumped = snapshot("pg")
    key = pgclone.dump()
    damage("pg")
    live_before = snapshot("pg")
    live = str(connections["pg"].settings_dict["NAME"])

    statement = _kill_restore_after("rename", store, key, tmp_path)
    # The child died after renaming the live database away, before renaming __temp in.
    assert statement.startswith(f'ALTER DATABASE "{live}" RENAME TO "{live}__old"')

    # The server rolled the whole swap back: the live database is the one we had.
    assert snapshot("pg") == live_before
    assert live in _databases()
    assert _beside(live) == [f"{live}__temp"]  # the crashed run's leftover

    # The next run drops the leftover and restores normally.
    pgclone.restore(key)
    assert snapshot("pg") == dumped
    assert _beside(live) == []


def test_kill_after_the_swap_committed_is_cleaned_up_by_the_next_run(
    store: Path, tmp_path: Path
) -> None:
    populate("pg")
    dumped = snapshot("pg")
    key = pgclone.dump()
    damage("pg")
    live = str(connections["pg"].settings_dict["NAME"])

    _kill_restore_after("commit", store, key, tmp_path)
    # The swap committed: the restored data is live; the old database is a leftover.
    assert snapshot("pg") == dumped
    assert _beside(live) == [f"{live}__old"]

    damage("pg")
    pgclone.restore(key)
    assert snapshot("pg") == dumped
    assert _beside(live) == []
