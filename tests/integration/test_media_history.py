"""Media backups that never destroy media (issue #12): guards, history, point-in-time restore.

Every test runs the real rclone against a local-directory remote and, where
marked, against moto's S3 API on loopback with an rclone crypt remote over it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from django_rclone_celery import signals
from django_rclone_celery.conf import max_delete_limit, validate
from django_rclone_celery.exceptions import BackupNotFound, ConfigurationError, SyncRefused
from django_rclone_celery.media_history import Point, parse_stamp, select
from django_rclone_celery.operations import (
    backup_media,
    cleanup_media,
    list_media,
    list_media_points,
    restore_media,
)
from tests.helpers.media import FIRST, REMOTE_KINDS, Listing, Remote, hashes, open_remote, write
from tests.helpers.prompts import Prompts, Terminal

# The commands record their runs in the ledger (on "default") like any entry point.
pytestmark = pytest.mark.django_db(transaction=True, databases=["default"])


def call(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.fixture(params=REMOTE_KINDS)
def remote(
    request: pytest.FixtureRequest, tmp_path: Path, drc_config: Any, rclone_bin: str
) -> Iterator[Remote]:
    yield from open_remote(request, tmp_path, drc_config, rclone_bin)


# 1. Guards -------------------------------------------------------------------
def test_empty_or_missing_source_is_refused_both_ways(
    remote: Remote, media_root: Path, drc_config: Any, settings: Any
) -> None:
    write(media_root, FIRST)
    backup_media()
    stored = remote.listing()
    before = hashes(media_root)

    # Backup from an empty MEDIA_ROOT (an unmounted volume): refused, the mirror stays.
    empty = media_root.parent / "empty-media"
    empty.mkdir()
    settings.MEDIA_ROOT = str(empty)
    with pytest.raises(CommandError, match="holds no files"):
        call("mediabackup")
    # ... and from a missing one.
    settings.MEDIA_ROOT = str(media_root.parent / "missing-media")
    with pytest.raises(CommandError, match="is not a directory"):
        call("mediabackup", "--allow-empty")
    assert remote.listing() == stored

    # Restore from a prefix that holds nothing (a typo in MEDIA_BACKUP_DIR): refused.
    settings.MEDIA_ROOT = str(media_root)
    drc_config(MEDIA_BACKUP_DIR="medai")
    with pytest.raises(CommandError, match="holds no files"):
        call("mediarestore", "--noinput")
    with pytest.raises(SyncRefused):
        restore_media()
    assert hashes(media_root) == before

    # Said explicitly, both run: the restore empties MEDIA_ROOT ...
    out = json.loads(call("mediarestore", "--noinput", "--allow-empty", "--json"))
    assert (out["copied"], out["replaced"], out["deleted"]) == (0, 0, len(FIRST))
    assert hashes(media_root) == {}
    # ... and the backup empties the mirror, keeping what it held as history.
    drc_config(MEDIA_BACKUP_DIR="media")
    out = json.loads(call("mediabackup", "--allow-empty", "--json"))
    assert (out["copied"], out["deleted"], out["files"]) == (0, len(FIRST), 0)
    first = list_media_points()[-1].name
    restore_media(at=first)
    assert hashes(media_root) == before


def test_deletion_limit_refuses_before_deleting(
    remote: Remote, media_root: Path, drc_config: Any
) -> None:
    write(media_root, FIRST)
    backup_media()
    stored = remote.listing()
    drc_config(MEDIA_MAX_DELETE=2)
    for name in ("a.txt", "docs/b.txt", "docs/c.bin"):
        (media_root / name).unlink()

    with pytest.raises(
        CommandError, match="would delete 3 of the 5 files there, more than the limit of 2"
    ):
        call("mediabackup")
    assert remote.listing() == stored
    drc_config(MEDIA_MAX_DELETE="40%")  # 40% of 5 = 2
    with pytest.raises(SyncRefused, match="limit of 2"):
        backup_media()
    assert remote.listing() == stored

    out = json.loads(call("mediabackup", "--max-delete", "3", "--json"))
    assert (out["deleted"], out["files"]) == (3, 2)

    # Restore: three local files the backup does not hold.
    write(media_root, {"x1": b"1", "x2": b"2", "x3": b"3"})
    before = hashes(media_root)
    with pytest.raises(CommandError, match="would delete 3 of the 5 files there"):
        call("mediarestore", "--noinput")
    assert hashes(media_root) == before
    out = json.loads(call("mediarestore", "--noinput", "--max-delete", "60%", "--json"))
    assert out["deleted"] == 3
    assert sorted(hashes(media_root)) == ["keep.txt", "pics/ünï code.png"]

    with pytest.raises(CommandError, match="--max-delete must be"):
        call("mediabackup", "--max-delete", "lots")

    # A refused backup has still uploaded the new files (replaced ones are kept): it says so.
    drc_config(MEDIA_MAX_DELETE=0)
    write(media_root, {"fresh.txt": b"new"})
    (media_root / "keep.txt").unlink()
    points = list_media_points()
    with pytest.raises(SyncRefused, match="The 1 new and 0 changed files were uploaded"):
        backup_media()
    assert list_media_points() == points  # no point for a refused run
    # The mirror has fresh.txt now, but a restore brings back the latest point exactly.
    assert "fresh.txt" in {f.path for f in list_media()}
    assert restore_media(max_delete=1).point == points[0].name
    assert sorted(hashes(media_root)) == ["keep.txt", "pics/ünï code.png"]


# 2. The restore prompt -------------------------------------------------------
@pytest.mark.parametrize("answer", ["n", ""])
def test_mediarestore_prompt_defaults_to_no(
    remote_dir: Path,
    media_root: Path,
    prompts: Prompts,
    monkeypatch: pytest.MonkeyPatch,
    answer: str,
) -> None:
    write(media_root, FIRST)
    backup_media()
    (media_root / "a.txt").write_bytes(b"changed locally, longer\n")
    write(media_root, {"new.txt": b"uploaded after the backup"})
    before = hashes(media_root)
    monkeypatch.setattr("sys.stdin", Terminal())
    prompts.reply(answer)

    assert "Media restore cancelled." in call("mediarestore")

    assert hashes(media_root) == before
    assert (
        "0 files will be copied, 1 local files replaced and 1 local files deleted"
        in (prompts.questions[0])
    )
    assert prompts.questions[0].endswith("[y/N] ")

    prompts.reply("y")
    call("mediarestore")
    assert hashes(media_root) == hashes(remote_dir / "media")


def test_mediarestore_without_terminal_refuses(
    remote_dir: Path, media_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(media_root, FIRST)
    backup_media()
    write(media_root, {"new.txt": b"uploaded after the backup"})
    before = hashes(media_root)
    monkeypatch.setattr("sys.stdin", StringIO(""))
    with pytest.raises(CommandError, match="no terminal to ask on; pass --noinput"):
        call("mediarestore")
    assert hashes(media_root) == before


# 3. History and point-in-time restore ---------------------------------------
def test_every_point_restores_exactly(remote: Remote, media_root: Path) -> None:
    states: list[tuple[str, Listing, dict[str, Any]]] = []

    write(media_root, FIRST)
    out = json.loads(call("mediabackup", "--json"))
    assert (out["copied"], out["replaced"], out["deleted"]) == (5, 0, 0)
    assert out["bytes"] == sum(len(v) for v in FIRST.values())
    states.append((out["point"], hashes(media_root), out))

    # Adds, a change of size, a same-size change, a deletion.
    write(media_root, {"new/d.txt": b"delta\n", "a.txt": b"alpha, longer now\n"})
    (media_root / "docs" / "c.bin").write_bytes(bytes(reversed(range(256))) * 8)
    os.utime(media_root / "docs" / "c.bin", (1_700_000_000, 1_700_000_000))
    (media_root / "docs" / "b.txt").unlink()
    out = json.loads(call("mediabackup", "--json"))
    assert (out["copied"], out["replaced"], out["deleted"]) == (1, 2, 1)
    assert out["bytes"] == len(b"delta\n") + len(b"alpha, longer now\n") + 256 * 8
    states.append((out["point"], hashes(media_root), out))

    # Delete a file that was there from the start, change one again, bring b back changed.
    (media_root / "pics" / "ünï code.png").unlink()
    write(media_root, {"a.txt": b"third\n", "docs/b.txt": b"bravo returns\n"})
    out = json.loads(call("mediabackup", "--json"))
    assert (out["copied"], out["replaced"], out["deleted"]) == (1, 1, 1)
    states.append((out["point"], hashes(media_root), out))

    # Three points, newest first, each with its files and bytes.
    listed = json.loads(call("listbackups", "--media", "--json"))
    assert [p["name"] for p in listed] == [s[0] for s in reversed(states)]
    for row, (_, _, result) in zip(listed, reversed(states), strict=True):
        assert (row["files"], row["size"]) == (result["files"], result["size"])
        assert row["time"].startswith(row["name"][:10])

    # Something uploaded after the last backup, and a local change.
    write(media_root, {"later.txt": b"after every backup", "keep.txt": b"edited"})
    for point, listing, _ in states:
        out = json.loads(call("mediarestore", "--noinput", "--at", point, "--json"))
        assert out["point"] == point
        assert hashes(media_root) == listing, point
    # An ISO time picks the newest point at or before it; no --at is the latest point.
    between = parse_stamp(states[1][0]) + timedelta(microseconds=1)
    assert restore_media(at=between.isoformat()).point == states[1][0]
    assert hashes(media_root) == states[1][1]
    restore_media()
    assert hashes(media_root) == states[-1][1]

    if remote.kind == "crypt-s3":  # names and contents are encrypted
        for key in remote.listing():
            assert not any(word in key for word in ("docs", "history", ".txt", "a.txt")), key


def test_point_selection_and_bad_points(remote_dir: Path, media_root: Path) -> None:
    with pytest.raises(BackupNotFound, match="no media points"):
        restore_media(at="latest")
    write(media_root, FIRST)
    point = backup_media().point
    assert point is not None
    with pytest.raises(CommandError, match="no media point 'yesterday'"):
        call("mediarestore", "--noinput", "--at", "yesterday")
    with pytest.raises(CommandError, match="no media point at or before 2000-01-01"):
        call("mediarestore", "--noinput", "--at", "2000-01-01")
    listed = list_media_points()
    kept = Point.from_record(f"{point}-{listed[0].files}-{listed[0].size}.json.gz")
    assert kept is not None
    assert select([kept], "latest") == select([kept], point) == kept

    # A version the point needs is gone: refused before anything changes.
    (media_root / "a.txt").write_bytes(b"changed, so the old one is kept as a version")
    backup_media()
    version = next((remote_dir / "media-history").glob("*/a.txt"))
    version.unlink()
    before = hashes(media_root)
    with pytest.raises(
        CommandError, match=r"cannot be rebuilt: 'a\.txt' is a different size in the mirror"
    ):
        call("mediarestore", "--noinput", "--at", point)
    assert hashes(media_root) == before


# 4. Retention ----------------------------------------------------------------
def test_media_retention_keeps_what_kept_points_need(
    remote_dir: Path, media_root: Path, drc_config: Any
) -> None:
    states = []
    for round_ in range(4):
        write(media_root, {"a.txt": b"a" * (round_ + 1), f"only-{round_}.txt": b"x"})
        if round_:
            (media_root / f"only-{round_ - 1}.txt").unlink()
        states.append((backup_media(max_delete=1).point, hashes(media_root)))
    drc_config(DB_CLEANUP_KEEP=2)
    history = remote_dir / "media-history"
    stored = sorted(p.relative_to(history).as_posix() for p in history.rglob("*") if p.is_file())

    text = call("cleanupbackups", "--media", "--dry-run")
    assert "Would delete 2 media points" in text
    assert "Dry run: nothing was deleted." in text
    assert (
        sorted(p.relative_to(history).as_posix() for p in history.rglob("*") if p.is_file())
        == stored
    )

    result = cleanup_media()
    assert result.kept == [states[3][0], states[2][0]]
    assert result.deleted == [states[1][0], states[0][0]]
    # The versions moved by backups 2 and 3 only served points 1 and 2; those moved by
    # backup 4 (a.txt and only-2.txt as at point 3) serve point 3.
    assert result.versions_deleted == 4
    for point, listing in states[2:]:
        restore_media(at=point)
        assert hashes(media_root) == listing
    assert [p.name for p in list_media_points()] == [states[3][0], states[2][0]]

    # The task's clean=True: a backup, then the same retention.
    write(media_root, {"a.txt": b"fifth"})
    latest = backup_media(clean=True)
    assert latest.cleaned == [states[2][0]]
    assert [p.name for p in list_media_points()] == [latest.point, states[3][0]]


# 5. Counts: signals and the run history --------------------------------------
def test_counts_reach_the_signals(remote_dir: Path, media_root: Path) -> None:
    seen: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        kwargs.pop("signal")
        seen.append(kwargs)

    write(media_root, FIRST)
    backup_media()
    (media_root / "a.txt").write_bytes(b"much longer than before\n")
    (media_root / "keep.txt").unlink()
    signals.post_media_backup.connect(receiver)
    try:
        result = backup_media(run_id="r1")
    finally:
        signals.post_media_backup.disconnect(receiver)
    assert seen == [
        {"run_id": "r1", "copied": 0, "replaced": 1, "deleted": 1, "bytes": 24},
    ]
    assert (result.copied, result.replaced, result.deleted, result.bytes) == (0, 1, 1, 24)


# 6. Settings ----------------------------------------------------------------
def test_max_delete_setting() -> None:
    assert max_delete_limit(50, 1000) == 50
    assert max_delete_limit("20%", 1000) == 200
    assert max_delete_limit("20%", 4) == 1  # rounded up
    assert max_delete_limit("0%", 4) == 0
    with pytest.raises(ConfigurationError):
        max_delete_limit("many", 4)
    for bad in ("many", -1, "150%", True, 2.5):
        ids = [p.id for p in validate({"REMOTE": "r:", "MEDIA_MAX_DELETE": bad})]
        assert ids, bad
        assert set(ids) <= {"django_rclone_celery.E050", "django_rclone_celery.E003"}, bad
    assert validate({"REMOTE": "r:", "MEDIA_MAX_DELETE": "12.5%"}) == []
    ids = [p.id for p in validate({"REMOTE": "r:", "MEDIA_BACKUP_DIR": "/"})]
    assert ids == ["django_rclone_celery.E051"]
    for flags in (["--backup-dir", "s3:b/old"], ["--suffix=.bak"]):
        ids = [p.id for p in validate({"REMOTE": "r:", "RCLONE_FLAGS": flags})]
        assert ids == ["django_rclone_celery.W050"]
    assert validate({"REMOTE": "r:", "RCLONE_FLAGS": ["--transfers", "8"]}) == []


def test_no_change_keeps_the_latest_point_unless_a_run_died_before_recording(
    remote_dir: Path, media_root: Path
) -> None:
    write(media_root, FIRST)
    first = backup_media()
    again = backup_media()
    assert (again.point, again.copied, again.replaced, again.deleted) == (first.point, 0, 0, 0)
    assert [p.name for p in list_media_points()] == [first.point]
    original = hashes(media_root)

    # A run killed between its sync and its point: the version folder is there, the point not.
    (media_root / "a.txt").write_bytes(b"changed by the run that died")
    died = backup_media()
    history = remote_dir / "media-history"
    next(history.glob(f"{died.point}-*.json.gz")).unlink()
    assert (history / str(died.point) / "a.txt").read_bytes() == FIRST["a.txt"]

    recovered = backup_media()  # nothing to sync, but the latest point is stale
    assert recovered.point not in (first.point, died.point)
    assert recovered.copied == 0
    restore_media(at=first.point)
    assert hashes(media_root) == original
    restore_media(at=recovered.point)
    assert (media_root / "a.txt").read_bytes() == b"changed by the run that died"


def test_a_mirror_without_points_restores_as_the_mirror(remote_dir: Path, media_root: Path) -> None:
    """Backups written by django-rclone (a bare rclone sync) have no points: the mirror is used."""
    write(remote_dir / "media", FIRST)
    write(media_root, {"stray.txt": b"not in the backup"})
    result = restore_media()
    assert result.point is None
    assert (result.copied, result.deleted) == (len(FIRST), 1)
    assert hashes(media_root) == hashes(remote_dir / "media")
    with pytest.raises(BackupNotFound, match="no media points"):
        restore_media(at="latest")


def test_points_hold_what_rclone_sees(remote_dir: Path, media_root: Path, drc_config: Any) -> None:
    """rclone skips symlinks unless told to follow them (-L): a point holds what rclone sees."""
    write(media_root, FIRST)
    (media_root / "link.txt").symlink_to(media_root / "a.txt")
    assert (backup_media().files, list_media_points()[0].files) == (len(FIRST), len(FIRST))

    drc_config(RCLONE_FLAGS=["--copy-links"])  # rclone lists every file itself then
    followed = backup_media()
    assert (followed.files, followed.copied) == (len(FIRST) + 1, 1)
    assert (remote_dir / "media" / "link.txt").read_bytes() == FIRST["a.txt"]


def test_an_undecodable_file_name_is_still_in_the_point(remote_dir: Path, media_root: Path) -> None:
    write(media_root, FIRST)
    (media_root / os.fsdecode(b"caf\xe9.txt")).write_bytes(b"latin-1 name")
    first = backup_media()
    assert first.files == len(FIRST) + 1
    (media_root / "a.txt").write_bytes(b"changed, longer")
    assert backup_media().files == len(FIRST) + 1
    before = sorted(os.listdir(media_root))
    restore_media(at=first.point)
    assert sorted(os.listdir(media_root)) == before
    assert (media_root / "a.txt").read_bytes() == FIRST["a.txt"]


def test_a_file_newer_than_the_run_is_in_the_point_only_if_the_mirror_has_it(
    remote_dir: Path, media_root: Path
) -> None:
    """Unchanged files come from a walk; one dated after the run starts is checked on the mirror."""
    write(media_root, FIRST)
    future = 4_102_444_800  # 2100-01-01: "written after rclone looked", as far as the walk knows
    os.utime(media_root / "keep.txt", (future, future))
    backup_media()
    (media_root / "a.txt").write_bytes(b"changed, longer")
    second = backup_media()  # keep.txt is unchanged but looks recent
    assert second.files == len(FIRST)
    (media_root / "keep.txt").unlink()
    restore_media(at=second.point)
    assert (media_root / "keep.txt").read_bytes() == FIRST["keep.txt"]

    # Not on the mirror (rclone never saw it): not in the point either.
    (remote_dir / "media" / "keep.txt").unlink()
    os.utime(media_root / "keep.txt", (future, future))
    (media_root / "a.txt").write_bytes(b"changed again, longer still")
    from django_rclone_celery.operations.media import _unchanged

    marks: dict[str, list[str]] = {"*": ["a.txt"]}
    known = {"a.txt": 27, "keep.txt": 14, "docs/b.txt": 600}
    from django_rclone_celery.conf import get_settings
    from django_rclone_celery.rclone import Rclone

    unchanged = _unchanged(
        Rclone(get_settings()), str(remote_dir / "media"), marks, known, {"keep.txt"}
    )
    assert unchanged == ["docs/b.txt"]
