"""Benchmark ``mediabackup`` against a bare ``rclone sync`` of the same change (issue #12).

    .venv/bin/python bench/media.py --files 10000 --size 5000 --rounds 3

Generates ``--files`` files of ``--size`` random bytes in 100 directories, then
backs them up twice, once with each tool, into two local-directory remotes
(untimed). Each round then:

1. makes 10 changes (6 files rewritten with a new size, 2 added, 2 deleted;
   ``--changes 10,0,0`` rewrites ten instead);
2. times ``rclone sync MEDIA <bare remote>`` and our backups of the same tree,
   each into its own remote (the order flips every round, so background load
   hits all);
3. times both again with nothing changed.

Ours is timed two ways: ``ours`` is the operation (``backup_media()``) in a
process where Django is already set up, which is what a Celery worker runs;
``ours_cmd`` is a fresh ``python bench/manage.py mediabackup`` process,
Django's start-up included. Both keep history (a version folder and a point).
Medians are printed with the target of issue #12 (ours <= 1.3x bare) and
written to ``bench/results/media.md``. CPU seconds (user + system, children
included) are reported too: on a shared machine they move less than wall time.
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
TARGET = 1.3


def cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def measure(action: Callable[[], object]) -> tuple[float, float]:
    started, used = time.perf_counter(), cpu()
    action()
    return time.perf_counter() - started, cpu() - used


def generate(media: Path, files: int, size: int) -> None:
    for index in range(files):
        directory = media / f"d{index % 100:02d}"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"f{index:06d}.bin").write_bytes(os.urandom(size))


def change(media: Path, round_: int, size: int, mix: tuple[int, int, int]) -> None:
    """The round's changes: ``mix`` = (rewrites with a new size, new files, deletions)."""
    rewrites, adds, deletes = mix
    for k in range(rewrites):
        path = media / f"d{k:02d}" / f"f{k:06d}.bin"
        path.write_bytes(os.urandom(size + round_ + 1))
    for k in range(adds):
        (media / "new" / f"r{round_}-{k}.bin").parent.mkdir(exist_ok=True)
        (media / "new" / f"r{round_}-{k}.bin").write_bytes(os.urandom(size))
    for k in range(deletes):
        (media / f"d{50 + k:02d}" / f"f{50 + k + 100 * round_:06d}.bin").unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--changes",
        default="6,2,2",
        help="Rewrites, new files and deletions per round (default 6,2,2: ten changes).",
    )
    parser.add_argument("--keep", action="store_true", help="Keep the scratch directory.")
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "media.md"))
    args = parser.parse_args()
    rewrites, adds, deletes = (int(n) for n in args.changes.split(","))

    scratch = Path(tempfile.mkdtemp(prefix="drc-bench-media-"))
    media, bare = scratch / "media", scratch / "bare"
    os.environ.update(
        DJANGO_SETTINGS_MODULE="bench.settings",
        DRC_BENCH_DIR=str(scratch),
        DRC_BENCH_REMOTE=str(scratch / "ours"),
        DRC_BENCH_MEDIA=str(media),
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django_rclone_celery.conf import get_settings
    from django_rclone_celery.operations import backup_media

    rclone = shutil.which("rclone", path=str(Path(sys.executable).parent)) or "rclone"
    flags = list(get_settings().rclone_flags)

    def bare_sync() -> None:
        subprocess.run([rclone, "sync", str(media), str(bare / "media"), *flags], check=True)

    def ours() -> None:
        backup_media()

    cmd_env = {**os.environ, "DRC_BENCH_REMOTE": str(scratch / "ours_cmd")}

    def ours_cmd() -> None:
        subprocess.run(
            [sys.executable, str(ROOT / "bench" / "manage.py"), "mediabackup"],
            check=True,
            capture_output=True,
            env=cmd_env,
        )

    try:
        print(f"generating {args.files} files of {args.size} bytes in {media}", flush=True)
        generate(media, args.files, args.size)
        first_bare, _ = measure(bare_sync)
        first_ours, _ = measure(ours)
        ours_cmd()
        print(f"first backup: bare {first_bare:.2f} s, ours {first_ours:.2f} s", flush=True)

        keys = ("bare", "ours", "ours_cmd")
        times: dict[str, dict[str, list[tuple[float, float]]]] = {
            case: {k: [] for k in keys} for case in ("changed", "no change")
        }
        runners = {"bare": bare_sync, "ours": ours, "ours_cmd": ours_cmd}
        for round_ in range(args.rounds):
            # Each tool has its own remote, so each sees the same ten changes.
            order = list(keys) if round_ % 2 == 0 else list(reversed(keys))
            change(media, round_, args.size, (rewrites, adds, deletes))
            for key in order:
                times["changed"][key].append(measure(runners[key]))
            for key in order:
                times["no change"][key].append(measure(runners[key]))
            print(
                f"round {round_ + 1}: "
                + ", ".join(
                    f"{case} {k} {times[case][k][-1][0]:.3f} s" for case in times for k in keys
                ),
                flush=True,
            )
        write_table(times, args, first_bare, first_ours)
    finally:
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


def write_table(
    times: dict[str, dict[str, list[tuple[float, float]]]],
    args: argparse.Namespace,
    first_bare: float,
    first_ours: float,
) -> None:
    lines = [
        f"{args.files} files of {args.size} bytes, {args.rounds} rounds, changes "
        f"{args.changes} (rewrites, new, deleted), medians "
        f"(first full backup: bare {first_bare:.2f} s, ours {first_ours:.2f} s)",
        "",
        "| case | bare rclone sync | ours (operation) | ratio | ours (manage.py) | ratio "
        "| CPU bare | CPU ours |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for case, by_key in times.items():
        wall = {k: statistics.median(t for t, _ in v) for k, v in by_key.items()}
        used = {k: statistics.median(c for _, c in v) for k, v in by_key.items()}
        ratio = wall["ours"] / wall["bare"]
        lines.append(
            f"| {case} | {wall['bare']:.3f} s | {wall['ours']:.3f} s | {ratio:.2f}x "
            f"{'ok' if ratio <= TARGET else 'OVER'} | {wall['ours_cmd']:.3f} s "
            f"| {wall['ours_cmd'] / wall['bare']:.2f}x | {used['bare']:.3f} s "
            f"| {used['ours']:.3f} s |"
        )
    table = "\n".join(lines)
    print(table)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table + "\n")


if __name__ == "__main__":
    main()
