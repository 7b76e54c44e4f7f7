"""The rclone transport against the real binary and a local-directory remote."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from django_rclone_celery import process
from django_rclone_celery.conf import Settings
from django_rclone_celery.exceptions import ProcessError, RcloneError
from django_rclone_celery.rclone import Rclone


@pytest.fixture
def rc(tmp_path: Path) -> Rclone:
    return Rclone(Settings(remote=str(tmp_path)))


def test_put_and_get_bytes(rc: Rclone, tmp_path: Path) -> None:
    data = bytes(range(256)) * 1000
    rc.put_bytes(str(tmp_path / "a" / "b.bin"), data)
    assert (tmp_path / "a" / "b.bin").read_bytes() == data
    assert rc.get_bytes(str(tmp_path / "a" / "b.bin")) == data


def test_rcat_and_cat_stream_through_the_gateway(rc: Rclone, tmp_path: Path) -> None:
    def chunks() -> Iterator[bytes]:
        for i in range(40):
            yield bytes([i]) * (256 * 1024)

    target = str(tmp_path / "stream.bin")
    stats = process.pipe_into(rc.rcat(target), chunks, error=RcloneError)
    assert stats.bytes_in == 40 * 256 * 1024 == os.path.getsize(target)
    with process.read_from(rc.cat(target), error=RcloneError) as stream:
        assert stream.read() == b"".join(chunks())


def test_lsjson_lists_files_with_sizes_and_times(rc: Rclone, tmp_path: Path) -> None:
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "one.txt").write_bytes(b"1")
    (tmp_path / "d" / "with space ü.txt").write_bytes(b"22")
    (tmp_path / "d" / "sub" / "deep.txt").write_bytes(b"333")
    stamp = datetime(2024, 1, 15, 12, 0, 0, 123456, tzinfo=timezone.utc).timestamp()
    os.utime(tmp_path / "d" / "one.txt", (stamp, stamp))

    flat = {e.name: e for e in rc.lsjson(str(tmp_path / "d"))}
    assert set(flat) == {"one.txt", "with space ü.txt"}  # files only, not recursive
    assert flat["with space ü.txt"].size == 2
    assert flat["one.txt"].modified == datetime(2024, 1, 15, 12, 0, 0, 123456, tzinfo=timezone.utc)
    assert not flat["one.txt"].is_dir

    deep = {e.path: e.size for e in rc.lsjson(str(tmp_path / "d"), recursive=True)}
    assert deep == {"one.txt": 1, "with space ü.txt": 2, "sub/deep.txt": 3}


def test_lsjson_times_are_right_whatever_the_local_timezone(
    rc: Rclone, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rclone prints local times with an offset ("+01:00"); they must not be misread."""
    monkeypatch.setenv("TZ", "Europe/Zurich")
    (tmp_path / "f").write_text("x")
    stamp = datetime(2024, 7, 1, 10, 30, 15, 250000, tzinfo=timezone.utc)
    os.utime(tmp_path / "f", (stamp.timestamp(), stamp.timestamp()))
    [entry] = rc.lsjson(str(tmp_path))
    assert entry.modified == stamp
    assert entry.modified.utcoffset() is not None


def test_lsjson_of_a_missing_directory_is_empty(rc: Rclone, tmp_path: Path) -> None:
    assert rc.lsjson(str(tmp_path / "never-created")) == []


def test_moveto_deletefile_and_delete_many(rc: Rclone, tmp_path: Path) -> None:
    for name in ("a", "b c", "ü-d", "keep"):
        (tmp_path / name).write_text(name)
    rc.moveto(str(tmp_path / "a"), str(tmp_path / "moved" / "a2"))
    assert not (tmp_path / "a").exists()
    assert (tmp_path / "moved" / "a2").read_text() == "a"

    rc.deletefile(str(tmp_path / "moved" / "a2"))
    assert not (tmp_path / "moved" / "a2").exists()

    rc.delete_many(str(tmp_path), ["b c", "ü-d"])
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["keep"]
    rc.delete_many(str(tmp_path), [])  # nothing to do is not an error


def test_sync_mirrors_and_copy_does_not_delete(rc: Rclone, tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "x").mkdir(parents=True)
    (src / "x" / "f").write_text("new")
    dst.mkdir()
    (dst / "extra").write_text("extra")

    rc.copy(str(src), str(dst))
    assert (dst / "x" / "f").read_text() == "new"
    assert (dst / "extra").exists()
    rc.sync(str(src), str(dst))
    assert not (dst / "extra").exists()
    assert (dst / "x" / "f").read_text() == "new"


@pytest.mark.parametrize(
    ("call", "code"),
    [("get_bytes", 3), ("deletefile", 4)],
)
def test_errors_carry_exit_code_and_stderr(
    rc: Rclone, tmp_path: Path, call: str, code: int
) -> None:
    with pytest.raises(RcloneError) as caught:
        getattr(rc, call)(str(tmp_path / "missing.bin"))
    error = caught.value
    assert isinstance(error, ProcessError)
    assert error.returncode == code
    assert "not found" in error.stderr
    assert not error.transient  # not found will not fix itself
    assert f"exited with status {code}" in str(error)
    assert error.argv[:2] == ("rclone", "cat" if call == "get_bytes" else "deletefile")


def test_a_remote_name_no_config_knows_is_one_line_naming_it(tmp_path: Path) -> None:
    rclone = Rclone(Settings(remote="typo:bucket", rclone_config=str(tmp_path / "none.conf")))
    with pytest.raises(RcloneError) as caught:
        rclone.get_bytes("typo:bucket/db/a.dump")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("rclone exited with status 1: ")
    assert 'didn\'t find section in config file ("typo")' in message
    assert "NOTICE" not in message  # rclone's notices stay in .stderr
    assert "not found - using defaults" in caught.value.stderr


def test_flags_and_config_file_are_used(tmp_path: Path) -> None:
    target = tmp_path / "aliased"
    target.mkdir()
    (target / "f.txt").write_text("via alias")
    config = tmp_path / "rclone.conf"
    config.write_text(f"[viaconf]\ntype = alias\nremote = {target}\n")
    rc = Rclone(
        Settings(
            remote="viaconf:", rclone_config=str(config), rclone_flags=("--low-level-retries", "2")
        )
    )
    assert rc.command("lsjson", "x").argv[-4:] == (
        "--config",
        str(config),
        "--low-level-retries",
        "2",
    )
    assert [e.name for e in rc.lsjson("viaconf:")] == ["f.txt"]
    assert rc.get_bytes("viaconf:f.txt") == b"via alias"


def test_version(rc: Rclone) -> None:
    assert rc.version().startswith("v1.")


def test_missing_rclone_binary_is_a_clear_error(tmp_path: Path) -> None:
    rc = Rclone(Settings(remote=str(tmp_path), rclone_binary="/nonexistent/rclone"))
    with pytest.raises(RcloneError, match="program not found: /nonexistent/rclone") as caught:
        rc.lsjson(str(tmp_path))
    assert caught.value.returncode == 127
    assert not caught.value.transient


def _env_logging_rclone(tmp_path: Path, rclone_bin: str) -> tuple[Rclone, Path]:
    """An rclone that notes its verb and Go's GC variables, then runs the real one."""
    script = tmp_path / "rclone-env"
    log = tmp_path / "env.log"
    script.write_text(
        f'#!/bin/sh\necho "$1 GOGC=${{GOGC:-}} GOMEMLIMIT=${{GOMEMLIMIT:-}}" >> "{log}"\n'
        f'exec "{rclone_bin}" "$@"\n'
    )
    script.chmod(0o755)
    return Rclone(Settings(remote=str(tmp_path), rclone_binary=str(script))), log


@pytest.fixture
def go_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Go collector setting of the user's in the environment."""
    monkeypatch.delenv("GOGC", raising=False)
    monkeypatch.delenv("GOMEMLIMIT", raising=False)


@pytest.mark.usefixtures("go_defaults")
def test_short_calls_collect_garbage_only_near_a_limit_and_streams_as_go_does(
    tmp_path: Path, rclone_bin: str
) -> None:
    rclone, log = _env_logging_rclone(tmp_path, rclone_bin)
    target = str(tmp_path / "r" / "small.bin")
    rclone.put_bytes(target, b"x" * 100)
    assert rclone.get_bytes(target) == b"x" * 100
    assert [e.name for e in rclone.lsjson(str(tmp_path / "r"))] == ["small.bin"]
    rclone.moveto(target, target + ".moved")
    process.pipe_into(rclone.rcat(str(tmp_path / "stream.bin")), lambda: iter([b"y" * 1000]))
    assert log.read_text().splitlines() == [
        "rcat GOGC=off GOMEMLIMIT=256MiB",
        "cat GOGC=off GOMEMLIMIT=256MiB",
        "lsjson GOGC=off GOMEMLIMIT=256MiB",
        "moveto GOGC=off GOMEMLIMIT=256MiB",
        "rcat GOGC= GOMEMLIMIT=",  # a stream: Go's own collector
    ]


@pytest.mark.usefixtures("go_defaults")
def test_a_copy_started_ahead_collects_garbage_only_near_the_limit_too(
    tmp_path: Path, rclone_bin: str
) -> None:
    rclone, log = _env_logging_rclone(tmp_path, rclone_bin)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.bin").write_bytes(b"a" * 10)
    with rclone.start("copy", str(tmp_path / "src"), str(tmp_path / "dst")) as copy:
        copy.finish()
    assert (tmp_path / "dst" / "a.bin").read_bytes() == b"a" * 10
    assert log.read_text().splitlines() == ["copy GOGC=off GOMEMLIMIT=256MiB"]


def test_the_users_own_go_gc_setting_is_left_alone(
    tmp_path: Path, rclone_bin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOGC", "50")
    monkeypatch.delenv("GOMEMLIMIT", raising=False)
    rclone, log = _env_logging_rclone(tmp_path, rclone_bin)
    assert rclone.lsjson(str(tmp_path / "missing")) == []
    assert log.read_text().splitlines() == ["lsjson GOGC=50 GOMEMLIMIT="]
