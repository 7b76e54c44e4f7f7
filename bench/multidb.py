"""``dbbackup --all`` over four small aliases against one alias's ``dbbackup`` (issue #19).

    .venv/bin/python bench/multidb.py --rounds 3

Four small PostgreSQL databases (``drc_bench_multidb_1`` ... ``_4``, made once
by this script: ``--rows`` rows of random text each, a few MB) are the aliases
``m1`` ... ``m4`` of ``bench/settings.py`` and its ``BACKUP_DATABASES``. Each
round runs, in an order that rotates from round to round so background load
hits every side alike:

* ``one``: ``manage.py dbbackup -d m1``, one alias;
* ``all``: ``manage.py dbbackup --all``, the four aliases in one process;
* ``four``: four ``manage.py dbbackup -d mN`` one after the other (no
  target; what a project without ``--all`` runs).

Each is a fresh ``python manage.py`` process, timed as a user runs it
(Django start-up, the run ledger, listing, manifests and publish included).
Medians are reported; the target is ``all`` at most 1.5x ``one``, as the
ratio of the medians and as the median of the per-round ratios.
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
from pathlib import Path

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
TARGET = 1.5
DATABASES = [f"drc_bench_multidb_{i}" for i in range(1, 5)]


def psql(sql: str, dbname: str = "postgres") -> str:
    return subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", dbname, "-Atqc", sql],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def ensure(rows: int) -> None:
    """The four databases, each with ``rows`` rows of random text (made once)."""
    existing = set(psql("SELECT datname FROM pg_database").split())
    for name in DATABASES:
        if name in existing and psql("SELECT count(*) FROM t", name) == str(rows):
            continue
        if name in existing:
            psql(f"DROP DATABASE {name}")
        psql(f"CREATE DATABASE {name}")
        psql(
            "CREATE TABLE t (id bigint PRIMARY KEY, body text);"
            f"INSERT INTO t SELECT g, md5(random()::text) || repeat(md5(g::text), 2) "
            f"FROM generate_series(1, {rows}) g",
            name,
        )
        psql("VACUUM ANALYZE t", name)


def run(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(
        [PYTHON, str(HERE / "manage.py"), *argv], env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stdout}{proc.stderr}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--drop", action="store_true", help="Drop the databases afterwards.")
    args = parser.parse_args()
    ensure(args.rows)
    sizes = [int(psql(f"SELECT pg_database_size('{n}')")) for n in DATABASES]
    scratch = tempfile.mkdtemp(prefix="drc-bench-multidb-")
    env = {
        **os.environ,
        "DRC_BENCH_DIR": scratch,
        "DRC_BENCH_MULTI": ",".join(DATABASES),
        "PYTHONPATH": str(HERE.parent),
    }
    sides = {
        "one": [["dbbackup", "-d", "m1", "-v0"]],
        "all": [["dbbackup", "--all", "-v0"]],
        "four": [["dbbackup", "-d", f"m{i}", "-v0"] for i in range(1, 5)],
    }
    run(["dbbackup", "-d", "m1", "-v0"], env)  # warm-up: migrates the ledger, fills caches
    times: dict[str, list[float]] = {key: [] for key in sides}
    order = list(sides)
    for round_ in range(args.rounds):
        for key in order[round_ % 3 :] + order[: round_ % 3]:
            times[key].append(sum(run(argv, env) for argv in sides[key]))
        print(f"round {round_ + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()))
    median = {key: statistics.median(v) for key, v in times.items()}
    ratio = median["all"] / median["one"]
    paired = statistics.median(a / o for a, o in zip(times["all"], times["one"], strict=True))
    cores = os.cpu_count()
    print(
        f"\n{len(DATABASES)} aliases of {min(sizes) / 1e6:.1f}-{max(sizes) / 1e6:.1f} MB "
        f"(pg_database_size), {args.rounds} rounds, {cores} cores\n"
    )
    print("| run | median | runs (s) |\n|---|---|---|")
    labels = {
        "one": "`dbbackup -d m1` (one alias)",
        "all": "`dbbackup --all` (four aliases, one process)",
        "four": "four `dbbackup -d mN`, one after the other (no target)",
    }
    for key, label in labels.items():
        runs = ", ".join(f"{t:.2f}" for t in times[key])
        print(f"| {label} | {median[key]:.2f} s | {runs} |")
    shutil.rmtree(scratch, ignore_errors=True)
    if args.drop:
        for name in DATABASES:
            psql(f"DROP DATABASE {name}")
    verdict = "PASS" if max(ratio, paired) <= TARGET else "FAIL"
    print(
        f"\n`--all` / one alias: {ratio:.2f}x (paired {paired:.2f}x), target <= {TARGET}x: "
        f"{verdict}; four separate runs / one alias: {median['four'] / median['one']:.2f}x"
    )
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
