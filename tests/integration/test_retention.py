"""Retention: the pure policy on fixed clocks, then cleanups of a real local remote.

The first part calls :func:`retention.plan` with hand-made backups and a fixed
"now". The second writes backup objects (named by the settings' template) into
a local-directory remote and lets the real rclone binary delete them.
"""

from __future__ import annotations

import json
import os
from datetime import date, datetime, timedelta, timezone
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from django_rclone_celery import naming
from django_rclone_celery.conf import Settings, get_settings
from django_rclone_celery.exceptions import ConfigurationError
from django_rclone_celery.operations import cleanup_backups
from django_rclone_celery.results import BackupInfo
from django_rclone_celery.retention import Plan, Policy, plan
from tests.helpers.remotes import remote_files

UTC = timezone.utc
NOW = datetime(2025, 2, 4, 12, 0, tzinfo=UTC)  # a Tuesday, ISO week 6 of 2025


def at(text: str) -> datetime:
    """``"2025-01-31 23:59:59"`` as an aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def info(created: datetime, name: str | None = None) -> BackupInfo:
    name = name or f"default-{created:%Y-%m-%d-%H%M%S}.dump"
    return BackupInfo(
        database="default",
        name=name,
        path=f"r:db/{name}",
        size=1,
        created=created,
        modified=created,
        has_manifest=False,
    )


def backups(*stamps: str) -> list[BackupInfo]:
    """Backups at these UTC times, newest first (as list_backups returns them)."""
    return sorted((info(at(s)) for s in stamps), key=lambda b: b.created, reverse=True)


def kept(result: Plan) -> dict[str, tuple[str, ...]]:
    """Kept backups as {"YYYY-mm-dd HH:MM:SS": reasons}, newest first."""
    return {f"{k.backup.created:%Y-%m-%d %H:%M:%S}": k.reasons for k in result.kept}


def deleted(result: Plan) -> list[str]:
    return [f"{b.created:%Y-%m-%d %H:%M:%S}" for b in result.deleted]


# --- the pure policy -----------------------------------------------------------------------


def test_count_only_is_todays_behaviour() -> None:
    # All new rules at 0: exactly the newest N, the rest deleted, newest first.
    items = [info(NOW - timedelta(hours=7 * i)) for i in range(12)]
    for keep in (1, 2, 5, 12, 30):
        result = plan(items, Policy(last=keep), NOW)
        assert [k.backup for k in result.kept] == items[:keep]
        assert result.deleted == items[keep:]
        assert all(k.reasons == ("last",) for k in result.kept)


def test_empty_list_plans_nothing() -> None:
    result = plan([], Policy(last=3, daily=7, weekly=4, monthly=12, within_days=30), NOW)
    assert (result.kept, result.deleted) == ([], [])


def test_newest_is_kept_even_when_every_other_rule_would_drop_it() -> None:
    # The only backups are a year old: keep-within keeps none, KEEP=1 keeps the newest.
    items = backups("2024-01-01 00:00:00", "2024-01-02 00:00:00", "2024-01-03 00:00:00")
    result = plan(items, Policy(last=1, within_days=30), NOW)
    assert kept(result) == {"2024-01-03 00:00:00": ("last",)}
    assert deleted(result) == ["2024-01-02 00:00:00", "2024-01-01 00:00:00"]


def test_daily_keeps_the_newest_of_each_day_with_several_backups() -> None:
    items = backups(
        "2025-02-01 01:00:00",
        "2025-02-01 13:00:00",
        "2025-02-01 23:59:59",
        "2025-02-02 00:00:00",
        "2025-02-02 12:00:00",
        "2025-02-03 06:00:00",
        "2025-02-03 18:00:00",
    )
    result = plan(items, Policy(last=1, daily=3), NOW)
    assert kept(result) == {
        "2025-02-03 18:00:00": ("last", "daily"),
        "2025-02-02 12:00:00": ("daily",),
        "2025-02-01 23:59:59": ("daily",),
    }
    assert deleted(result) == [
        "2025-02-03 06:00:00",
        "2025-02-02 00:00:00",
        "2025-02-01 13:00:00",
        "2025-02-01 01:00:00",
    ]


def test_daily_counts_days_that_have_a_backup_and_skips_gaps() -> None:
    # Backups on Jan 1, 2, 5 and 9: "last 3 days" means the last 3 days WITH a backup.
    items = backups(
        "2025-01-01 02:00:00",
        "2025-01-02 02:00:00",
        "2025-01-05 02:00:00",
        "2025-01-09 02:00:00",
    )
    result = plan(items, Policy(last=1, daily=3), NOW)
    assert list(kept(result)) == [
        "2025-01-09 02:00:00",
        "2025-01-05 02:00:00",
        "2025-01-02 02:00:00",
    ]
    assert deleted(result) == ["2025-01-01 02:00:00"]


def test_daily_larger_than_history_keeps_one_per_day() -> None:
    items = backups("2025-01-01 01:00:00", "2025-01-01 02:00:00", "2025-01-02 01:00:00")
    result = plan(items, Policy(last=1, daily=100), NOW)
    assert list(kept(result)) == ["2025-01-02 01:00:00", "2025-01-01 02:00:00"]
    assert deleted(result) == ["2025-01-01 01:00:00"]


def test_weekly_splits_sunday_night_from_monday_morning() -> None:
    # ISO weeks start on Monday: Sunday 23:59:59 and Monday 00:00:00 are different weeks.
    items = backups(
        "2025-01-20 00:00:00",  # Monday, week 4
        "2025-01-19 23:59:59",  # Sunday, week 3
        "2025-01-13 00:00:00",  # Monday, week 3
        "2025-01-12 23:59:59",  # Sunday, week 2
    )
    result = plan(items, Policy(last=1, weekly=3), NOW)
    assert kept(result) == {
        "2025-01-20 00:00:00": ("last", "weekly"),
        "2025-01-19 23:59:59": ("weekly",),
        "2025-01-12 23:59:59": ("weekly",),
    }
    assert deleted(result) == ["2025-01-13 00:00:00"]


def test_weekly_uses_iso_weeks_across_the_new_year() -> None:
    # Mon 2024-12-30 .. Thu 2025-01-02 are all ISO week 1 of 2025; Sun 2024-12-29 is week 52.
    items = backups(
        "2024-12-29 10:00:00",
        "2024-12-30 10:00:00",
        "2024-12-31 10:00:00",
        "2025-01-02 10:00:00",
    )
    result = plan(items, Policy(last=1, weekly=2), NOW)
    assert list(kept(result)) == ["2025-01-02 10:00:00", "2024-12-29 10:00:00"]
    assert deleted(result) == ["2024-12-31 10:00:00", "2024-12-30 10:00:00"]


def test_monthly_splits_at_midnight_utc_and_keeps_the_newest_of_each_month() -> None:
    items = backups(
        "2024-11-15 00:00:00",
        "2024-12-01 00:00:00",
        "2024-12-31 23:59:59",
        "2025-01-01 00:00:00",
        "2025-01-31 23:59:59",
        "2025-02-01 00:00:00",
        "2025-02-03 00:00:00",
    )
    result = plan(items, Policy(last=1, monthly=3), NOW)
    assert kept(result) == {
        "2025-02-03 00:00:00": ("last", "monthly"),
        "2025-01-31 23:59:59": ("monthly",),
        "2024-12-31 23:59:59": ("monthly",),
    }
    assert deleted(result) == [
        "2025-02-01 00:00:00",
        "2025-01-01 00:00:00",
        "2024-12-01 00:00:00",
        "2024-11-15 00:00:00",
    ]


def test_periods_are_utc_whatever_the_timestamps_offset() -> None:
    # 01:30 on Feb 1 at +02:00 is 23:30 on Jan 31 UTC: it belongs to January.
    paris = timezone(timedelta(hours=2))
    late_january = info(datetime(2025, 2, 1, 1, 30, tzinfo=paris), name="a")
    early_january = info(at("2025-01-10 00:00:00"), name="b")
    february = info(at("2025-02-02 00:00:00"), name="c")
    result = plan([february, late_january, early_january], Policy(last=1, monthly=2), NOW)
    assert [k.backup.name for k in result.kept] == ["c", "a"]
    assert [b.name for b in result.deleted] == ["b"]


def test_keep_within_counts_back_from_now_and_includes_the_boundary() -> None:
    thirty_days = NOW - timedelta(days=30)
    items = [
        info(NOW - timedelta(hours=1), name="fresh"),
        info(NOW - timedelta(days=29), name="29d"),
        info(thirty_days, name="30d"),
        info(thirty_days - timedelta(seconds=1), name="30d1s"),
        info(NOW - timedelta(days=400), name="old"),
    ]
    result = plan(items, Policy(last=1, within_days=30), NOW)
    assert [(k.backup.name, k.reasons) for k in result.kept] == [
        ("fresh", ("last", "within")),
        ("29d", ("within",)),
        ("30d", ("within",)),
    ]
    assert [b.name for b in result.deleted] == ["30d1s", "old"]


def test_delete_older_than_30_days_recipe() -> None:
    # The documented recipe: DB_CLEANUP_KEEP = 1 + DB_CLEANUP_KEEP_WITHIN_DAYS = 30.
    items = [info(NOW - timedelta(days=d, hours=3)) for d in range(60)]
    result = plan(items, Policy(last=1, within_days=30), NOW)
    assert [k.backup for k in result.kept] == items[:30]  # 0..29 days and 3 hours old
    assert result.deleted == items[30:]


def test_rules_overlap_and_a_backup_lists_every_rule_that_keeps_it() -> None:
    items = backups(
        "2025-02-04 02:00:00",
        "2025-02-03 02:00:00",
        "2025-01-31 02:00:00",
        "2025-01-20 02:00:00",
        "2024-12-15 02:00:00",
        "2024-10-01 02:00:00",
    )
    result = plan(items, Policy(last=2, daily=2, weekly=2, monthly=3, within_days=3), NOW)
    assert kept(result) == {
        "2025-02-04 02:00:00": ("last", "daily", "weekly", "monthly", "within"),
        "2025-02-03 02:00:00": ("last", "daily", "within"),
        "2025-01-31 02:00:00": ("weekly", "monthly"),
        "2024-12-15 02:00:00": ("monthly",),
    }
    assert deleted(result) == ["2025-01-20 02:00:00", "2024-10-01 02:00:00"]


def test_grandfather_father_son_over_a_year_of_nightly_backups() -> None:
    # One backup at 02:15 every night from 2024-01-01 to 2025-02-04.
    nights = [date(2024, 1, 1) + timedelta(days=i) for i in range(401)]
    assert nights[-1] == date(2025, 2, 4)
    items = [info(datetime(d.year, d.month, d.day, 2, 15, tzinfo=UTC)) for d in reversed(nights)]
    result = plan(items, Policy(last=1, daily=7, weekly=4, monthly=12), NOW)
    got = {k.backup.created.date(): k.reasons for k in result.kept}
    daily = [date(2025, 2, d) for d in (4, 3, 2, 1)] + [date(2025, 1, d) for d in (31, 30, 29)]
    # Newest of ISO weeks 6 (Tue Feb 4), 5, 4, 3 of 2025: the latter end on Sundays.
    weekly = [date(2025, 2, 4), date(2025, 2, 2), date(2025, 1, 26), date(2025, 1, 19)]
    monthly = [date(2025, 2, 4), date(2025, 1, 31)] + [
        date(2024, m, d)
        for m, d in ((12, 31), (11, 30), (10, 31), (9, 30), (8, 31), (7, 31), (6, 30), (5, 31))
    ]
    monthly += [date(2024, 4, 30), date(2024, 3, 31)]
    assert len(monthly) == 12
    assert sorted(got, reverse=True) == sorted(set(daily + weekly + monthly), reverse=True)
    assert got[date(2025, 2, 4)] == ("last", "daily", "weekly", "monthly")
    assert got[date(2025, 2, 2)] == ("daily", "weekly")
    assert got[date(2025, 1, 31)] == ("daily", "monthly")
    assert got[date(2025, 1, 19)] == ("weekly",)
    assert got[date(2024, 3, 31)] == ("monthly",)
    assert len(result.deleted) == 401 - len(got)
    # Kept and deleted split the input and keep its order.
    merged = sorted(
        [k.backup for k in result.kept] + result.deleted, key=lambda b: b.created, reverse=True
    )
    assert merged == items


def test_unsorted_input_is_sorted_and_equal_times_keep_the_callers_order() -> None:
    t = at("2025-02-01 00:00:00")
    first, second = info(t, name="first"), info(t, name="second")
    older = info(t - timedelta(days=3), name="older")
    result = plan([older, first, second], Policy(last=1, daily=5), NOW)
    assert [(k.backup.name, k.reasons) for k in result.kept] == [
        ("first", ("last", "daily")),
        ("older", ("daily",)),
    ]
    assert [b.name for b in result.deleted] == ["second"]


def test_naive_times_are_taken_as_utc() -> None:
    naive = info(datetime(2025, 1, 31, 23, 0), name="naive")
    result = plan([naive], Policy(last=1, within_days=5), datetime(2025, 2, 4, 12, 0))
    assert [(k.backup.name, k.reasons) for k in result.kept] == [("naive", ("last", "within"))]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"last": 0}, "keep must be at least 1"),
        ({"daily": -1}, "keep daily must not be negative"),
        ({"weekly": -1}, "keep weekly must not be negative"),
        ({"monthly": -2}, "keep monthly must not be negative"),
        ({"within_days": -1}, "keep within_days must not be negative"),
    ],
)
def test_policy_refuses_bad_counts(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Policy(**kwargs)


def test_policy_from_settings_and_keep_overrides_only_the_count() -> None:
    settings = Settings(
        remote="r:",
        db_cleanup_keep=4,
        db_cleanup_keep_daily=7,
        db_cleanup_keep_weekly=5,
        db_cleanup_keep_monthly=12,
        db_cleanup_keep_within_days=30,
    )
    assert Policy.from_settings(settings) == Policy(
        last=4, daily=7, weekly=5, monthly=12, within_days=30
    )
    assert Policy.from_settings(settings, keep=2).last == 2
    assert Policy.from_settings(settings, keep=2).within_days == 30


def test_system_checks_report_each_bad_rule_with_its_own_id() -> None:
    from django.core import checks
    from django.test import override_settings

    from django_rclone_celery.checks import check_settings
    from django_rclone_celery.conf import validate

    zeros = {
        "REMOTE": "r:",
        "DB_CLEANUP_KEEP": 1,
        "DB_CLEANUP_KEEP_DAILY": 0,
        "DB_CLEANUP_KEEP_WEEKLY": 0,
        "DB_CLEANUP_KEEP_MONTHLY": 0,
        "DB_CLEANUP_KEEP_WITHIN_DAYS": 0,
    }
    assert validate(zeros) == []
    negative = {k: -1 if k.startswith("DB_CLEANUP_KEEP_") else v for k, v in zeros.items()}
    with override_settings(DJANGO_RCLONE=negative):
        messages = check_settings()
    assert sorted((m.id, m.level) for m in messages) == [
        (f"django_rclone_celery.E01{n}", checks.ERROR) for n in (2, 3, 4, 5)
    ]
    assert any("DB_CLEANUP_KEEP_WEEKLY must not be negative" in m.msg for m in messages)


# --- end to end: the real rclone binary on a local-directory remote -------------------------


def write_backups(db: Path, times: list[datetime], *, manifest_every: int = 2) -> list[str]:
    """Backup objects named by the settings' template; every other one gets a manifest."""
    settings = get_settings()
    db.mkdir(parents=True, exist_ok=True)
    names = []
    for i, when in enumerate(times):
        name = naming.render(settings, database="default", ext="sqlite3.zst", when=when)
        (db / name).write_bytes(b"backup " + name.encode())
        if i % manifest_every == 0:
            (db / naming.manifest_name(name)).write_text("{}")
        names.append(name)
    return names


def expected_files(db: Path, names: list[str]) -> list[str]:
    """The remote files of ``names``: each backup and, if it was given one, its manifest."""
    files = []
    for name in names:
        files.append(f"db/{name}")
        if (db / naming.manifest_name(name)).exists():
            files.append(f"db/{naming.manifest_name(name)}")
    return sorted(files)


def test_cleanup_applies_the_policy_and_manifests_go_with_their_backups(
    remote_dir: Path, drc_config: Any
) -> None:
    drc_config(
        DB_FILENAME_TEMPLATE="{database}_{datetime}.{ext}",
        DB_DATE_FORMAT="%Y%m%dT%H%M%SZ",
        DB_CLEANUP_KEEP=2,
        DB_CLEANUP_KEEP_DAILY=3,
        DB_CLEANUP_KEEP_MONTHLY=2,
    )
    db = remote_dir / "db"
    times = [
        at("2025-02-04 06:00:00"),
        at("2025-02-04 02:00:00"),
        at("2025-02-03 18:00:00"),
        at("2025-02-03 02:00:00"),
        at("2025-02-01 02:00:00"),
        at("2025-01-31 02:00:00"),
        at("2025-01-30 02:00:00"),
        at("2024-12-31 02:00:00"),
        at("2024-12-30 02:00:00"),
    ]
    names = write_backups(db, times)
    assert names[0] == "default_20250204T060000Z.sqlite3.zst"
    (db / "maria_20200101T000000Z.sql").write_bytes(b"another alias: never cleaned here")
    want = [names[0], names[1], names[2], names[4], names[5]]
    before = remote_files(remote_dir)

    result = cleanup_backups("default", now=NOW)

    assert result.kept == want
    assert result.deleted == [names[3], names[6], names[7], names[8]]
    assert result.reasons == {
        names[0]: ["last", "daily", "monthly"],
        names[1]: ["last"],
        names[2]: ["daily"],
        names[4]: ["daily"],
        names[5]: ["monthly"],
    }
    assert result.dry_run is False
    remaining = sorted([*expected_files(db, want), "db/maria_20200101T000000Z.sql"])
    assert remote_files(remote_dir) == remaining
    # Every manifest of a deleted backup went with it; none of a kept one did.
    gone = set(before) - set(remaining)
    assert gone == {f"db/{n}" for n in result.deleted} | {
        f"db/{naming.manifest_name(n)}" for n in (names[6], names[8])
    }
    # The result is JSON-ready, with the old keys still there.
    payload = result.as_dict()
    assert {"database", "kept", "deleted", "run_id", "operation", "status"} <= set(payload)
    assert json.loads(json.dumps(payload))["reasons"][names[5]] == ["monthly"]


def test_cleanup_dry_run_deletes_nothing_not_even_stale_partials(
    remote_dir: Path, drc_config: Any
) -> None:
    drc_config(DB_CLEANUP_KEEP=1, DB_CLEANUP_KEEP_WITHIN_DAYS=30)
    db = remote_dir / "db"
    names = write_backups(db, [NOW - timedelta(days=d, hours=1) for d in (0, 10, 29, 31, 90)])
    partial = db / f"{names[0]}{naming.PARTIAL_MARKER}abc"
    partial.write_bytes(b"killed upload")
    old = (NOW - timedelta(days=5)).timestamp()
    os.utime(partial, (old, old))
    before = remote_files(remote_dir)

    dry = cleanup_backups("default", dry_run=True, now=NOW)

    assert (dry.kept, dry.deleted, dry.dry_run) == (names[:3], names[3:], True)
    assert remote_files(remote_dir) == before

    real = cleanup_backups("default", now=NOW)

    assert (real.kept, real.deleted, real.dry_run) == (dry.kept, dry.deleted, False)
    assert remote_files(remote_dir) == expected_files(db, names[:3])  # partial swept too


def test_all_new_rules_off_keeps_exactly_the_newest_n(remote_dir: Path, drc_config: Any) -> None:
    drc_config(DB_CLEANUP_KEEP=3)
    db = remote_dir / "db"
    # Every day and month differs, so any daily or monthly rule would keep more.
    names = write_backups(db, [NOW - timedelta(days=40 * i) for i in range(6)])
    result = cleanup_backups("default", now=NOW)
    assert (result.kept, result.deleted) == (names[:3], names[3:])
    assert remote_files(remote_dir) == expected_files(db, names[:3])


def call(*args: str) -> str:
    out = StringIO()
    call_command("cleanupbackups", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.mark.django_db  # the real run records itself in the ledger
def test_cleanupbackups_command_dry_run_then_real(remote_dir: Path, drc_config: Any) -> None:
    drc_config(DB_CLEANUP_KEEP=1, DB_CLEANUP_KEEP_DAILY=2, DB_CLEANUP_KEEP_WEEKLY=0)
    db = remote_dir / "db"
    now = datetime.now(UTC)
    # Exactly a day apart, so each is on its own UTC day whatever the time now.
    names = write_backups(db, [now - timedelta(days=d) for d in range(5)])
    before = remote_files(remote_dir)

    text = call("--dry-run", "-d", "default")

    assert remote_files(remote_dir) == before
    lines = text.splitlines()
    assert lines[0] == "Kept 2 backups of default:"
    assert lines[1] == f"  {names[0]}  (last, daily)"
    assert lines[2] == f"  {names[1]}  (daily)"
    assert lines[3] == "Would delete 3 backups of default:"
    assert lines[4:7] == [f"  {n}" for n in names[2:]]
    assert "Dry run: nothing was deleted." in lines[7]

    payload = json.loads(call("--database", "default", "--json"))

    assert payload["kept"] == names[:2]
    assert payload["deleted"] == names[2:]
    assert payload["reasons"] == {names[0]: ["last", "daily"], names[1]: ["daily"]}
    assert payload["dry_run"] is False
    assert remote_files(remote_dir) == expected_files(db, names[:2])

    text = call()  # nothing left to delete

    assert "Deleted 0 backups of default:" in text


def test_cleanupbackups_refuses_unknown_alias_and_bad_settings(
    remote_dir: Path, drc_config: Any
) -> None:
    db = remote_dir / "db"
    write_backups(db, [NOW - timedelta(days=d) for d in range(3)])
    before = remote_files(remote_dir)
    with pytest.raises(CommandError, match="unknown database alias 'nope'"):
        call("-d", "nope")
    drc_config(DB_CLEANUP_KEEP_WITHIN_DAYS=-1)
    with pytest.raises(CommandError, match=r"DB_CLEANUP_KEEP_WITHIN_DAYS.*E015"):
        call("--dry-run")
    assert remote_files(remote_dir) == before


def test_documented_policies() -> None:
    """docs/examples/retention.py: valid settings that do what docs/settings.md says."""
    import runpy

    from django_rclone_celery.conf import _build, validate

    examples = runpy.run_path(str(Path(__file__).parents[2] / "docs/examples/retention.py"))
    nightly = [info(NOW - timedelta(days=d, hours=10)) for d in range(400)]

    older_than_30 = examples["OLDER_THAN_30_DAYS"]
    assert validate(older_than_30) == []
    result = plan(nightly, Policy.from_settings(_build(older_than_30)), NOW)
    assert [k.backup for k in result.kept] == nightly[:30]
    stale = [info(NOW - timedelta(days=d)) for d in (45, 60)]  # backups stopped 45 days ago
    result = plan(stale, Policy.from_settings(_build(older_than_30)), NOW)
    assert [k.backup for k in result.kept] == stale[:1]

    gfs = examples["DJANGO_RCLONE"]
    assert validate(gfs) == []
    result = plan(nightly, Policy.from_settings(_build(gfs)), NOW)
    # Dailies Jan 29 - Feb 4; weeklies beyond them Jan 26 and 19 (Sundays); monthlies
    # beyond them the last days of Dec 2024 back to Mar 2024.
    assert len(result.kept) == 7 + 2 + 10
    assert [k.reasons for k in result.kept[:3]] == [
        ("last", "daily", "weekly", "monthly"),
        ("last", "daily"),
        ("last", "daily", "weekly"),
    ]
    assert result.kept[-1].reasons == ("monthly",)
    assert NOW - result.kept[-1].backup.created > timedelta(days=300)
