"""Stream compression: the thread count chosen by the CPUs a process may use."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard

from django_rclone_celery.compression import (
    ZstdCompress,
    ZstdDecompress,
    auto_threads,
    cgroup_cpu_limit,
    usable_cpus,
)


@pytest.mark.parametrize(
    ("content", "cpus"),
    [
        ("150000 100000\n", 2),  # 1.5 CPUs: a second one is partly usable
        ("200000 100000\n", 2),
        ("50000 100000\n", 1),
        ("1000 100000\n", 1),  # a sliver still counts as one
        ("400000 100000\n", 4),
        ("max 100000\n", None),  # no quota
        ("garbage\n", None),
        ("", None),
    ],
)
def test_cgroup_cpu_limit_reads_the_quota(tmp_path: Path, content: str, cpus: int | None) -> None:
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text(content)
    assert cgroup_cpu_limit(cpu_max) == cpus


def test_cgroup_cpu_limit_without_the_file(tmp_path: Path) -> None:
    assert cgroup_cpu_limit(tmp_path / "missing") is None


@pytest.mark.parametrize(("cpus", "threads"), [(1, 0), (2, 0), (3, 3), (4, 4), (64, 64)])
def test_auto_threads_uses_the_calling_thread_on_two_cpus_or_fewer(cpus: int, threads: int) -> None:
    assert auto_threads(cpus) == threads


@pytest.fixture
def one_cpu() -> Iterator[None]:
    """Pin this process to one CPU, as a container's cpuset would, then restore."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


@pytest.mark.usefixtures("one_cpu")
def test_usable_cpus_follows_the_affinity() -> None:
    assert usable_cpus() == 1
    assert ZstdCompress(2).threads == 0


@pytest.mark.parametrize(("cpus", "threads"), [(1, 1), (2, 2), (4, 4)])
def test_a_stream_python_produces_keeps_a_worker_per_usable_cpu(cpus: int, threads: int) -> None:
    assert auto_threads(cpus, python_producer=True) == threads


@pytest.mark.parametrize("threads", [None, 0, 1, -1])
def test_every_thread_mode_writes_one_frame_that_decodes(threads: int | None) -> None:
    data = b"".join(b"row %d\tsome text that repeats\n" % i for i in range(300_000))
    packer = ZstdCompress(2, threads)
    view = memoryview(data)
    parts = [packer.feed(view[i : i + 70_000]) for i in range(0, len(data), 70_000)]
    stream = b"".join(parts) + packer.finish()
    assert len(stream) < len(data) // 4
    unpacker = ZstdDecompress()
    assert unpacker.feed(memoryview(stream)) + unpacker.finish() == data
    # A cut stream is caught: the frame's end is missing.
    cut = ZstdDecompress()
    cut.feed(memoryview(stream[:-10]))
    with pytest.raises(zstandard.ZstdError):
        cut.finish()
