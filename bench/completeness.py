"""What the completeness check on the backup stream costs (issue #20).

    .venv/bin/python bench/completeness.py --dbname drc_bench_1000 --rounds 3

Two measurements on the same database:

1. **Side by side**: the backup pipeline as ``dbbackup`` runs it
   (``pg_dump -Fc -Z0 | zstd level 2 in process | rclone rcat`` to a local
   directory, through ``process.pipe``), once bare and once with the
   PostgreSQL check tapped into it, interleaved and in flipped order each
   round so background load hits both alike. Wall time, medians.
2. **In isolation**: the check's own CPU time over a real dump of the same
   database, read from a file in the pipeline's 1 MiB chunks: the loop with
   the check minus the loop without, per round. CPU time of one thread is
   robust to a shared machine's noise where wall time is not.

The check's share is its isolated CPU time over the bare pipeline's wall
time; the target is at most 2%. ``--file DUMP --vendor sqlite|mysql`` measures
only (2), over a dump of another engine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from django_rclone_celery import process  # noqa: E402
from django_rclone_celery.completeness import stream_check  # noqa: E402
from django_rclone_celery.compression import compressor  # noqa: E402
from django_rclone_celery.process import CHUNK_SIZE, Command  # noqa: E402

RCLONE = shutil.which("rclone") or str(Path(sys.executable).parent / "rclone")


def dump_command(dbname: str) -> Command:
    return Command(
        argv=(
            "pg_dump",
            "--format=custom",
            "--compress=0",
            "--host=127.0.0.1",
            "--username=postgres",
            f"--dbname={dbname}",
        )
    )


def bench_connector(dbname: str) -> Any:
    """The ``bench`` alias's connector (bench/settings.py), for the snapshot counts."""
    os.environ["DRC_BENCH_DB"] = dbname
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
    sys.path.insert(0, str(HERE))
    import django

    django.setup()
    from django_rclone_celery.connectors import get_connector

    return get_connector("bench")


def pipeline(
    dbname: str, target: Path, *, checked: bool, connector: Any = None
) -> tuple[float, int]:
    """One backup stream; returns its wall time and the dump's size.

    With ``connector``, also what ``dbbackup`` adds for PostgreSQL: the dump
    reads an exported snapshot in which every table's rows are counted.
    """
    check = stream_check("postgresql") if checked else None
    started = time.perf_counter()
    with connector.counted_snapshot() if connector else nullcontext(lambda: None) as counts:
        stats = process.pipe(
            connector.dump_command(compress=False) if connector else dump_command(dbname),
            Command(argv=(RCLONE, "rcat", str(target))),
            transform=compressor("zstd", 2, None),
            digest="sink",
            tap=check.feed if check else None,
            before_end=(lambda: check.check("bench")) if check else None,
        )
        if connector:
            assert counts(), "no row counts from the snapshot"
    elapsed = time.perf_counter() - started
    target.unlink()
    return elapsed, stats.bytes_in


def read_loop(path: Path, *, checked: bool, vendor: str = "postgresql") -> float:
    """CPU seconds of reading ``path`` as process.pipe reads, with or without the check."""
    check = stream_check(vendor) if checked else None
    buffer = bytearray(CHUNK_SIZE)
    view = memoryview(buffer)
    started = time.process_time()
    fd = os.open(path, os.O_RDONLY)
    try:
        while size := os.readv(fd, [buffer]):
            if check:
                check.feed(view[:size])
    finally:
        os.close(fd)
    if check:
        check.check("bench")
    return time.process_time() - started


def isolate(path: Path, vendor: str, rounds: int) -> None:
    """The check's CPU over an existing dump file of ``vendor`` (SQLite, MariaDB, ...)."""
    cpu = []
    for _ in range(rounds):
        without = read_loop(path, checked=False, vendor=vendor)
        cpu.append(read_loop(path, checked=True, vendor=vendor) - without)
    median = statistics.median(cpu)
    size = path.stat().st_size
    print(
        f"{vendor} dump {size / 1e6:.0f} MB: the check alone {median:.3f} s CPU "
        f"({median / (size / 1e9):.3f} s/GB, {size / 1e6 / median:.0f} MB/s); rounds "
        + ", ".join(f"{t:.3f}" for t in cpu)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dbname", default="drc_bench_1000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--file", type=Path, help="only measure the check over this dump file")
    parser.add_argument("--vendor", default="postgresql", help="the engine of --file")
    parser.add_argument(
        "--counts",
        action="store_true",
        help="also time the full PostgreSQL path: the check plus the snapshot's row counts",
    )
    args = parser.parse_args()
    if args.file:
        isolate(args.file, args.vendor, args.rounds)
        return
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="drc-bench-complete-") as scratch:
        work = Path(scratch)
        bare: list[float] = []
        tapped: list[float] = []
        full: list[float] = []
        size = 0
        connector = bench_connector(args.dbname) if args.counts else None
        for round_no in range(args.rounds):
            kinds = ["bare", "checked", "full"] if connector else ["bare", "checked"]
            for kind in kinds if round_no % 2 == 0 else reversed(kinds):
                elapsed, size = pipeline(
                    args.dbname,
                    work / "backup.zst",
                    checked=kind != "bare",
                    connector=connector if kind == "full" else None,
                )
                {"bare": bare, "checked": tapped, "full": full}[kind].append(elapsed)
                print(f"round {round_no + 1} {kind:8} {elapsed:.2f} s", flush=True)
        dump = work / "dump"
        with dump.open("wb") as out:
            subprocess.run([*dump_command(args.dbname).argv], stdout=out, check=True)
        cpu: list[float] = []
        for _ in range(args.rounds):
            without = read_loop(dump, checked=False)
            with_check = read_loop(dump, checked=True)
            cpu.append(with_check - without)
        check = stream_check("postgresql")
        assert check is not None
        with dump.open("rb") as source:
            while chunk := source.read(CHUNK_SIZE):
                check.feed(chunk)
        rows = sum((check.counts() or {}).values())
    load_after = os.getloadavg()[0]
    gb = size / 1e9
    bare_median, tapped_median = statistics.median(bare), statistics.median(tapped)
    cpu_median = statistics.median(cpu)
    share = cpu_median / bare_median
    lines = [
        f"database {args.dbname}: dump {size / 1e6:.0f} MB, {rows} rows counted, "
        f"{args.rounds} rounds, load average {load_before:.1f} -> {load_after:.1f}",
        "",
        "| measurement | median | rounds |",
        "|---|---|---|",
        f"| bare pipeline, wall | {bare_median:.2f} s | "
        + ", ".join(f"{t:.2f}" for t in bare)
        + " |",
        f"| with the check, wall | {tapped_median:.2f} s | "
        + ", ".join(f"{t:.2f}" for t in tapped)
        + " |",
        f"| wall difference | {tapped_median - bare_median:+.2f} s "
        f"({(tapped_median / bare_median - 1) * 100:+.1f}%) | |",
        *(
            [
                f"| with the check and the snapshot's row counts, wall | "
                f"{statistics.median(full):.2f} s "
                f"({(statistics.median(full) / bare_median - 1) * 100:+.1f}%) | "
                + ", ".join(f"{t:.2f}" for t in full)
                + " |"
            ]
            if full
            else []
        ),
        f"| the check alone, CPU | {cpu_median:.3f} s ({cpu_median / gb:.3f} s/GB) | "
        + ", ".join(f"{t:.3f}" for t in cpu)
        + " |",
        f"| the check's share of the bare backup | {share * 100:.2f}% "
        f"({'PASS' if share <= 0.02 else 'FAIL'}: target <= 2%) | |",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
