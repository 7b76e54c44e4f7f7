"""Stream compression. zstd runs in-process through the ``zstandard`` package.

Why the package and not the ``zstd`` binary: pip installs it everywhere the
project installs (slim images often lack the binary), it releases the GIL and
runs its own worker threads, and keeping the stream in-process lets one loop
hash and count the bytes for the manifest and for progress reports.
Measured on 254 MB of text, level 1: zstandard with 2 threads 0.69 s,
``zstd -1 -T2`` 0.86 s, for the same output size.

The default level is 2: on the benchmark's data it writes less than
``pg_dump -Fc``'s zlib (232.3 MB against 236.3 MB; level 1: 256.1 MB).

Threads: by default (``COMPRESSION_THREADS = None``) a stream is compressed on
the calling thread where the process may use at most two CPUs, and on one
worker per usable CPU elsewhere (and for streams Python itself produces). On
two CPUs the database server, the dump tool and rclone already keep about 1.8
of them busy, so worker threads find no idle CPU: they brought no speed there
and cost about 8 MB of memory (see docs/connectors.md and bench/README.md).
Worker jobs are 1 MiB, which keeps the multi-threaded compressor's memory near
10 MB instead of 20-34 MB.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import zstandard

from .conf import Compression
from .process import Transform

ZSTD_SUFFIX = ".zst"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


JOB_SIZE = 1 << 20
# Where a container's CPU quota is, under cgroup v2 with its own namespace.
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def cgroup_cpu_limit(path: Path = CGROUP_CPU_MAX) -> int | None:
    """CPUs allowed by a cgroup v2 quota (``"150000 100000"`` is 2), or None."""
    try:
        quota, period = path.read_text().split()
        return max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):  # no file, "max 100000", or unreadable
        return None


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity, capped by a CPU quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cpus = os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    return min(cpus, limit) if limit else cpus


def auto_threads(cpus: int, *, python_producer: bool = False) -> int:
    """zstd workers for ``COMPRESSION_THREADS = None``, given the usable CPUs.

    A dump tool's stream: none (the calling thread) on two CPUs or fewer, else
    one per usable CPU (zstd's own -1 would count the host's). A stream that
    Python produces itself keeps the calling thread busy, so it always gets
    one worker per usable CPU.
    """
    return 0 if cpus <= 2 and not python_producer else cpus


class ZstdCompress:
    def __init__(self, level: int = 2, threads: int | None = None) -> None:
        """``threads``: -1 one worker per CPU, 0 the calling thread, None: :func:`auto_threads`."""
        self.threads = auto_threads(usable_cpus()) if threads is None else threads
        params = zstandard.ZstdCompressionParameters.from_level(
            level, threads=self.threads, job_size=JOB_SIZE if self.threads else 0
        )
        self._obj = zstandard.ZstdCompressor(compression_params=params).compressobj()

    def feed(self, data: bytes | memoryview) -> bytes:
        return self._obj.compress(data)

    def finish(self) -> bytes:
        return self._obj.flush()


class ZstdDecompress:
    def __init__(self) -> None:
        # Our streams are one frame; its end marker is how truncation is caught.
        self._obj = zstandard.ZstdDecompressor().decompressobj()

    def feed(self, data: bytes | memoryview) -> bytes:
        return self._obj.decompress(data)

    def finish(self) -> bytes:
        if not self._obj.eof:
            raise zstandard.ZstdError("compressed stream ended before its last frame")
        return b""


class Chain:
    """Transforms applied one after the other (a SQL filter, then a compressor)."""

    def __init__(self, *stages: Transform) -> None:
        self._stages = stages

    def feed(self, data: memoryview) -> bytes | memoryview:
        out: bytes | memoryview = data
        for stage in self._stages:
            out = stage.feed(memoryview(out))
        return out

    def finish(self) -> bytes:
        out = b""
        for stage in self._stages:
            out = bytes(stage.feed(memoryview(out))) + stage.finish() if out else stage.finish()
        return out


def chain(*stages: Transform | None) -> Transform | None:
    """One transform of the given ones, skipping None; None if there are none."""
    present = [stage for stage in stages if stage is not None]
    if len(present) < 2:
        return present[0] if present else None
    return Chain(*present)


def compressor(kind: Compression, level: int, threads: int | None) -> Transform | None:
    return ZstdCompress(level, threads) if kind == "zstd" else None


def decompressor(kind: Compression) -> Transform | None:
    return ZstdDecompress() if kind == "zstd" else None


def suffix(kind: Compression) -> str:
    return ZSTD_SUFFIX if kind == "zstd" else ""
