"""rclone's short calls through the gateway against the bare ``rclone`` call.

    .venv/bin/python bench/rclone_calls.py --calls 20 --rounds 3

A backup makes a few short rclone calls around its stream (the listing, the
manifest, the final move); each is a process start. ``Rclone._run`` starts
them with ``GOGC=off GOMEMLIMIT=256MiB`` (``rclone.QUIET_GC``). Each round
times, in flipped order, ``--calls`` listings of a directory of 50 files the
bare way (``rclone lsjson DIR`` with Go's defaults) and ours
(``Rclone.lsjson``), and reports per call the CPU of the rclone processes
(user + system) and the wall time, medians over the rounds.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def measure(action: Callable[[], object], calls: int) -> tuple[float, float]:
    """CPU seconds of the child processes and wall seconds, per call."""
    cpu, started = children_cpu(), time.perf_counter()
    for _ in range(calls):
        action()
    return (children_cpu() - cpu) / calls, (time.perf_counter() - started) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="drc-bench-calls-"))
    listed = scratch / "listed"
    listed.mkdir()
    for index in range(50):
        (listed / f"f{index:02d}.bin").write_bytes(os.urandom(1000))
    os.environ.update(DJANGO_SETTINGS_MODULE="bench.settings", DRC_BENCH_DIR=str(scratch))
    # Go's defaults on the bare side, and ours not skipped for an inherited setting.
    for name in ("GOGC", "GOMEMLIMIT"):
        os.environ.pop(name, None)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django_rclone_celery.conf import get_settings
    from django_rclone_celery.process import find_program
    from django_rclone_celery.rclone import Rclone

    settings = get_settings()
    ours = Rclone(settings)
    binary = find_program(ours.binary)  # as the gateway resolves it
    assert binary, f"{ours.binary} not found"
    bare_argv = [binary, "lsjson", str(listed), *settings.rclone_flags]
    assert len(ours.lsjson(str(listed))) == 50

    def bare() -> None:
        subprocess.run(bare_argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def gateway() -> None:
        ours.lsjson(str(listed))

    results: dict[str, list[tuple[float, float]]] = {"bare": [], "ours": []}
    try:
        for round_no in range(args.rounds):
            order = [("bare", bare), ("ours", gateway)]
            if round_no % 2:
                order.reverse()
            for key, action in order:
                results[key].append(measure(action, args.calls))
            shown = [
                f"{key} {cpu * 1000:.1f} ms CPU {wall * 1000:.1f} ms wall"
                for key, (cpu, wall) in ((k, v[-1]) for k, v in results.items())
            ]
            print(f"round {round_no + 1}: " + ", ".join(shown), flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print(f"\n{args.calls} `lsjson` calls of 50 files a side and round, {args.rounds} rounds:\n")
    print("| side | CPU per call | wall per call |")
    print("|---|---|---|")
    for key, label in (("bare", "bare `rclone lsjson`"), ("ours", "`Rclone.lsjson` (QUIET_GC)")):
        cpu = statistics.median(c for c, _ in results[key])
        wall = statistics.median(w for _, w in results[key])
        print(f"| {label} | {cpu * 1000:.1f} ms | {wall * 1000:.1f} ms |")
    ratio = statistics.median(c for c, _ in results["ours"]) / statistics.median(
        c for c, _ in results["bare"]
    )
    print(f"\nCPU ours / bare: {ratio:.2f}x")


if __name__ == "__main__":
    main()
