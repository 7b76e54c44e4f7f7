"""``rc``: rclone's remote control serving a media backup's small calls (#12).

Real rclone, against a local-directory remote and (where marked) moto's S3
with a crypt remote over it; the fallback is driven by an rclone whose
``rcd`` cannot start.
"""

from __future__ import annotations

import base64
import os
import stat
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from django_rclone_celery import rc
from django_rclone_celery.conf import get_settings
from django_rclone_celery.exceptions import RcloneError
from django_rclone_celery.rclone import Rclone, join
from tests.helpers.media import REMOTE_KINDS, Remote, open_remote, write


@pytest.fixture(params=REMOTE_KINDS)
def remote(
    request: pytest.FixtureRequest, tmp_path: Path, drc_config: Any, rclone_bin: str
) -> Iterator[Remote]:
    yield from open_remote(request, tmp_path, drc_config, rclone_bin)


def _logging_rclone(tmp_path: Path, drc_config: Any, rclone_bin: str, *, rcd: str) -> Path:
    """Make ``RCLONE_BINARY`` an ``rclone`` that notes each command it gets, then runs
    the real one. Its ``rcd`` serves (``"serves"``), is refused as by an rclone
    without socket support (``"refused"``), or wants a password (``"password"``)."""
    script = tmp_path / "rclone-logged"
    log = tmp_path / "commands.log"
    real = f'exec "{rclone_bin}" "$@"'
    on_rcd = {
        "serves": "",
        "refused": 'echo "unknown command rcd" >&2; exit 1',
        "password": f"{real} --rc-user u --rc-pass p",
    }[rcd]
    hook = f'if [ "$1" = rcd ]; then {on_rcd}; fi\n' if on_rcd else ""
    script.write_text(f'#!/bin/sh\necho "$1" >> "{log}"\n{hook}{real}\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    drc_config(RCLONE_BINARY=str(script))
    return log


@pytest.fixture
def no_daemon(tmp_path: Path, drc_config: Any, rclone_bin: str) -> Path:
    return _logging_rclone(tmp_path, drc_config, rclone_bin, rcd="refused")


@pytest.fixture
def password_daemon(tmp_path: Path, drc_config: Any, rclone_bin: str) -> Path:
    return _logging_rclone(tmp_path, drc_config, rclone_bin, rcd="password")


@pytest.fixture
def commands(tmp_path: Path, drc_config: Any, rclone_bin: str) -> Path:
    return _logging_rclone(tmp_path, drc_config, rclone_bin, rcd="serves")


def _rclone() -> Rclone:
    return Rclone(get_settings())


def _names(rclone: Rclone, path: str) -> set[str]:
    return set(rclone.sizes(path))


def test_the_calls_do_exactly_what_they_say(remote: Remote, tmp_path: Path) -> None:
    rclone = _rclone()
    base = get_settings().remote
    local = tmp_path / "local"
    mirror = {f"d{i}/f{i}.bin": bytes([i]) * (10 + i) for i in range(6)}
    write(local, mirror)
    rclone.transfer("copy", str(local), join(base, "mirror"), None)
    record = tmp_path / "up" / "point.json.gz"
    write(record.parent, {record.name: b"\x1f\x8b the record"})
    with rc.sockets() as place, rc.daemon(rclone, place / "rcd.sock") as calls:
        assert calls.list_dir(join(base, "missing")) == []
        calls.put_file(record, join(base, "history"), "point.json.gz")
        calls.move_files(
            join(base, "mirror"), join(base, "history", "v1"), ["d1/f1.bin", "d4/f4.bin"]
        )
        listed = {(e.name, e.is_dir) for e in calls.list_dir(join(base, "history"))}
    assert listed == {("point.json.gz", False), ("v1", True)}
    assert rclone.get_bytes(join(base, "history", "point.json.gz")) == b"\x1f\x8b the record"
    # Only the two named files moved; the rest of the mirror stayed.
    assert _names(rclone, join(base, "mirror")) == set(mirror) - {"d1/f1.bin", "d4/f4.bin"}
    assert _names(rclone, join(base, "history", "v1")) == {"d1/f1.bin", "d4/f4.bin"}
    assert rclone.get_bytes(join(base, "history", "v1", "d4/f4.bin")) == mirror["d4/f4.bin"]


def test_many_files_and_undecodable_names_move_through_one_rclone_move(
    remote_dir: Path, tmp_path: Path
) -> None:
    rclone = _rclone()
    mirror = remote_dir / "mirror"
    names = [f"f{i:03d}" for i in range(rc.MOVE_CALLS_MAX + 1)]
    write(mirror, {name: name.encode() for name in [*names, "stays"]})
    odd = os.fsdecode(b"caf\xe9.txt")  # Latin-1, not UTF-8
    (mirror / odd).write_bytes(b"odd")
    with rc.sockets() as place, rc.daemon(rclone, place / "rcd.sock") as calls:
        calls.move_files(str(mirror), str(remote_dir / "v"), names)
        calls.move_files(str(mirror), str(remote_dir / "v"), [odd])
    assert sorted(p.name for p in mirror.iterdir()) == ["stays"]
    assert sorted(os.listdir(remote_dir / "v")) == sorted([*names, odd])


def test_errors_are_rclone_errors(remote_dir: Path, tmp_path: Path) -> None:
    with rc.sockets() as place, rc.daemon(_rclone(), place / "rcd.sock") as calls:
        with pytest.raises(RcloneError) as missing:
            calls.put_file(tmp_path / "nothing-here", str(remote_dir), "x")
        assert missing.value.not_found
        with pytest.raises(RcloneError) as gone:
            calls.move_files(str(remote_dir), str(remote_dir / "v"), ["no-such-file"])
        assert gone.value.not_found
    assert list(remote_dir.iterdir()) == []


def test_the_daemon_ends_with_the_block(remote_dir: Path) -> None:
    with rc.sockets() as place, rc.daemon(_rclone(), place / "rcd.sock") as calls:
        assert calls.list_dir(str(remote_dir)) == []
        daemon = calls._server
        assert daemon is not None
        assert daemon.running()
        socket_dir = Path(calls._path).parent
        assert stat.S_IMODE(socket_dir.stat().st_mode) == 0o700
    assert not daemon.running()
    assert not socket_dir.exists()


# An rcd that never starts, or one that answers 401 (it did nothing): every
# call, the first included, runs rclone itself.
@pytest.mark.parametrize("daemon", ["no_daemon", "password_daemon"])
def test_without_a_daemon_that_answers_each_call_runs_rclone(
    remote_dir: Path, tmp_path: Path, daemon: str, request: pytest.FixtureRequest
) -> None:
    log: Path = request.getfixturevalue(daemon)
    rclone = _rclone()
    write(remote_dir / "mirror", {"a": b"a", "b": b"b"})
    record = tmp_path / "record"
    record.write_bytes(b"rec")
    with rc.sockets() as place, rc.daemon(rclone, place / "rcd.sock") as calls:
        calls.put_file(record, str(remote_dir / "history"), "point")
        assert calls._server is not None
        # The one wanting a password answered 401, and runs on.
        assert calls._server.running() == (daemon == "password_daemon")
        calls.move_files(str(remote_dir / "mirror"), str(remote_dir / "history" / "v"), ["a"])
        listed = {e.name for e in calls.list_dir(str(remote_dir / "history"))}
    assert listed == {"point", "v"}
    assert (remote_dir / "history" / "point").read_bytes() == b"rec"
    assert sorted(p.name for p in (remote_dir / "mirror").iterdir()) == ["b"]
    assert log.read_text().split() == ["rcd", "rcat", "move", "lsjson"]


def test_a_media_backup_without_the_daemon_keeps_its_history(
    remote_dir: Path, media_root: Path, no_daemon: Path
) -> None:
    from django_rclone_celery.operations import backup_media, list_media_points

    write(media_root, {"a.txt": b"one", "b.txt": b"two"})
    first = backup_media()
    (media_root / "a.txt").unlink()
    second = backup_media()
    assert (first.files, second.files, second.deleted) == (2, 1, 1)
    assert [p.files for p in list_media_points()] == [1, 2]
    assert "rcd" in no_daemon.read_text().split()


def test_a_command_serves_while_it_runs_then_rclone_answers(
    remote_dir: Path, commands: Path
) -> None:
    rclone = _rclone()
    write(remote_dir / "history", {"p1": b"1", "v/x": b"x"})
    with rc.sockets() as place:
        served = place / "cat.sock"
        # rcat waits on its stdin: a command that runs as long as the test wants.
        with rclone.start("rcat", str(remote_dir / "out"), *rc.serve_flags(rclone, served)) as cat:
            calls = rc.attach(rclone, cat, served)
            assert {e.name for e in calls.list_dir(str(remote_dir / "history"))} == {"p1", "v"}
            assert commands.read_text().split() == ["rcat"]
            cat.finish(b"done")
        # Ended: the same call runs rclone itself, with the same answer.
        assert {e.name for e in calls.list_dir(str(remote_dir / "history"))} == {"p1", "v"}
    assert commands.read_text().split() == ["rcat", "lsjson"]
    assert (remote_dir / "out").read_bytes() == b"done"


@pytest.mark.parametrize("flag", ["--rc-addr=127.0.0.1:5572", "--rc"])
def test_a_remote_control_of_the_users_own_is_left_alone(
    remote_dir: Path, drc_config: Any, flag: str
) -> None:
    drc_config(RCLONE_FLAGS=[flag])
    rclone = _rclone()
    assert not rc.usable(rclone)
    with rc.sockets() as place:
        assert rc.serve_flags(rclone, place / "x.sock") == []
        with rc.daemon(rclone, place / "rcd.sock") as calls:
            assert calls._server is None


def test_an_rclone_rc_variable_is_left_alone(
    remote_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RCLONE_RC_ADDR", "127.0.0.1:5572")
    assert not rc.usable(_rclone())


def test_a_backup_starts_the_daemon_only_when_the_media_changed(
    remote_dir: Path, media_root: Path, commands: Path
) -> None:
    from django_rclone_celery.operations import backup_media, list_media_points

    def started() -> list[str]:
        # The history listing comes from the copy while it runs; a copy that has
        # already ended (a small tree on a busy machine) leaves it to lsjson.
        names = [name for name in commands.read_text().split() if name != "lsjson"]
        commands.write_text("")
        return names

    write(media_root, {"a.txt": b"one", "b.txt": b"two"})
    backup_media()
    started()
    unchanged = backup_media()
    assert started() == ["copy"]
    (media_root / "a.txt").unlink()
    (media_root / "b.txt").write_bytes(b"changed")
    changed = backup_media()
    assert started() == ["copy", "rcd"]
    assert (unchanged.copied, unchanged.replaced, unchanged.deleted) == (0, 0, 0)
    assert (changed.replaced, changed.deleted) == (1, 1)
    assert [p.files for p in list_media_points()] == [1, 2]


@pytest.mark.parametrize("kind", ["private", "in its directory"])
def test_the_publication_calls_do_what_rclone_would(
    remote: Remote, tmp_path: Path, kind: str
) -> None:
    rclone = _rclone()
    base = join(get_settings().remote, "pub")
    with ExitStack() as stack:
        if kind == "private":
            calls = stack.enter_context(rc.private_daemon(rclone))
        else:
            place = stack.enter_context(rc.sockets())
            calls = stack.enter_context(rc.daemon(rclone, place / "rcd.sock"))
        assert calls.list_files(base) == []  # missing: empty, as lsjson
        calls.put_bytes(join(base, "a.partial"), b"the stream")
        calls.put_bytes(join(base, "a.manifest.json"), b'{"size": 10}')
        calls.move_file(join(base, "a.partial"), join(base, "a"))
        through_daemon = calls.list_files(base)
        with pytest.raises(RcloneError) as gone:
            calls.move_file(join(base, "a.partial"), join(base, "b"))
        assert gone.value.not_found
        assert calls._ready  # every call went to the daemon, none to an rclone of its own
    by_rclone = rclone.lsjson(base)
    assert sorted((e.name, e.size) for e in through_daemon) == [("a", 10), ("a.manifest.json", 12)]
    # The same entries rclone lsjson gives, times included (the sweep of stale partials reads them).
    assert sorted((e.name, e.size, e.modified) for e in through_daemon) == sorted(
        (e.name, e.size, e.modified) for e in by_rclone
    )
    assert rclone.get_bytes(join(base, "a")) == b"the stream"


@pytest.mark.parametrize(
    ("jobs", "hold"),
    [(1, None), (1, 64), (2, None), (2, 64)],
    ids=["small", "larger", "jobs2-small", "jobs2-larger"],
)
@pytest.mark.django_db(transaction=True, databases=["default", "pg"])
def test_a_database_backup_starts_no_rclone_after_its_streams(
    remote_dir: Path, commands: Path, jobs: int, hold: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.core.management import call_command

    from django_rclone_celery import rc
    from django_rclone_celery.operations import list_backups
    from tests.helpers.databases import populate

    if hold is not None:  # a dump longer than what a backup holds back
        monkeypatch.setattr(rc, "SMALL_UPLOAD", hold)
    populate("pg")
    call_command("dbbackup", "-d", "pg", "--jobs", str(jobs))
    started = commands.read_text().split()
    # The listing, the manifest and every move went to the daemon. A small dump
    # went there too, in one call (with --jobs, its schema archive and every
    # stream); a longer one streams to an rcat of its own (with --jobs, the
    # archive and each stream).
    if hold is None:
        assert started == ["rcd"]
    else:
        assert started[0] == "rcd"
        assert started[1:] == ["rcat"] * (1 if jobs == 1 else jobs + 1)
    [entry] = list_backups("pg")
    assert (remote_dir / "db" / f"{entry.name}.manifest.json").exists()
    assert not [p for p in (remote_dir / "db").iterdir() if ".partial-" in p.name]
    call_command("verifybackup", "-d", "pg")


@pytest.mark.parametrize("daemon", ["no_daemon", "password_daemon"])
@pytest.mark.django_db(transaction=True, databases=["default", "pg"])
def test_a_database_backup_without_a_daemon_that_answers_publishes_through_rclone(
    remote_dir: Path, daemon: str, request: pytest.FixtureRequest
) -> None:
    from django.core.management import call_command

    from django_rclone_celery.operations import list_backups
    from tests.helpers.databases import populate

    log: Path = request.getfixturevalue(daemon)
    populate("pg")
    call_command("dbbackup", "-d", "pg")
    call_command("dbbackup", "-d", "pg")  # the listing sees the first: a name of its own
    started = log.read_text().split()
    assert sorted(started) == sorted(["rcd", "lsjson", "rcat", "rcat", "moveto"] * 2)
    assert len(list_backups("pg")) == 2
    call_command("verifybackup", "-d", "pg")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="abstract sockets are Linux's")
def test_a_private_daemon_leaves_no_file_and_answers_only_its_caller(
    remote_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    tempfile.tempdir = None  # read TMPDIR again
    try:
        with rc.private_daemon(_rclone()) as calls:
            calls.put_bytes(str(remote_dir / "m.json"), b"{}")
            server = calls._server
            assert server is not None
            pid = server._child.proc.pid
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            password = calls._headers["Authorization"]
            # No file for the socket, no upload file: a kill leaves nothing behind.
            assert calls._path.startswith("\0")
            assert list(temp.iterdir()) == []
            # Another local user could reach the socket, not use it: no password, no call.
            anyone = rc._UnixConnection(calls._path)
            anyone.request("POST", "/core/pid", b"{}", {"Content-Type": "application/json"})
            assert anyone.getresponse().status == 401
            anyone.close()
            # The password is in rclone's environment, never on its argv.
            assert not any(b"rc-pass" in arg for arg in argv)
            login = base64.b64decode(password.split()[1]).decode()
            assert login.split(":")[1].encode() not in b" ".join(argv)
    finally:
        tempfile.tempdir = None
    assert (remote_dir / "m.json").read_bytes() == b"{}"


@pytest.mark.django_db(transaction=True, databases=["default", "pg"])
def test_backups_of_several_databases_at_once_share_one_daemon(
    remote_dir: Path, commands: Path
) -> None:
    from django.core.management import call_command

    from django_rclone_celery.operations import list_backups
    from tests.helpers.databases import populate

    populate("pg")
    call_command("dbbackup", "-d", "default", "-d", "pg")
    started = sorted(commands.read_text().split())
    [default], [pg] = list_backups("default"), list_backups("pg")
    # One daemon for both. A small dump is written through it; a larger one
    # streams to an rcat of its own. What earlier tests left in the shared
    # SQLite database decides which of the two "default" is.
    assert pg.size <= rc.SMALL_UPLOAD
    larger = [b for b in (default, pg) if b.size > rc.SMALL_UPLOAD]
    assert started == sorted(["rcd"] + ["rcat"] * len(larger))
    call_command("verifybackup", "-d", "default", "-d", "pg")
    # The block over, each backup starts its own again.
    commands.write_text("")
    call_command("dbbackup", "-d", "pg")
    assert commands.read_text().split() == ["rcd"]
