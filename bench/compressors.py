"""CPU-seconds and output size of each compressor on one ``pg_dump -Z0`` archive.

    .venv/bin/python bench/compressors.py --size 1000

Dumps ``drc_bench_<size>`` once with ``pg_dump -Fc -Z0`` (untimed), then
compresses the same bytes with zstandard, in-process, at levels 1-3 on the
calling thread and on one worker per CPU (``threads=-1``, 1 MiB jobs, as
``COMPRESSION_THREADS=-1`` does), and with the ``zstd -1 -T2`` binary of the
bare pipeline. It reports CPU-seconds (user + system, worker threads and
child processes included) and size in MB of 2**20 bytes, as run.py does;
``pg_dump -Fc``'s zlib size is given for comparison. CPU-seconds, not wall
time: on a shared 2-CPU machine the dump, the server and rclone compete with
the compressor, so its CPU is what a backup pays.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from generate import Server, ensure  # noqa: E402

from django_rclone_celery.compression import ZstdCompress  # noqa: E402

CHUNK = 1 << 20


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def in_process(archive: Path, level: int, threads: int) -> tuple[float, int]:
    """The product's own compressor, as ``dbbackup`` drives it."""
    packer = ZstdCompress(level, threads)
    size = 0
    started = cpu_seconds()
    with archive.open("rb") as source:
        while chunk := source.read(CHUNK):
            size += len(packer.feed(chunk))
    size += len(packer.finish())
    return cpu_seconds() - started, size


def zstd_binary(archive: Path) -> tuple[float, int]:
    started = cpu_seconds()
    out = subprocess.run(
        ["zstd", "-1", "-T2", "-c", str(archive)], check=True, capture_output=True
    ).stdout
    return cpu_seconds() - started, len(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=1000, help="database size in MB")
    parser.add_argument("--repeat", type=int, default=3, help="best of N per compressor")
    args = parser.parse_args()
    server = Server()
    dbname = f"drc_bench_{args.size}"
    ensure(server, dbname, args.size)
    env = {**os.environ, "PGHOST": server.host, "PGPORT": server.port, "PGUSER": server.user}
    with tempfile.TemporaryDirectory(prefix="drc-compressors-") as work:
        archive, zlib = Path(work) / "z0.dump", Path(work) / "fc.dump"
        for path, extra in ((archive, ["-Z0"]), (zlib, [])):
            with path.open("wb") as out:
                subprocess.run(["pg_dump", "-Fc", *extra, dbname], stdout=out, env=env, check=True)
        print(f"{dbname}: pg_dump -Fc -Z0 archive {archive.stat().st_size / 2**20:.1f} MB")
        print(f"| compressor | CPU-seconds (best of {args.repeat}) | size |")
        print("|---|---|---|")
        print(f"| `pg_dump -Fc` (zlib, for size) | | {zlib.stat().st_size / 2**20:.1f} MB |")
        cases = [("`zstd -1 -T2` (the bare pipeline's)", lambda: zstd_binary(archive))]
        for level in (1, 2, 3):
            for threads, where in ((0, "calling thread"), (-1, "one worker per CPU")):
                cases.append(
                    (
                        f"zstandard level {level}, {where}",
                        lambda lv=level, th=threads: in_process(archive, lv, th),
                    )
                )
        for label, measure in cases:
            results = []
            for _ in range(args.repeat):
                results.append(measure())
                time.sleep(0.2)
            cpu, size = min(results)
            print(f"| {label} | {cpu:.2f} | {size / 2**20:.1f} MB |", flush=True)


if __name__ == "__main__":
    main()
