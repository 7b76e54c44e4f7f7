"""Media: ``mediabackup`` / ``mediarestore`` mirror MEDIA_ROOT with rclone sync."""

from __future__ import annotations

import json
import os
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from django_rclone_celery import signals
from django_rclone_celery.exceptions import ConfigurationError
from django_rclone_celery.operations import backup_media, restore_media
from tests.helpers.remotes import remote_files

# The media commands record their runs in the ledger (on "default").
pytestmark = pytest.mark.django_db


def call(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def size(root: Path) -> int:
    return sum(len(data) for data in tree(root).values())


def fill(root: Path) -> None:
    (root / "avatars" / "2024").mkdir(parents=True)
    (root / "avatars" / "2024" / "ünï code.png").write_bytes(bytes(range(256)) * 40)
    (root / "docs").mkdir()
    (root / "docs" / "report.txt").write_text("quarterly\n")
    (root / "empty.bin").write_bytes(b"")
    (root / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))


def test_media_round_trip_restores_files_and_deletes_local_extras(
    remote_dir: Path, media_root: Path
) -> None:
    fill(media_root)
    original = tree(media_root)

    assert "Synced" in call("mediabackup")
    assert tree(remote_dir / "media") == original

    (media_root / "docs" / "report.txt").write_text("overwritten")
    (media_root / "avatars" / "2024" / "ünï code.png").unlink()
    (media_root / "extra").mkdir()
    (media_root / "extra" / "stray.txt").write_text("not in the backup")

    call("mediarestore", "--noinput")

    assert tree(media_root) == original
    assert not (media_root / "extra" / "stray.txt").exists()


def test_media_backup_is_a_mirror(remote_dir: Path, media_root: Path) -> None:
    fill(media_root)
    backup_media()
    (media_root / "big.bin").unlink()
    backup_media()
    assert "media/big.bin" not in remote_files(remote_dir)
    assert tree(remote_dir / "media") == tree(media_root)


def test_media_restore_into_missing_media_root_creates_it(
    remote_dir: Path, media_root: Path, settings: Any
) -> None:
    fill(media_root)
    backup_media()
    fresh = media_root.parent / "fresh-media"
    settings.MEDIA_ROOT = str(fresh)
    restore_media()
    assert tree(fresh) == tree(media_root)


@pytest.mark.parametrize("command", ["mediabackup", "mediarestore"])
def test_empty_media_root_is_a_clear_error(remote_dir: Path, settings: Any, command: str) -> None:
    settings.MEDIA_ROOT = ""
    with pytest.raises(CommandError, match="MEDIA_ROOT is empty"):
        call(command, "--noinput") if command == "mediarestore" else call(command)
    assert remote_files(remote_dir) == []


def test_media_root_that_is_not_a_directory(
    remote_dir: Path, tmp_path: Path, settings: Any
) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "missing")
    with pytest.raises(ConfigurationError, match="is not a directory"):
        backup_media()
    assert remote_files(remote_dir) == []


def test_listbackups_media(remote_dir: Path, media_root: Path) -> None:
    fill(media_root)
    call("mediabackup")

    # The mirror's files moved to --files: --media lists the points (issue #12).
    rows = json.loads(call("listbackups", "--media", "--files", "--json"))
    assert {r["path"]: r["size"] for r in rows} == {
        name: len(data) for name, data in tree(media_root).items()
    }
    text = call("listbackups", "--media", "--files")
    assert f"Media files: {len(rows)}" in text
    assert "avatars/2024/ünï code.png" in text
    assert "docs/report.txt" in text


def test_media_signals(remote_dir: Path, media_root: Path) -> None:
    fill(media_root)
    events: list[tuple[str, str, dict[str, Any]]] = []
    names = (
        "pre_media_backup",
        "post_media_backup",
        "pre_media_restore",
        "post_media_restore",
        "pre_stage",
        "post_stage",
    )
    receivers = []
    for name in names:

        def receiver(sender: Any, _name: str = name, **kwargs: Any) -> None:
            kwargs.pop("signal")
            events.append((_name, sender, kwargs))

        getattr(signals, name).connect(receiver, weak=False)
        receivers.append((name, receiver))
    try:
        backup_media(run_id="mb")
        restore_media(run_id="mr")
    finally:
        for name, receiver in receivers:
            getattr(signals, name).disconnect(receiver)

    assert [(n, s) for n, s, _ in events] == [
        ("pre_media_backup", "media_backup"),
        ("pre_stage", "media_backup"),
        ("post_stage", "media_backup"),
        ("post_media_backup", "media_backup"),
        ("pre_media_restore", "media_restore"),
        ("pre_stage", "media_restore"),
        ("post_stage", "media_restore"),
        ("post_media_restore", "media_restore"),
    ]
    for name, sender, kwargs in events:
        run_id = "mb" if sender == "media_backup" else "mr"
        if name.endswith("_stage"):
            assert kwargs == {
                "operation": sender,
                "stage": "sync",
                "database": None,
                "run_id": run_id,
            }
        elif name.startswith("pre_"):
            assert kwargs == {"run_id": run_id}
        else:  # issue #12: the post signals carry the counts
            counts = {"copied": 4, "replaced": 0, "deleted": 0, "bytes": size(media_root)}
            if sender == "media_restore":
                counts = {"copied": 0, "replaced": 0, "deleted": 0, "bytes": 0}
            assert kwargs == {"run_id": run_id, **counts}


def test_pre_media_backup_receiver_vetoes(remote_dir: Path, media_root: Path) -> None:
    fill(media_root)

    def veto(**kwargs: Any) -> None:
        raise PermissionError("media backups are frozen")

    signals.pre_media_backup.connect(veto)
    try:
        with pytest.raises(PermissionError):
            backup_media()
    finally:
        signals.pre_media_backup.disconnect(veto)
    assert remote_files(remote_dir) == []
