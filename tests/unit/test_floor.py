"""The floor under both verb families: the one stream tap and the staging session.

The staging session is driven through a recording :class:`Staging` (the
connectors' own stagings are exercised by every restore test); the tap
through real bytes and, in the pipe, real programs.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os

import pytest

from django_rclone_celery import process
from django_rclone_celery.compression import ZstdDecompress, compressor
from django_rclone_celery.connectors.base import Staging
from django_rclone_celery.floor.run import Progress, Run
from django_rclone_celery.floor.staging import StagingSession
from django_rclone_celery.process import Command
from django_rclone_celery.tap import Tap, TappedReader
from tests.helpers.processes import python_program

DATA = os.urandom(3 * 1024 * 1024 + 17)
PIECES = [DATA[i : i + 65_537] for i in range(0, len(DATA), 65_537)]


def test_tap_hashes_and_counts_every_byte_in_order() -> None:
    seen: list[bytes] = []
    tap = Tap(lambda view: seen.append(bytes(view)))
    for piece in PIECES:
        tap.feed(memoryview(piece))
    assert tap.size == len(DATA)
    assert tap.sha256 == hashlib.sha256(DATA).hexdigest()
    assert b"".join(seen) == DATA
    assert not tap.ended


def test_tap_hands_on_the_same_chunk_without_copying() -> None:
    tap = Tap()
    view = memoryview(bytearray(b"abc"))
    assert tap.feed(view) is view
    assert tap.finish() == b""
    assert tap.ended


def test_a_counting_tap_hashes_nothing() -> None:
    tap = Tap(hashing=False)
    tap.feed(b"abcdef")
    assert tap.size == 6
    assert tap.sha256 == ""


def test_tapped_reader_reports_progress_and_drains() -> None:
    done: list[int] = []
    reader = TappedReader(io.BytesIO(DATA), done.append)
    assert reader.read(1000) == DATA[:1000]
    reader.drain(1 << 20)
    assert reader.size == len(DATA)
    assert reader.sha256 == hashlib.sha256(DATA).hexdigest()
    assert done[0] == 1000
    assert done[-1] == len(DATA)


def _cat(payload_size: int) -> Command:
    """A program writing ``payload_size`` bytes of a known pattern to stdout."""
    body = (
        "import sys\n"
        f"n = {payload_size}\n"
        "block = bytes(range(256)) * 4096\n"
        "while n > 0:\n"
        "    part = block[: min(n, len(block))]\n"
        "    sys.stdout.buffer.write(part)\n"
        "    n -= len(part)\n"
    )
    return Command(argv=python_program(body))


def _sink(path: str) -> Command:
    body = f"import shutil, sys\nshutil.copyfileobj(sys.stdin.buffer, open({path!r}, 'wb'))\n"
    return Command(argv=python_program(body))


def _pattern(size: int) -> bytes:
    block = bytes(range(256)) * 4096
    return (block * (size // len(block) + 1))[:size]


@pytest.mark.parametrize("digest", ["source", "sink"])
def test_pipe_taps_each_side_once(tmp_path: object, digest: str) -> None:
    """Through real programs and a real zstd transform: the digest side is hashed,
    both sides are counted, and the tap sees exactly its side's bytes."""
    size = 5 * 1024 * 1024 + 3
    out = os.path.join(str(tmp_path), "out.zst")
    tapped: list[bytes] = []
    stats = process.pipe(
        _cat(size),
        _sink(out),
        transform=compressor("zstd", 3, 0),
        digest=digest,  # type: ignore[arg-type]
        tap=lambda view: tapped.append(bytes(view)),
        tap_side="sink",
    )
    with open(out, "rb") as handle:
        stored = handle.read()
    unpack = ZstdDecompress()
    plain = unpack.feed(stored) + unpack.finish()
    assert plain == _pattern(size)
    assert stats.bytes_in == size
    assert stats.bytes_out == len(stored)
    assert b"".join(tapped) == stored
    hashed = plain if digest == "source" else stored
    assert stats.sha256 == hashlib.sha256(hashed).hexdigest()


def test_a_pipe_left_to_its_callers_tap_hashes_nothing(tmp_path: object) -> None:
    """pgclone restore hashes through its own tap (it outlives a pg_restore failure)."""
    out = os.path.join(str(tmp_path), "out.bin")
    tap = Tap()
    stats = process.pipe(_cat(1_000_003), _sink(out), transform=tap, digest=None)
    assert stats.sha256 == ""
    assert (stats.bytes_in, stats.bytes_out, tap.size) == (1_000_003,) * 3
    assert tap.ended
    assert tap.sha256 == hashlib.sha256(_pattern(1_000_003)).hexdigest()


def test_pipe_into_hashes_and_counts_what_it_wrote(tmp_path: object) -> None:
    out = os.path.join(str(tmp_path), "out.bin")
    stats = process.pipe_into(_sink(out), lambda: iter(PIECES))
    with open(out, "rb") as handle:
        assert handle.read() == DATA
    assert (stats.bytes_in, stats.bytes_out) == (len(DATA), len(DATA))
    assert stats.sha256 == hashlib.sha256(DATA).hexdigest()


class Recording(Staging):
    """A staging that records what the session asks of it; ``fail`` names a step that raises."""

    target = "staged"

    def __init__(self, fail: str = "") -> None:
        self.calls: list[str] = []
        self.fail = fail

    def _step(self, name: str) -> None:
        self.calls.append(name)
        if name == self.fail:
            raise RuntimeError(f"{name} failed")

    def prepare(self) -> None:
        self._step("prepare")

    def check(self) -> None:
        self._step("check")

    def swap(self) -> None:
        self._step("swap")

    def discard(self) -> None:
        self._step("discard")


def _run() -> tuple[Run, list[str]]:
    stages: list[str] = []

    def seen(progress: Progress) -> None:
        if not stages or stages[-1] != progress.stage:
            stages.append(progress.stage)

    return Run.start("db_restore", "default", progress=seen), stages


def test_a_session_left_cleanly_swaps() -> None:
    run, stages = _run()
    staging = Recording()
    with StagingSession(run, staging) as session:
        session.prepare()
        assert session.target == "staged"
        session.check()
    assert staging.calls == ["prepare", "check", "swap"]
    assert stages == ["prepare", "check", "swap"]


def _use(
    staging: Staging,
    *,
    swap: bool = True,
    error: BaseException | None = None,
    discard_first: bool = False,
) -> None:
    """One session's block: prepare, then (optionally) discard by hand and fail."""
    with StagingSession(_run()[0], staging, swap=swap) as session:
        session.prepare()
        try:
            if error is not None:
                raise error
        finally:
            if discard_first:
                session.discard()


def test_a_session_left_by_an_error_discards_and_never_swaps() -> None:
    staging = Recording()
    with pytest.raises(ValueError, match="load broke"):
        _use(staging, error=ValueError("load broke"))
    assert staging.calls == ["prepare", "discard"]


def test_a_failed_swap_discards_and_raises() -> None:
    staging = Recording(fail="swap")
    with pytest.raises(RuntimeError, match="swap failed"):
        _use(staging)
    assert staging.calls == ["prepare", "swap", "discard"]


def test_a_trial_session_discards_as_a_stage_of_its_own() -> None:
    run, stages = _run()
    staging = Recording()
    with StagingSession(run, staging, swap=False) as session:
        session.prepare()
    assert staging.calls == ["prepare", "discard"]
    assert stages == ["prepare", "discard"]
    failing = Recording(fail="discard")
    with pytest.raises(RuntimeError, match="discard failed"):
        _use(failing, swap=False)


def test_an_explicit_discard_is_not_repeated() -> None:
    staging = Recording()
    with pytest.raises(ValueError, match="compare broke"):
        _use(staging, swap=False, error=ValueError("compare broke"), discard_first=True)
    assert staging.calls == ["prepare", "discard"]


def test_a_failed_clean_up_never_hides_the_error(caplog: pytest.LogCaptureFixture) -> None:
    staging = Recording(fail="discard")
    with (
        caplog.at_level(logging.DEBUG, logger="django_rclone_celery"),
        pytest.raises(ValueError, match="load broke"),
    ):
        _use(staging, error=ValueError("load broke"))
    assert staging.calls == ["prepare", "discard"]
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warned] == ["could not clean up the staged restore"]


class Unprepared(Recording):
    """Preparing fails (the server is down), and so does the clean-up."""

    def prepare(self) -> None:
        raise RuntimeError("prepare failed")

    def discard(self) -> None:
        raise OSError("server down")


def test_nothing_prepared_is_cleaned_up_without_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with (
        caplog.at_level(logging.DEBUG, logger="django_rclone_celery"),
        pytest.raises(RuntimeError, match="prepare failed"),
    ):
        _use(Unprepared())
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("nothing staged to clean up" in r.getMessage() for r in caplog.records)
