"""pgclone's pure parts: keys, settings and option resolution, pg_restore error policy."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from django.core import checks

from django_rclone_celery.checks import check_pgclone_settings
from django_rclone_celery.exceptions import (
    BackupNotFound,
    ConfigurationError,
    InvalidBackup,
    RestoreError,
)
from django_rclone_celery.pgclone import keys
from django_rclone_celery.pgclone.conf import get_pgclone_settings, resolve, validate
from django_rclone_celery.pgclone.dump import exclude_args
from django_rclone_celery.pgclone.restore import HARMLESS_ERRORS, check_errors

# Keys -------------------------------------------------------------------


def test_keys_have_django_pgclones_shape_and_sort_by_age() -> None:
    when = datetime(2026, 11, 22, 3, 4, 5, 678901, tzinfo=timezone.utc)
    key = keys.make(instance="web-1.prod", database="default", config="none", when=when)
    assert key == "web-1_prod/default/none/2026-11-22-03-04-05-678901.dump"
    parsed = keys.parse(key)
    assert parsed is not None
    assert (parsed.instance, parsed.database, parsed.config) == ("web-1_prod", "default", "none")
    assert parsed.created == when
    later = keys.make(instance="a", database="b", config="c", when=when.replace(second=6))
    earlier = keys.make(instance="a", database="b", config="c", when=when.replace(second=4))
    assert keys.newest([earlier, later], "a/") == later
    assert keys.newest([earlier, later], earlier) == earlier  # an exact key wins
    with pytest.raises(BackupNotFound):
        keys.newest([earlier], "z/")


@pytest.mark.parametrize(
    ("path", "strict", "ok"),
    [
        ("i/d/c/2026-01-02-03-04-05-000006.dump", True, True),
        ("i/d/c/2026-01-02-03-04-05-000006.dump.manifest.json", True, False),
        ("i/d/c/2026-01-02-03-04-05-000006.dump.partial-abc", True, False),
        ("hand/made.dump", True, False),
        ("hand/made.dump", False, True),
        ("hand/made.sql", False, False),
    ],
)
def test_is_key(path: str, strict: bool, ok: bool) -> None:
    assert keys.is_key(path, strict=strict) is ok


@pytest.mark.parametrize("bad", ["/etc/passwd", "a/../b", "./a", "a//b", "remote:x", "a\\b"])
def test_user_keys_cannot_leave_the_storage_location(bad: str) -> None:
    with pytest.raises(InvalidBackup):
        keys.check_path(bad)


def test_local_keys() -> None:
    assert keys.local_name(":snap_1") == "snap_1"
    for bad in ("snap", ":", ":a b", ":x;drop", ":" + "x" * 64):
        with pytest.raises(InvalidBackup):
            keys.local_name(bad)


# Settings -----------------------------------------------------------------


def test_defaults_are_django_pgclones(settings: Any) -> None:
    s = get_pgclone_settings()
    assert (s.allow_dump, s.allow_restore, s.allow_copy) == (True, True, True)
    assert s.database == "default"
    assert s.pre_swap_hooks == ("migrate",)
    assert s.pre_dump_hooks == ()
    assert s.exclude == ()
    assert s.reversible is False
    assert s.validate_dump_keys is True
    assert s.conn_db == "postgres"
    assert s.instance  # the host name
    assert s.session_settings() == {}


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_conn_db_avoids_a_project_database_named_postgres(settings: Any) -> None:
    settings.DATABASES = {
        **settings.DATABASES,
        "other": {**settings.DATABASES["pg"], "NAME": "postgres"},
    }
    assert get_pgclone_settings().conn_db == "template1"


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"PGCLONE_ALLOW_DUMP": "no"}, "django_rclone_celery.E101"),
        ({"PGCLONE_PRE_SWAP_HOOKS": "migrate"}, "django_rclone_celery.E101"),
        ({"PGCLONE_EXCLUDE": ["auth.User", 3]}, "django_rclone_celery.E101"),
        ({"PGCLONE_DATABASE": ""}, "django_rclone_celery.E101"),
        ({"PGCLONE_STORAGE_LOCATION": 5}, "django_rclone_celery.E101"),
        ({"PGCLONE_CONFIGS": {"x": {"exclud": []}}}, "django_rclone_celery.E102"),
        ({"PGCLONE_CONFIGS": {"x": {"reversible": "yes"}}}, "django_rclone_celery.E102"),
        ({"PGCLONE_CONFIGS": {"x": []}}, "django_rclone_celery.E102"),
        ({"PGCLONE_STATEMENT_TIMEOUT": "soon"}, "django_rclone_celery.E103"),
        ({"PGCLONE_LOCK_TIMEOUT": -1}, "django_rclone_celery.E103"),
        ({"PGCLONE_S3_CONFIG": {}}, "django_rclone_celery.W101"),
    ],
)
def test_each_bad_setting_has_a_stable_id(values: dict[str, Any], problem: str) -> None:
    assert [p.id for p in validate(values)] == [problem]


def test_good_settings_validate_and_bad_ones_raise_and_are_checked(settings: Any) -> None:
    good = {
        "PGCLONE_CONFIGS": {"staging": {"exclude": ["auth.User"], "reversible": True}},
        "PGCLONE_STATEMENT_TIMEOUT": 5000,
        "PGCLONE_LOCK_TIMEOUT": "30s",
        "PGCLONE_CONN_DB": "template1",
    }
    assert validate(good) == []
    settings.PGCLONE_REVERSIBLE = "yes"
    with pytest.raises(ConfigurationError, match=r"PGCLONE_REVERSIBLE.*E101"):
        get_pgclone_settings()
    messages = check_pgclone_settings()
    assert [(m.id, m.level) for m in messages] == [("django_rclone_celery.E101", checks.ERROR)]


def test_options_resolve_flag_then_config_then_setting(settings: Any) -> None:
    settings.PGCLONE_INSTANCE = "from-setting"
    settings.PGCLONE_REVERSIBLE = True
    settings.PGCLONE_EXCLUDE = ["auth.Group"]
    settings.PGCLONE_CONFIGS = {
        "cfg": {"instance": "from-config", "reversible": False, "storage_location": "r:cfg"}
    }
    plain = resolve()
    assert (plain.instance, plain.reversible, plain.exclude) == (
        "from-setting",
        True,
        ("auth.Group",),
    )
    assert plain.config == "none"
    assert plain.storage_location.endswith("/pgclone")  # <REMOTE>/pgclone

    by_config = resolve(config="cfg")
    assert by_config.config == "cfg"
    assert (by_config.instance, by_config.reversible) == ("from-config", False)
    assert by_config.storage_location == "r:cfg"
    assert by_config.exclude == ("auth.Group",)  # the config does not set it

    flags = resolve(config="cfg", instance="from-flag", reversible=True, storage_location="r:x")
    assert (flags.instance, flags.reversible, flags.storage_location) == ("from-flag", True, "r:x")
    assert flags.config == "cfg"
    # Options that change what is dumped make the key's config "none".
    for altered in ({"exclude": []}, {"pre_dump_hooks": ["x"]}, {"pre_swap_hooks": []}):
        assert resolve(config="cfg", **altered).config == "none"

    with pytest.raises(ConfigurationError, match="not a configuration"):
        resolve(config="nope")


def test_storage_location_setting(settings: Any) -> None:
    settings.PGCLONE_STORAGE_LOCATION = "s3:bucket/clones"
    assert resolve().storage_location == "s3:bucket/clones"


# Dump arguments -------------------------------------------------------------


def test_exclude_becomes_quoted_exclude_table_data() -> None:
    assert exclude_args(("testapp.Book", "testapp.author")) == (
        '--exclude-table-data="testapp_book"',
        '--exclude-table-data="testapp_author"',
    )
    with pytest.raises(ConfigurationError, match="not an installed model"):
        exclude_args(("nope",))


# pg_restore errors ------------------------------------------------------------

OWNER_ERROR = """pg_restore: while PROCESSING TOC:
pg_restore: from TOC entry 4242; 0 0 COMMENT EXTENSION plpgsql
pg_restore: error: could not execute query: ERROR:  must be owner of extension plpgsql
Command was: COMMENT ON EXTENSION plpgsql IS 'PL/pgSQL procedural language';
"""


def test_only_allow_listed_errors_are_ignored() -> None:
    assert len(HARMLESS_ERRORS) == 1
    ok = OWNER_ERROR + "pg_restore: warning: errors ignored on restore: 1\n"
    assert len(check_errors(ok)) == 1

    harmful = (
        OWNER_ERROR
        + 'pg_restore: error: could not execute query: ERROR:  relation "x" does not exist\n'
        + "pg_restore: warning: errors ignored on restore: 2\n"
    )
    with pytest.raises(RestoreError, match='relation "x" does not exist'):
        check_errors(harmful)
    # A stderr tail that lost errors (2 reported, 1 seen) is not trusted.
    with pytest.raises(RestoreError):
        check_errors(OWNER_ERROR + "pg_restore: warning: errors ignored on restore: 2\n")
    # A fatal error has no "errors ignored" line.
    with pytest.raises(RestoreError, match="could not read input"):
        check_errors("pg_restore: error: could not read input file: end of file\n")


# Hook routing --------------------------------------------------------------
