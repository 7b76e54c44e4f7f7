"""Restore fidelity: every schema object a backup holds comes back, on real engines.

MariaDB: a view, a trigger, a stored function, a procedure and an event,
created with a definer the restoring user cannot set, survive
``dbbackup``/``dbrestore`` run as a user without SUPER. PostgreSQL: a view,
a materialized view, a function, a trigger and an extension.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zstandard
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections

from django_rclone_celery.compression import chain
from django_rclone_celery.connectors.mysql import DefinerFilter
from django_rclone_celery.exceptions import InvalidBackup, RestoreError
from django_rclone_celery.operations import backup_database, restore_database, verify_backup
from tests.helpers.databases import (
    APP_TABLES,
    damage,
    db_params,
    populate,
    snapshot,
    staging_leftovers,
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


@MARIA
def test_maria_objects_round_trip_as_a_user_without_super(
    remote_dir: Path, drc_config: Any, maria_plain_user: dict[str, str], maria_objects: None
) -> None:
    drc_config(COMPRESSION="zstd")
    populate("maria")
    before = snapshot("maria", APP_TABLES)
    objects = _maria_object_names()
    assert objects == {
        "views": ["author_books"],
        "triggers": ["author_upper"],
        "routines": ["FUNCTION triple", "PROCEDURE add_author"],
        "events": ["nightly_noop"],
    }

    call_command("dbbackup", "--database", "maria")
    [dump] = [p for p in (remote_dir / "db").iterdir() if not p.name.endswith(".json")]
    script = zstandard.ZstdDecompressor().decompressobj().decompress(dump.read_bytes())
    for marker in (b"TRIGGER", b"FUNCTION `triple`", b"PROCEDURE `add_author`", b"EVENT"):
        assert marker in script
    assert b"DEFINER=" not in script

    damage("maria")
    with connections["maria"].cursor() as cursor:
        cursor.execute("DROP VIEW author_books")
        cursor.execute("DROP FUNCTION triple")
        cursor.execute("DROP PROCEDURE add_author")
        cursor.execute("DROP EVENT nightly_noop")
        cursor.execute("DROP TRIGGER author_upper")

    saved = _as_user("maria", maria_plain_user)
    try:
        with connections["maria"].cursor() as cursor:
            cursor.execute("SELECT CURRENT_USER()")
            assert cursor.fetchone()[0].startswith(maria_plain_user["USER"] + "@")
        call_command("dbrestore", "--database", "maria", "--noinput")
    finally:
        _as_user("maria", saved)

    assert snapshot("maria", APP_TABLES) == before
    assert _maria_object_names() == objects
    assert staging_leftovers("maria") == []
    with connections["maria"].cursor() as cursor:
        cursor.execute("SELECT triple(14)")
        assert cursor.fetchone()[0] == 42
        cursor.execute("SELECT SUM(books) FROM author_books")
        assert int(cursor.fetchone()[0]) == len(before["testapp_book"])
        cursor.execute("CALL add_author('lower case')")
        cursor.execute("SELECT COUNT(*) FROM testapp_author WHERE name = 'LOWER CASE'")
        assert cursor.fetchone()[0] == 1  # the procedure ran, and the trigger fired
        cursor.execute(
            "SELECT status, definer FROM information_schema.events WHERE event_name = %s",
            ["nightly_noop"],
        )
        status, definer = cursor.fetchone()
    assert status == "DISABLED"
    assert definer.startswith(maria_plain_user["USER"] + "@")  # the loader owns it now


@MARIA
def test_a_maria_backup_written_with_definers_still_restores_as_a_user_without_super(
    remote_dir: Path,
    drc_config: Any,
    maria_plain_user: dict[str, str],
    maria_objects: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Backups made before the definer filter carry DEFINER=root: the load strips them."""
    from django_rclone_celery.connectors.mysql import MysqlConnector

    drc_config(COMPRESSION="none")
    populate("maria")
    before = snapshot("maria", APP_TABLES)
    with monkeypatch.context() as patched:
        patched.setattr(MysqlConnector, "script_filter", lambda self: None)
        result = backup_database("maria")
    assert b"DEFINER=`root`" in (remote_dir / "db" / result.name).read_bytes()
    damage("maria")
    saved = _as_user("maria", maria_plain_user)
    try:
        restore_database("maria")
    finally:
        _as_user("maria", saved)
    assert snapshot("maria", APP_TABLES) == before
    assert _maria_object_names()["routines"] == ["FUNCTION triple", "PROCEDURE add_author"]


@MARIA
def test_maria_failure_after_the_swap_names_what_is_missing(
    remote_dir: Path, drc_config: Any, monkeypatch: pytest.MonkeyPatch, maria_objects: None
) -> None:
    """The objects follow the table swap; one that cannot be made fails the restore by name."""
    from django_rclone_celery.connectors import mysql

    populate("maria")
    before = snapshot("maria", APP_TABLES)
    backup_database("maria")
    damage("maria")

    real = mysql.MysqlStaging.recreate

    def lose_the_function(self: Any, schema: str, objects: list[Any]) -> list[str]:
        kept = [o for o in objects if o.name != "triple"]
        return [*real(self, schema, kept), *(["function triple (lost)"] if kept != objects else [])]

    monkeypatch.setattr(mysql.MysqlStaging, "recreate", lose_the_function)
    with pytest.raises(RestoreError, match="function triple"):
        restore_database("maria")
    # The tables are the restored ones; the rest of the objects are there.
    assert snapshot("maria", APP_TABLES) == before
    assert "author_books" in _maria_object_names()["views"]
    assert staging_leftovers("maria") == []


def test_definer_filter_touches_only_create_lines() -> None:
    script = (
        b"INSERT INTO `t` VALUES (1,'CREATE DEFINER=`x`@`y` FUNCTION');\n"
        b"/*!50003 CREATE*/ /*!50017 DEFINER=`ro``ot`@`%`*/ /*!50003 TRIGGER tr BEFORE\n"
        b"/*!50106 CREATE*/ /*!50117 DEFINER=`root`@`localhost`*/ /*!50106 EVENT `e` ON\n"
        b"CREATE DEFINER=`root`@`127.0.0.1` FUNCTION `f`(x int) RETURNS int(11)\n"
        b"CREATE DEFINER=`app_role` PROCEDURE `p`()\n"
        b"/*!50013 DEFINER=`root`@`127.0.0.1` SQL SECURITY DEFINER */\n"
    )
    expected = (
        b"INSERT INTO `t` VALUES (1,'CREATE DEFINER=`x`@`y` FUNCTION');\n"
        b"/*!50003 CREATE*/ /*!50017 */ /*!50003 TRIGGER tr BEFORE\n"
        b"/*!50106 CREATE*/ /*!50117 */ /*!50106 EVENT `e` ON\n"
        b"CREATE FUNCTION `f`(x int) RETURNS int(11)\n"
        b"CREATE PROCEDURE `p`()\n"
        b"/*!50013 SQL SECURITY DEFINER */\n"
    )
    for size in (1, 7, 64, len(script)):  # lines split across chunks
        f = chain(DefinerFilter())
        assert f is not None
        out = b"".join(
            bytes(f.feed(memoryview(script[i : i + size]))) for i in range(0, len(script), size)
        )
        assert out + f.finish() == expected


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


@PG
def test_pg_objects_round_trip(remote_dir: Path, drc_config: Any, pg_objects: None) -> None:
    populate("pg")
    before = snapshot("pg", APP_TABLES)
    objects = _pg_object_names()
    assert objects == {
        "views": ["author_books"],
        "matviews": ["book_totals"],
        "functions": ["triple", "upper_name"],
        "triggers": ["author_upper"],
        "extensions": ["pg_trgm"],
    }
    call_command("dbbackup", "--database", "pg")
    damage("pg")
    with connections["pg"].cursor() as cursor:
        cursor.execute("DROP VIEW author_books")
        cursor.execute("DROP MATERIALIZED VIEW book_totals")
        cursor.execute("DROP TRIGGER author_upper ON testapp_author")
        cursor.execute("DROP FUNCTION triple(int)")
        cursor.execute("DROP EXTENSION pg_trgm")

    call_command("dbrestore", "--database", "pg", "--noinput")
    connections["pg"].close()

    assert snapshot("pg", APP_TABLES) == before
    assert _pg_object_names() == objects
    with connections["pg"].cursor() as cursor:
        cursor.execute("SELECT triple(14), similarity('abc', 'abd') > 0")
        assert cursor.fetchone() == (42, True)
        cursor.execute("SELECT SUM(n) FROM book_totals")
        assert int(cursor.fetchone()[0]) == len(before["testapp_book"])
        cursor.execute("INSERT INTO testapp_author (name) VALUES ('lower case') RETURNING name")
        assert cursor.fetchone()[0] == "LOWER CASE"


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


@PG_DEFAULT
def test_exclusion_of_a_referenced_model_is_refused_with_names(clone_store: Path) -> None:
    from django_rclone_celery import pgclone
    from django_rclone_celery.exceptions import ConfigurationError

    populate("pg")
    with pytest.raises(ConfigurationError) as refused:
        pgclone.dump(exclude=["testapp.Author"])
    assert "testapp.Book (author -> testapp.Author)" in str(refused.value)
    assert "-e testapp.Book" in str(refused.value)

    _users_with_groups()
    with pytest.raises(CommandError) as failed:
        call_command("pgclone", "dump", "-e", "auth.User")
    message = str(failed.value)
    assert "admin.LogEntry (user -> auth.User)" in message
    # Its own many-to-many tables go with it: they are not what blocks it.
    assert "groups" not in message
    assert "user_permissions" not in message
    assert not clone_store.exists() or list(clone_store.rglob("*")) == []


@PG_DEFAULT
def test_a_database_constraint_the_models_do_not_know_refuses_too(clone_store: Path) -> None:
    from django_rclone_celery import pgclone
    from django_rclone_celery.exceptions import ConfigurationError

    with connections["pg"].cursor() as cursor:
        cursor.execute(
            "CREATE TABLE drc_book_notes (id int PRIMARY KEY, "
            "book_id int CONSTRAINT drc_note_book REFERENCES testapp_book (id))"
        )
    try:
        with pytest.raises(ConfigurationError, match="table drc_book_notes"):
            pgclone.dump(exclude=["testapp.Book"])
    finally:
        with connections["pg"].cursor() as cursor:
            cursor.execute("DROP TABLE drc_book_notes")


@PG_DEFAULT
def test_an_allowed_exclusion_takes_its_m2m_tables_and_restores(clone_store: Path) -> None:
    from django.contrib.auth.models import Group, User

    from django_rclone_celery import pgclone

    _users_with_groups()
    groups = snapshot("pg", ("auth_group", "auth_group_permissions"))
    key = pgclone.dump(exclude=["auth.User", "admin.LogEntry"])
    manifest = json.loads((clone_store / (key + ".manifest.json")).read_text())
    assert "public.auth_user" in manifest["inventory"]["tables"]  # the table stays, empty
    User.objects.db_manager("pg").create_user("intruder")
    Group.objects.using("pg").all().delete()
    assert pgclone.restore(key) == key
    connections["pg"].close()
    after = snapshot("pg", ("auth_user", "auth_user_groups", "auth_user_user_permissions"))
    assert after == {"auth_user": [], "auth_user_groups": [], "auth_user_user_permissions": []}
    assert snapshot("pg", ("auth_group", "auth_group_permissions")) == groups


@PG_DEFAULT
def test_the_docs_exclusion_example_runs(clone_store: Path) -> None:
    import re

    from django.contrib.sessions.models import Session

    from django_rclone_celery import pgclone

    text = (Path(__file__).parents[2] / "docs" / "pgclone.md").read_text()
    line = re.search(r"^key = pgclone\.dump\(.*exclude=.*\)$", text, re.MULTILINE)
    assert line is not None
    populate("pg")
    _users_with_groups()
    Session.objects.using("pg").create(
        session_key="k" * 32, session_data="x", expire_date="2030-01-01T00:00:00Z"
    )
    before = snapshot("pg", (*APP_TABLES, "auth_user", "auth_user_groups"))
    scope: dict[str, Any] = {"pgclone": pgclone}
    # The docs dump "default"; here that alias is SQLite, so the example runs on "pg".
    exec(line.group(0).replace('database="default"', 'database="pg"'), scope)
    damage("pg")
    pgclone.restore(scope["key"])
    connections["pg"].close()
    assert snapshot("pg", (*APP_TABLES, "auth_user", "auth_user_groups")) == before
    assert snapshot("pg", ("django_session",)) == {"django_session": []}


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


@pytest.mark.parametrize("alias", db_params("default", "pg", "gis", "maria"))
def test_an_honest_backup_passes_the_drill_with_its_time_to_restore(
    alias: str, remote_dir: Path, drc_config: Any
) -> None:
    drc_config(COMPRESSION="zstd")
    populate(alias)
    backup = backup_database(alias)
    manifest = _manifest(remote_dir, backup.name)
    assert "testapp_book" in " ".join(manifest["inventory"]["tables"])
    assert manifest["inventory"]["indexes"]
    if alias == "gis":  # the extension is listed, not its thousand functions
        assert "postgis" in manifest["inventory"]["extensions"]
        assert not [f for f in manifest["inventory"]["functions"] if "st_" in f.lower()]

    result = verify_backup(alias, restore=True)
    assert result.restored
    assert result.restore_seconds is not None
    assert 0 < result.restore_seconds < result.duration
    # Counts are compared where the manifest has the dump's own (SQLite's count(*) here).
    exact = manifest["row_counts_from"] == "dump"
    assert exact or alias != "default"
    assert result.compared == ["inventory", *(["row counts"] if exact else [])]

    # Counts edited in the manifest (and declared the dump's own): the table is listed.
    books = len(snapshot(alias)["testapp_book"])
    key = next((k for k in manifest["row_counts"] if k.endswith("testapp_book")), BOOKS[alias])
    manifest["row_counts"] = {**manifest["row_counts"], key: books + 1000}
    manifest["row_counts_from"] = "dump"
    _write_manifest(remote_dir, backup.name, manifest)
    with pytest.raises(InvalidBackup) as failed:
        verify_backup(alias, restore=True)
    assert re.search(rf"{key}: {books}( rows)? \(manifest: {books + 1000}\)", str(failed.value))
    assert staging_leftovers(alias) == []

    # A manifest written before the inventory: what it has is compared.
    old = {k: v for k, v in manifest.items() if k not in ("inventory", "row_counts_from")}
    _write_manifest(remote_dir, backup.name, old)
    result = verify_backup(alias, restore=True)
    assert result.compared == []
    assert any("no schema inventory" in note for note in result.notes)


@MARIA
def test_the_drill_fails_on_a_maria_backup_that_lost_a_routine(
    remote_dir: Path, drc_config: Any, maria_objects: None
) -> None:
    drc_config(COMPRESSION="zstd")
    populate("maria")
    backup = backup_database("maria")
    assert "triple" in _manifest(remote_dir, backup.name)["inventory"]["functions"]
    assert "inventory" in verify_backup("maria", restore=True).compared

    _rewrite_dump(
        remote_dir,
        backup.name,
        lambda text: re.sub(rb"CREATE FUNCTION `triple`.*?;;\n", b"", text, flags=re.S),
    )
    with pytest.raises(InvalidBackup, match="functions missing: triple") as failed:
        verify_backup("maria", restore=True)
    assert "restored in" in str(failed.value)
    assert staging_leftovers("maria") == []


@pytest.mark.parametrize("alias", db_params("default"))
def test_the_drill_fails_on_a_sqlite_backup_that_lost_a_view(
    alias: str, remote_dir: Path, drc_config: Any
) -> None:
    drc_config(COMPRESSION="zstd")
    populate(alias)
    _sqlite_view()
    try:
        backup = backup_database(alias)
    finally:
        with connections[alias].cursor() as cursor:
            cursor.execute("DROP VIEW author_names")
    assert _manifest(remote_dir, backup.name)["inventory"]["views"] == ["author_names"]
    assert verify_backup(alias, restore=True).compared == ["inventory", "row counts"]

    _rewrite_dump(
        remote_dir,
        backup.name,
        lambda text: re.sub(rb"CREATE VIEW author_names[^\n]*\n", b"", text),
    )
    with pytest.raises(InvalidBackup, match="views missing: author_names"):
        verify_backup(alias, restore=True)


@PG
def test_the_drill_lists_missing_and_extra_objects_of_a_pg_backup(
    remote_dir: Path, drc_config: Any, pg_objects: None
) -> None:
    populate("pg")
    backup = backup_database("pg")
    manifest = _manifest(remote_dir, backup.name)
    inventory = manifest["inventory"]
    assert inventory["materialized views"] == ["public.book_totals"]
    assert inventory["extensions"] == ["pg_trgm", "plpgsql"]
    assert "public.testapp_author.author_upper" in inventory["triggers"]
    assert "public.triple(x integer)" in inventory["functions"]
    assert "inventory" in verify_backup("pg", restore=True).compared

    # The source held a view the backup does not restore; the trigger was not in it.
    inventory["views"].append("public.lost_view")
    inventory["triggers"].remove("public.testapp_author.author_upper")
    _write_manifest(remote_dir, backup.name, manifest)
    with pytest.raises(CommandError) as failed:
        call_command("verifybackup", "--database", "pg", "--restore")
    message = str(failed.value)
    assert "views missing: public.lost_view" in message
    assert "triggers extra: public.testapp_author.author_upper" in message
    assert staging_leftovers("pg") == []


def test_the_weekly_drill_recipe_schedules_every_database(
    drc_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django_rclone_celery.schedules import beat_schedule, schedule_problems

    # The recipe's own databases: its schedules name them, and aliases are checked.
    monkeypatch.setitem(connections.settings, "analytics", dict(connections.settings["pg"]))

    text = (Path(__file__).parents[2] / "docs" / "schedules.md").read_text()
    section = text[text.index("{ #weekly-restore-drill }") :]
    code = section[section.index("```python") + 9 : section.index("```\n", 10)]
    scope: dict[str, Any] = {}
    exec(code.replace("...", "{}"), scope)
    schedules = scope["DJANGO_RCLONE"]["SCHEDULES"]
    assert schedule_problems(schedules) == []
    drc_config(SCHEDULES=schedules)
    entries = sorted(
        (e["kwargs"]["database"], str(e["schedule"]), e["task"]) for e in beat_schedule().values()
    )
    assert [(db, task) for db, _, task in entries] == [
        ("analytics", "django_rclone_celery.db_verify"),
        ("default", "django_rclone_celery.db_verify"),
    ]
    assert all(e["kwargs"]["restore"] is True for e in beat_schedule().values())
    assert entries[0][1] != entries[1][1]  # spread over the night

    # The example project's settings carry the same drill for each of its databases.
    project = Path(__file__).parents[2] / "example_project"
    code = (
        "import json, bookshop.settings as s; "
        "print(json.dumps([s.DJANGO_RCLONE['SCHEDULES'], list(s.DATABASES)]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=project, capture_output=True, text=True, check=True
    ).stdout
    project_schedules, databases = json.loads(out)
    drills = {k: v for k, v in project_schedules.items() if v["task"].endswith(".db_verify")}
    assert sorted(d["kwargs"]["database"] for d in drills.values()) == sorted(databases)
    assert all(d["kwargs"]["restore"] is True for d in drills.values())
    assert schedule_problems(project_schedules) == []


def test_the_difference_listing() -> None:
    from django_rclone_celery.fidelity import count_differences, inventory_differences

    expected = {"views": ["v1", "v2"], "triggers": [f"t{i:02d}" for i in range(12)]}
    actual = {"views": ["v2", "v3"], "triggers": [], "events": ["e"]}
    assert inventory_differences(expected, actual) == [
        "triggers missing: t00, t01, t02, t03, t04, t05, t06, t07, t08, t09 and 2 more",
        "views missing: v1",
        "views extra: v3",
    ]  # "events" is not in the (older) manifest: not compared
    assert count_differences({"a": 3, "b": 0, "gone": 2}, {"a": 4, "b": 0, "empty": 0}) == [
        "table a: 4 rows (manifest: 3)",
        "table gone: no such table (manifest: 2)",
    ]


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        pytest.param(
            "pg",
            'odd"name',
            marks=pytest.mark.django_db(transaction=True, databases=["default", "pg"]),
        ),
        pytest.param("maria", "odd`name", marks=MARIA),
    ],
)
def test_a_table_named_with_a_quote_is_counted_and_round_trips(
    alias: str, name: str, remote_dir: Path, drc_config: Any
) -> None:
    """Counting rows quotes a name as SQL must: Django's quote_name leaves a quote
    inside a name as it is, which broke every backup of such a table."""
    from django_rclone_celery.connectors import get_connector

    connector = get_connector(alias)
    quoted = connector.quote(name)
    with connections[alias].cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {quoted}")
        cursor.execute(f"CREATE TABLE {quoted} (id int PRIMARY KEY, v varchar(10))")
        cursor.execute(f"INSERT INTO {quoted} VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    try:
        counts = connector.table_counts()
        assert 3 in [n for key, n in counts.items() if name in key]
        backup_database(alias)
        with connections[alias].cursor() as cursor:
            cursor.execute(f"DELETE FROM {quoted}")
        restore_database(alias)
        connections[alias].close()
        with connections[alias].cursor() as cursor:
            cursor.execute(f"SELECT id, v FROM {quoted} ORDER BY id")
            assert [tuple(row) for row in cursor.fetchall()] == [(1, "a"), (2, "b"), (3, "c")]
        assert verify_backup(alias, restore=True).restored
    finally:
        connections[alias].close()
        with connections[alias].cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {quoted}")
