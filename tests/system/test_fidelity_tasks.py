"""Restore fidelity: every schema object a backup holds comes back, on real engines.

MariaDB: a view, a trigger, a stored function, a procedure and an event,
created with a definer the restoring user cannot set, survive
``dbbackup``/``dbrestore`` run as a user without SUPER. PostgreSQL: a view,
a materialized view, a function, a trigger and an extension.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zstandard
from django.db import connections

from tests.helpers.databases import (
    populate,
)

MARIA = pytest.mark.django_db(transaction=True, databases=["default", "maria"])
PG = pytest.mark.django_db(transaction=True, databases=["default", "pg"])


# MariaDB -------------------------------------------------------------------
def _maria_objects() -> None:
    with connections["maria"].cursor() as cursor:
        cursor.execute(
            "CREATE VIEW author_books AS SELECT a.id, a.name, COUNT(b.id) AS books "
            "FROM testapp_author a LEFT JOIN testapp_book b ON b.author_id = a.id GROUP BY a.id"
        )
        cursor.execute(
            "CREATE TRIGGER author_upper BEFORE INSERT ON testapp_author FOR EACH ROW "
            "SET NEW.name = UPPER(NEW.name)"
        )
        cursor.execute("CREATE FUNCTION triple(x INT) RETURNS INT DETERMINISTIC RETURN x * 3")
        cursor.execute(
            "CREATE PROCEDURE add_author(IN n VARCHAR(200)) "
            "INSERT INTO testapp_author (name) VALUES (n)"
        )
        cursor.execute(
            "CREATE EVENT nightly_noop ON SCHEDULE EVERY 1 DAY DISABLE "
            "DO DELETE FROM testapp_author WHERE id < 0"
        )


def _drop_maria_objects() -> None:
    connections["maria"].close()
    with connections["maria"].cursor() as cursor:
        for statement in (
            "DROP VIEW IF EXISTS author_books",
            "DROP TRIGGER IF EXISTS author_upper",
            "DROP FUNCTION IF EXISTS triple",
            "DROP PROCEDURE IF EXISTS add_author",
            "DROP EVENT IF EXISTS nightly_noop",
        ):
            cursor.execute(statement)


@pytest.fixture
def maria_objects() -> Iterator[None]:
    """The five objects, dropped afterwards: the test database outlives the test."""
    _drop_maria_objects()
    _maria_objects()
    yield
    _drop_maria_objects()


def _maria_object_names() -> dict[str, list[str]]:
    inventory = connections["maria"].cursor
    with inventory() as cursor:
        name = connections["maria"].settings_dict["NAME"]
        out = {}
        for kind, sql in {
            "views": "SELECT table_name FROM information_schema.views WHERE table_schema = %s",
            "triggers": "SELECT trigger_name FROM information_schema.triggers "
            "WHERE trigger_schema = %s",
            "routines": "SELECT CONCAT(routine_type, ' ', routine_name) "
            "FROM information_schema.routines WHERE routine_schema = %s",
            "events": "SELECT event_name FROM information_schema.events WHERE event_schema = %s",
        }.items():
            cursor.execute(sql, [name])
            out[kind] = sorted(row[0] for row in cursor.fetchall())
    return out


@pytest.fixture
def maria_plain_user() -> Iterator[dict[str, str]]:
    """A MariaDB account with every privilege on the test schemas and no SUPER."""
    connection = connections["maria"]
    name = connection.settings_dict["NAME"]
    user = f"drc_plain{uuid.uuid4().hex[:6]}_fidelity"
    password = "pl'ain\"pw"
    pattern = name.replace("_", "\\_") + "%"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE USER '{user}'@'%%' IDENTIFIED BY %s", [password])
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"GRANT ALL PRIVILEGES ON `{pattern}`.* TO '{user}'@'%'")
        yield {"USER": user, "PASSWORD": password}
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP USER IF EXISTS '{user}'@'%'")


def _as_user(alias: str, account: dict[str, str]) -> dict[str, Any]:
    """Switch ``alias`` to ``account``; returns the settings to put back."""
    settings_dict = connections[alias].settings_dict
    saved = {key: settings_dict[key] for key in account}
    connections[alias].close()
    settings_dict.update(account)
    return saved


# PostgreSQL ----------------------------------------------------------------
def _pg_objects() -> None:
    with connections["pg"].cursor() as cursor:
        cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        cursor.execute(
            "CREATE VIEW author_books AS SELECT a.id, a.name, COUNT(b.id) AS books "
            "FROM testapp_author a LEFT JOIN testapp_book b ON b.author_id = a.id GROUP BY a.id"
        )
        cursor.execute(
            "CREATE MATERIALIZED VIEW book_totals AS SELECT author_id, COUNT(*) AS n "
            "FROM testapp_book GROUP BY author_id"
        )
        cursor.execute(
            "CREATE FUNCTION triple(x int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT x * 3'"
        )
        cursor.execute(
            "CREATE FUNCTION upper_name() RETURNS trigger LANGUAGE plpgsql AS "
            "$$BEGIN NEW.name := upper(NEW.name); RETURN NEW; END$$"
        )
        cursor.execute(
            "CREATE TRIGGER author_upper BEFORE INSERT ON testapp_author "
            "FOR EACH ROW EXECUTE FUNCTION upper_name()"
        )


def _drop_pg_objects() -> None:
    connections["pg"].close()
    with connections["pg"].cursor() as cursor:
        for statement in (
            "DROP VIEW IF EXISTS author_books",
            "DROP MATERIALIZED VIEW IF EXISTS book_totals",
            "DROP TRIGGER IF EXISTS author_upper ON testapp_author",
            "DROP FUNCTION IF EXISTS triple(int)",
            "DROP FUNCTION IF EXISTS upper_name()",
            "DROP EXTENSION IF EXISTS pg_trgm",
        ):
            cursor.execute(statement)


@pytest.fixture
def pg_objects() -> Iterator[None]:
    _drop_pg_objects()
    _pg_objects()
    yield
    _drop_pg_objects()


def _pg_object_names() -> dict[str, list[str]]:
    with connections["pg"].cursor() as cursor:
        queries = {
            "views": "SELECT viewname FROM pg_views WHERE schemaname = 'public'",
            "matviews": "SELECT matviewname FROM pg_matviews",
            "functions": "SELECT proname FROM pg_proc p JOIN pg_namespace n "
            "ON n.oid = p.pronamespace WHERE nspname = 'public' AND NOT EXISTS "
            "(SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')",
            "triggers": "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal",
            "extensions": "SELECT extname FROM pg_extension WHERE extname <> 'plpgsql'",
        }
        out = {}
        for kind, sql in queries.items():
            cursor.execute(sql)
            out[kind] = sorted(row[0] for row in cursor.fetchall())
    return out


# Exclusions ----------------------------------------------------------------
PG_DEFAULT = pytest.mark.django_db(transaction=True, databases=["default", "pg"])


@pytest.fixture
def clone_store(settings: Any, remote_dir: Path) -> Iterator[Path]:
    settings.PGCLONE_DATABASE = "pg"
    settings.PGCLONE_INSTANCE = "ci"
    settings.PGCLONE_PRE_SWAP_HOOKS = []
    yield remote_dir / "pgclone"
    connections["pg"].close()


def _users_with_groups() -> None:
    from django.contrib.admin.models import ADDITION, LogEntry
    from django.contrib.auth.models import Group, Permission, User
    from django.contrib.contenttypes.models import ContentType

    group = Group.objects.using("pg").create(name="editors")
    group.permissions.set(Permission.objects.using("pg").all()[:2])
    user = User.objects.db_manager("pg").create_user("ada", password="x")
    user.groups.add(group)
    user.user_permissions.add(Permission.objects.using("pg").first())
    LogEntry.objects.using("pg").create(
        user=user,
        content_type=ContentType.objects.db_manager("pg").get_for_model(Group),
        object_id=str(group.pk),
        object_repr="editors",
        action_flag=ADDITION,
    )


# The drill: verifybackup --restore compares the restored copy -----------------
def _db(remote_dir: Path, name: str) -> Path:
    return remote_dir / "db" / name


def _manifest(remote_dir: Path, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(_db(remote_dir, name + ".manifest.json").read_text())
    return data


def _write_manifest(remote_dir: Path, name: str, manifest: dict[str, Any]) -> None:
    _db(remote_dir, name + ".manifest.json").write_text(json.dumps(manifest))


def _rewrite_dump(remote_dir: Path, name: str, edit: Any) -> None:
    """Store an edited dump with a manifest whose checksum agrees: bad from the start."""
    path = _db(remote_dir, name)
    text = zstandard.ZstdDecompressor().decompressobj().decompress(path.read_bytes())
    edited = edit(text)
    assert edited != text
    data = zstandard.ZstdCompressor().compress(edited)
    path.write_bytes(data)
    manifest = _manifest(remote_dir, name)
    manifest.update(size=len(data), sha256=hashlib.sha256(data).hexdigest())
    _write_manifest(remote_dir, name, manifest)


def _sqlite_view() -> None:
    with connections["default"].cursor() as cursor:
        cursor.execute("DROP VIEW IF EXISTS author_names")
        cursor.execute("CREATE VIEW author_names AS SELECT name FROM testapp_author")


BOOKS = {
    "default": "testapp_book",
    "pg": "public.testapp_book",
    "gis": "public.testapp_book",
    "maria": "testapp_book",
}


# Time to restore in the run history and the admin ---------------------------
@pytest.mark.django_db(transaction=True, databases=["default", "pg"])
def test_drills_time_to_restore_is_in_the_history_and_the_admin(
    task_app: Any, workers: Any, remote_dir: Path
) -> None:
    from django.contrib.auth.models import Permission, User
    from django.test import Client
    from django.urls import reverse

    from django_rclone_celery.models import BackupRun

    populate("pg")
    workers.start()
    backup = task_app.send_task("django_rclone_celery.db_backup", kwargs={"database": "pg"})
    newest = backup.get(timeout=120)
    drill = task_app.send_task(
        "django_rclone_celery.db_verify", kwargs={"database": "pg", "restore": True}
    )
    value = drill.get(timeout=120)
    assert value["name"] == newest["name"]
    run = BackupRun.objects.get(task_id=drill.id)
    assert run.result is not None
    seconds = run.result["restore_seconds"]
    assert 0 < seconds <= run.result["duration"]
    assert "inventory" in run.result["compared"]

    user = User.objects.create_user("viewer", password="x", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename="view_backuprun"))
    client = Client()
    client.force_login(user)
    changelist = reverse("admin:django_rclone_celery_backuprun_changelist")
    page = client.get(changelist).content.decode()
    drills = page[page.index('id="restore-drills"') :]
    drills = drills[: drills.index("</table>")]
    row = drills[drills.index("<td>pg</td>") :]
    assert newest["path"] in row
    assert run.finished is not None
    assert run.finished.strftime("%Y-%m-%d %H:%M") in row
    assert f"{seconds:.1f} s" in row
    assert f"{seconds:.1f} s" in page[page.index('id="result_list"') :]  # the run's column

    # A newer backup is not proven until a drill restores it.
    task_app.send_task("django_rclone_celery.db_backup", kwargs={"database": "pg"}).get(timeout=120)
    page = client.get(changelist).content.decode()
    row = page[page.index("<td>pg</td>") :]
    assert "not yet" in row[: row.index("</tr>")]


