"""Benchmark ``manage.py pgclone dump`` and ``pgclone restore :snap`` against the bare tools.

    .venv/bin/python bench/pgclone.py --size 1000 --repeat 3

Reuses ``drc_bench_<size>`` (made by ``bench/generate.py``, generated here if
missing). Each round runs ours and the baseline back to back, the order
flipping every round, so the shared machine's background load hits both;
medians are reported with the targets of issue #4 (dump within 1.05x of
``pg_dump -Fc`` to a file, ``restore :snap`` within 1.2x of ``createdb -T``),
on stdout and in ``bench/results/pgclone.md``.

Fairness:

* Ours is timed as a user runs it: a fresh ``python bench/manage.py pgclone``
  process, Django start-up and system checks included.
* Dump: the baseline is ``pg_dump -Fc`` (same flags as ours) writing a local
  file; ours streams the same archive through ``rclone rcat`` into a local
  remote, writes the manifest and publishes with ``rclone moveto``. pg_dump
  fsyncs a file it writes and rclone's local backend does not, so a second
  baseline, ``pg_dump -Fc --no-sync``, is timed too.
* Every measurement starts after an untimed ``CHECKPOINT`` and ``sync``.
* Restore: ours replaces a live database (``drc_bench_<size>_pglive``) with a
  copy of the snapshot: ``__temp`` from ``TEMPLATE``, swap by renames, drop
  of the replaced database. No pre-swap hook runs (``--pre-swap-hook`` with
  no value): hooks are the project's own commands. Two baselines are timed:
  ``createdb -T`` alone (the target), and ``dropdb`` + ``createdb -T``, which
  does the same database work as ours (one copy, one drop).
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
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
HOST = os.environ.get("DRC_PG_HOST", "127.0.0.1")
PORT = os.environ.get("DRC_PG_PORT", "5432")
USER = os.environ.get("DRC_PG_USER", "postgres")
CONN = ["--host", HOST, "--port", PORT, "--username", USER, "--no-password"]


def run(argv: list[str], env: dict[str, str] | None = None) -> None:
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    run(argv, env)
    return time.perf_counter() - started


def psql(sql: str) -> str:
    proc = subprocess.run(
        ["psql", *CONN, "--dbname=postgres", "-Atc", sql], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    return proc.stdout.strip()


def dropdb(name: str) -> None:
    run(["dropdb", *CONN, "--if-exists", "--force", name])


def ensure_source(size: int) -> str:
    name = f"drc_bench_{size}"
    if psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'") != "1":
        run([PY, str(ROOT / "bench" / "generate.py"), "--size-mb", str(size), "--dbname", name])
    return name


def settle() -> None:
    """Start each measurement clean: a copy with FILE_COPY and DROP DATABASE both
    checkpoint, and would otherwise pay for writing out what ran before them."""
    psql("CHECKPOINT")
    run(["sync"])


def manage_env(scratch: Path, database: str) -> dict[str, str]:
    return {
        **os.environ,
        "DRC_BENCH_DIR": str(scratch),
        "DRC_BENCH_DB": database,
        "DRC_BENCH_REMOTE": str(scratch / "remote"),
    }


def pairs(
    label: str,
    rounds: int,
    ours: Callable[[], float],
    baselines: dict[str, Callable[[], float]],
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"ours": [], **{name: [] for name in baselines}}
    for i in range(rounds):
        steps = [("ours", ours), *baselines.items()]
        if i % 2:
            steps.reverse()
        for name, step in steps:
            settle()
            seconds = step()
            times[name].append(seconds)
            print(f"  {label} round {i + 1}: {name:<22} {seconds:7.2f} s", flush=True)
    return times


def bench_dump(source: str, scratch: Path, rounds: int) -> dict[str, list[float]]:
    env = manage_env(scratch, source)
    store = scratch / "store"
    target = scratch / "bare.dump"

    def ours() -> float:
        seconds = timed(
            [
                PY,
                str(ROOT / "bench" / "manage.py"),
                "pgclone",
                "dump",
                "-d",
                "bench",
                "-s",
                str(store),
                "-i",
                "bench",
            ],
            env,
        )
        shutil.rmtree(store, ignore_errors=True)
        return seconds

    def bare(*extra: str) -> Callable[[], float]:
        def step() -> float:
            argv = ["pg_dump", "--format=custom", *extra, *CONN, f"--dbname={source}"]
            seconds = timed([*argv, "-f", str(target)])
            target.unlink()
            return seconds

        return step

    # pg_dump fsyncs its output file by default; rclone's local backend does
    # not, so the --no-sync run shows what the fsync alone costs the baseline.
    return pairs(
        "dump",
        rounds,
        ours,
        {"pg_dump -Fc > file": bare(), "pg_dump -Fc --no-sync > file": bare("--no-sync")},
    )


def bench_restore(source: str, scratch: Path, rounds: int) -> dict[str, list[float]]:
    snap, live, bare = f"{source}_pgsnap", f"{source}_pglive", f"{source}_pgbare"
    for name in (snap, live, bare):
        dropdb(name)
    copy_when_free(source, snap)
    copy_when_free(source, live)
    env = manage_env(scratch, live)

    def ours() -> float:
        return timed(
            [
                PY,
                str(ROOT / "bench" / "manage.py"),
                "pgclone",
                "restore",
                f":{snap}",
                "-d",
                "bench",
                "--pre-swap-hook",
            ],
            env,
        )

    def createdb_only() -> float:
        dropdb(bare)
        return timed(["createdb", *CONN, "-T", snap, bare])

    def drop_and_createdb() -> float:
        if not exists(bare):  # a full copy, so the timed drop removes as much as ours
            run(["createdb", *CONN, "-T", snap, bare])
        return timed(["dropdb", *CONN, bare]) + timed(["createdb", *CONN, "-T", snap, bare])

    try:
        return pairs(
            "restore",
            rounds,
            ours,
            {"createdb -T": createdb_only, "dropdb + createdb -T": drop_and_createdb},
        )
    finally:
        for name in (snap, live, bare, f"{live}__temp", f"{live}__old"):
            dropdb(name)


def copy_when_free(source: str, target: str, wait: float = 1800) -> None:
    """``createdb -T``, waiting while other sessions (another benchmark) read the source."""
    deadline = time.monotonic() + wait
    while True:
        proc = subprocess.run(
            ["createdb", *CONN, "-T", source, target], capture_output=True, text=True
        )
        if proc.returncode == 0:
            return
        if "being accessed" not in proc.stderr or time.monotonic() > deadline:
            raise SystemExit(proc.stderr)
        time.sleep(5)


def exists(name: str) -> bool:
    return psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'") == "1"


def report(size: int, dump: dict[str, list[float]], restore: dict[str, list[float]]) -> str:
    def med(values: list[float]) -> float:
        return statistics.median(values)

    pretty = psql(f"SELECT pg_size_pretty(pg_database_size('drc_bench_{size}'))")
    lines = [
        f"# pgclone benchmark: drc_bench_{size} ({pretty})",
        "",
        f"{len((dump or restore)['ours'])} interleaved rounds, medians, seconds.",
        "",
        "| measurement | ours | baseline | ratio | target | result |",
        "|---|---|---|---|---|---|",
    ]
    checks = [
        ("pgclone dump", dump, "pg_dump -Fc > file", 1.05),
        ("pgclone dump", dump, "pg_dump -Fc --no-sync > file", 1.05),
        ("pgclone restore :snap", restore, "createdb -T", 1.2),
        ("pgclone restore :snap", restore, "dropdb + createdb -T", 1.2),
    ]
    for label, times, baseline, target in checks:
        if baseline not in times:
            continue
        ours, base = med(times["ours"]), med(times[baseline])
        ratio = ours / base
        verdict = "PASS" if ratio <= target else "FAIL"
        lines.append(
            f"| {label} vs `{baseline}` | {ours:.2f} | {base:.2f} | {ratio:.3f}x | "
            f"{target}x | {verdict} |"
        )
    lines += ["", "All runs:", ""]
    for label, times in (("dump", dump), ("restore", restore)):
        for name, values in times.items():
            lines.append(f"- {label} {name}: " + ", ".join(f"{v:.2f}" for v in values))
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1000, help="database size in MB")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--only", choices=["dump", "restore"], help="run one benchmark")
    args = parser.parse_args()
    source = ensure_source(args.size)
    scratch = Path(tempfile.mkdtemp(prefix="drc-bench-pgclone-"))
    try:
        dump = bench_dump(source, scratch, args.repeat) if args.only != "restore" else {}
        restore = bench_restore(source, scratch, args.repeat) if args.only != "dump" else {}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    text = report(args.size, dump, restore)
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / ("pgclone.md" if dump and restore else f"pgclone-{args.only}.md")).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
