"""Benchmark: ``dumpdb`` / ``loaddb`` against Django's ``dumpdata`` / ``loaddata``.

Usage::

    .venv/bin/python bench/portable.py                  # 1,000,000 rows on SQLite
    .venv/bin/python bench/portable.py --rows 100000 --alias pg

Each step runs in a fresh interpreter so its peak RSS (``ru_maxrss`` of that
child, from ``wait4``) is its own. Both tools move the same table
(``tests.portable_app.Every``: text, integers, a decimal, a datetime, a date,
a UUID, a small JSON value; the other columns NULL), and every load is checked
by counting the rows and summing a column. ``loaddata`` gets its table emptied
before its clock starts; ``loaddb``'s time includes emptying the table.

Memory is flat when the peak RSS does not grow with the row count: pass
``--rows`` twice as large and compare, or use ``--flat`` to run the portable
pair at a tenth of the rows as well.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Code run in the children: the same settings as the tests, on a private database.
CHILD = r"""
import json, os, sys, time
import django
django.setup()
from django.core.management import call_command
from django.db import connections

alias, step, rows, work = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
connection = connections[alias]
table = connection.ops.quote_name("portable_app_every")

def check():
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*), SUM(integer) FROM {table}")
        count, total = cursor.fetchone()
    assert count == rows and int(total) == rows * (rows - 1) // 2, (count, total)

started = time.perf_counter()
if step == "setup":
    call_command("migrate", database=alias, run_syncdb=True, verbosity=0)
    from tests.portable_app.models import Every
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table}")
    fields = [Every._meta.get_field(n) for n in
              ("char", "text", "integer", "small", "positive", "flag", "price", "moment", "day",
               "uid", "data", "email", "slug")]
    cols = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    sql = f"INSERT INTO {table} (id, {cols}) VALUES ({', '.join(['%s'] * (len(fields) + 1))})"
    import datetime as dt, decimal, uuid
    base = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    batch = []
    from django.db import transaction
    with transaction.atomic(using=alias):
        for i in range(rows):
            values = (f"name {i}", "some longer text " * 3, i, i % 100, i, i % 2 == 0,
                      decimal.Decimal(i) / 100, base + dt.timedelta(seconds=i),
                      dt.date(2000, 1, 1) + dt.timedelta(days=i % 9000), uuid.UUID(int=i),
                      {"i": i, "tags": ["a", "b"]}, f"u{i}@example.com", f"slug-{i}")
            batch.append([i + 1] + [f.get_db_prep_save(v, connection)
                                    for f, v in zip(fields, values)])
            if len(batch) == 5000:
                with connection.cursor() as cursor:
                    cursor.executemany(sql, batch)
                batch = []
        if batch:
            with connection.cursor() as cursor:
                cursor.executemany(sql, batch)
    check()
elif step == "dumpdb":
    call_command("dumpdb", "portable_app", "-d", work, "--database", alias, verbosity=0)
elif step == "loaddb":
    call_command("loaddb", "portable_app", "-d", work, "--database", alias, verbosity=0)
    check()
elif step == "dumpdata":
    call_command("dumpdata", "portable_app", "--database", alias, "-o", work, verbosity=0)
elif step == "loaddata":
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table}")
    started = time.perf_counter()
    call_command("loaddata", work, "--database", alias, verbosity=0)
    check()
print(json.dumps({"seconds": time.perf_counter() - started}))
"""


def run_step(alias: str, step: str, rows: int, work: Path, env: dict[str, str]) -> dict[str, float]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, alias, step, str(rows), str(work)],
        stdout=subprocess.PIPE,
        cwd=ROOT,
        env=env,
    )
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"step {step} failed with status {proc.returncode}")
    result = json.loads(out.decode().strip().splitlines()[-1])
    result["peak_rss_mb"] = usage.ru_maxrss / 1024  # Linux reports KiB
    return dict(result)


def size_of(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.iterdir())
    return path.stat().st_size


def prepare_postgres(env: dict[str, str]) -> None:
    import psycopg

    name = f"drc_pg{env['DRC_TEST_DB_SUFFIX']}"
    with psycopg.connect(
        host=env.get("DRC_PG_HOST", "127.0.0.1"),
        user="postgres",
        dbname="postgres",
        autocommit=True,
    ) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--alias", default="default", choices=["default", "pg", "maria"])
    parser.add_argument("--flat", action="store_true", help="also run dumpdb/loaddb at rows/10")
    parser.add_argument("--skip-django", action="store_true", help="only dumpdb and loaddb")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="drc-bench-portable-") as tmp:
        work = Path(tmp)
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DRC_TEST_DIR": str(work / "db"),
            "DRC_TEST_DB_SUFFIX": "_portable_bench",
            "PYTHONPATH": str(ROOT),
        }
        (work / "db").mkdir()
        if args.alias == "pg":
            prepare_postgres(env)
        elif args.alias == "maria":
            import pymysql

            conn = pymysql.connect(host="127.0.0.1", user="root")
            with conn.cursor() as cursor:
                cursor.execute("DROP DATABASE IF EXISTS drc_maria_portable_bench")
                cursor.execute("CREATE DATABASE drc_maria_portable_bench CHARACTER SET utf8mb4")
            conn.close()

        sizes = [args.rows // 10, args.rows] if args.flat else [args.rows]
        report: dict[str, dict[str, float]] = {}
        for rows in sizes:
            print(f"setting up {rows:,} rows on {args.alias} ...", flush=True)
            run_step(args.alias, "setup", rows, work, env)
            steps = [("dumpdb", work / f"datadir-{rows}"), ("loaddb", work / f"datadir-{rows}")]
            if rows == args.rows and not args.skip_django:
                json_file = work / f"dumpdata-{rows}.json"
                steps += [("dumpdata", json_file), ("loaddata", json_file)]
            for step, target in steps:
                result = run_step(args.alias, step, rows, target, env)
                result["bytes"] = size_of(target)
                report[f"{step}@{rows}"] = result
                print(
                    f"  {step:9} {rows:>9,} rows  {result['seconds']:8.2f} s  "
                    f"peak RSS {result['peak_rss_mb']:7.1f} MB  "
                    f"output {result['bytes'] / 1e6:7.1f} MB",
                    flush=True,
                )
        n = args.rows
        if not args.skip_django:
            for ours, theirs in (("dumpdb", "dumpdata"), ("loaddb", "loaddata")):
                a, b = report[f"{ours}@{n}"], report[f"{theirs}@{n}"]
                print(
                    f"{ours} vs {theirs}: {b['seconds'] / a['seconds']:.1f}x faster, "
                    f"peak RSS {a['peak_rss_mb']:.0f} MB vs {b['peak_rss_mb']:.0f} MB"
                )
        print(json.dumps({"alias": args.alias, "rows": n, "results": report}, indent=2))


if __name__ == "__main__":
    main()
