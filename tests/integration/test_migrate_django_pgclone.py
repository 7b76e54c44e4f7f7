"""docs/migrate-from-pgclone.md, followed for real.

A project keeps django-pgclone's settings as they are (a local storage
directory, named configs, kill switches, hooks), already has a dump that
django-pgclone made (plain ``pg_dump -Fc`` at a dump key, no manifest), and
runs ``manage.py pgclone`` with django-pgclone's options.
"""

from __future__ import annotations

import subprocess
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections

from tests.helpers.databases import damage, populate, snapshot

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True, databases=["default", "pg"]),
]


def pgclone(*args: str) -> str:
    out = StringIO()
    call_command("pgclone", *args, stdout=out)
    return out.getvalue()


def _drop_beside_live() -> None:
    from django_rclone_celery.connectors import get_connector

    live = connections["pg"].settings_dict["NAME"]
    connections["pg"].close()
    connector = get_connector("pg")
    with connector.cursor("postgres") as cursor:
        cursor.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", [live + "__%"])
        for (name,) in cursor.fetchall():
            connector.drop(cursor, name)  # type: ignore[attr-defined]


def test_a_django_pgclone_project_runs_unchanged(
    settings: Any, tmp_path: Path, remote_dir: Path
) -> None:
    storage = tmp_path / ".pgclone"
    # The settings of a django-pgclone project, as they were.
    settings.PGCLONE_STORAGE_LOCATION = str(storage) + "/"
    settings.PGCLONE_DATABASE = "pg"
    settings.PGCLONE_INSTANCE = "laptop"
    settings.PGCLONE_PRE_SWAP_HOOKS = []
    settings.PGCLONE_CONFIGS = {
        "nobooks": {"exclude": ["testapp.Book"], "instance": "staging"},
    }
    settings.PGCLONE_ALLOW_COPY = False
    populate("pg")
    original = snapshot("pg")
    live = connections["pg"].settings_dict
    try:
        # A dump django-pgclone wrote earlier: pg_dump -Fc at a key, no manifest.
        legacy = "prod/pg/none/2024-05-06-07-08-09-000000.dump"
        (storage / legacy).parent.mkdir(parents=True)
        subprocess.run(
            [
                "pg_dump",
                "-Fc",
                "--no-acl",
                "--no-owner",
                "-h",
                live["HOST"],
                "-p",
                str(live["PORT"]),
                "-U",
                live["USER"],
                "-f",
                str(storage / legacy),
                live["NAME"],
            ],
            check=True,
        )

        # Their commands, with their options.
        key = pgclone("dump").strip().splitlines()[-1]
        assert key.startswith("laptop/pg/none/")
        assert (storage / key).is_file()
        listed = pgclone("ls").split()
        assert legacy in listed
        assert key in listed
        assert pgclone("ls", "--instances").split() == ["laptop", "prod"]
        configured = pgclone("dump", "-c", "nobooks").strip().splitlines()[-1]
        assert configured.startswith("staging/pg/nobooks/")

        damage("pg")
        pgclone("restore", "prod/")  # a prefix picks the newest match: the old dump
        assert snapshot("pg") == original

        damage("pg")
        damaged = snapshot("pg")
        pgclone("restore", key, "--reversible")
        assert snapshot("pg") == original
        pgclone("restore", ":pre")  # back to the state before the restore...
        assert snapshot("pg") == damaged
        pgclone("restore", ":post")  # ...and forward again
        assert snapshot("pg") == original

        # The kill switch they set still refuses, with exit status 1.
        with pytest.raises(CommandError, match="PGCLONE_ALLOW_COPY"):
            pgclone("copy", ":snap")
    finally:
        _drop_beside_live()
