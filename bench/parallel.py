"""Parallel PostgreSQL (``--jobs``, #19.4 and #19.5) beside the bare tools, in the same rounds.

    .venv/bin/python bench/parallel.py --size-mb 1000 [--dbname drc_bench_1000] [--repeat 3]

Measures, interleaved, each ``--repeat`` times (medians and paired ratios as
in ``run.py``, whose harness this reuses):

- ``bare_zstd``: ``pg_dump -Fc -Z0 | zstd -1 -T2 | rclone rcat`` (the bare single stream);
- ``bare_zstd_t1``: the same with ``zstd -1``, one zstd worker: the pipeline as
  issue #19 spells it (``-T2`` gives the bare side a second compressing thread);
- ``ours_zstd``: ``manage.py dbbackup`` (one stream);
- ``ours_zstd_l1``: the same at ``COMPRESSION_LEVEL`` 1, the bare pipeline's
  level (no target: the product's default, 2, writes a tenth less);
- ``ours_jobs2``: ``manage.py dbbackup --jobs 2``;
- ``worker_zstd`` and ``worker_jobs2``: the same backups as ``db_backup`` tasks
  run by a warm Celery worker (``worker.py``), from sending to result: the
  scheduled path, which pays no start-up (skipped without ``redis-server``);
- ``bare_two_dump``: the largest table's two key-range halves as two
  ``\\copy`` streams beside ``pg_dump -T`` of the rest, each ``| zstd -1 | rclone rcat``;
- ``bare_restore``: create a database, ``zstd -dc | pg_restore``, drop the previous copy;
- ``ours_restore_jobs2``: ``manage.py dbrestore --jobs 2`` of the ``--jobs 2`` backup;
- ``bare_par_restore``: schema first, the largest table's halves as two
  ``COPY ... FROM STDIN`` streams beside ``pg_restore --section=data`` of the
  rest, then ``pg_restore --section=post-data -j 2``; drop the previous copy.

The bare parallel restore reads a local, decompressed archive (it needs to
seek) and local halves, made untimed: it is the floor, not a streamed restore.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from generate import Server, database_size, ensure  # noqa: E402
from run import (  # noqa: E402
    RCLONE,
    RESTORE_FLAGS,
    Bench,
    Measure,
    Sample,
    byte_compile,
    cell,
    mb,
    ratios,
    show,
    steal_seconds,
    tool_version,
)
from worker import WarmWorker  # noqa: E402

STREAM_MARKER = ".stream-"
LABELS = {
    "bare_zstd": "bare `pg_dump -Fc -Z0 | zstd -1 -T2 | rclone rcat`",
    "bare_zstd_t1": "bare `pg_dump -Fc -Z0 | zstd -1 | rclone rcat` (the issue's)",
    "ours_zstd": "`dbbackup` (one stream)",
    "ours_zstd_l1": "`dbbackup` at COMPRESSION_LEVEL 1 (the bare pipeline's level)",
    "ours_jobs2": "`dbbackup --jobs 2`",
    "worker_zstd": "`db_backup` task in a warm worker (one stream)",
    "worker_jobs2": "`db_backup` task in a warm worker, `jobs=2`",
    "bare_two_dump": "bare two-stream dump (2 key-range `\\copy` + `pg_dump -T` rest)",
    "bare_restore": "bare `zstd -dc | pg_restore` (create db, drop old copy)",
    "ours_restore_jobs2": "`dbrestore --jobs 2` (of the `--jobs 2` backup)",
    "bare_par_restore": "bare parallel restore (schema, 2 COPY halves + data, post-data -j 2)",
}
GROUPS = [
    (
        "bare_zstd",
        "bare_zstd_t1",
        "ours_zstd",
        "ours_zstd_l1",
        "ours_jobs2",
        "worker_zstd",
        "worker_jobs2",
        "bare_two_dump",
    ),
    ("bare_restore", "ours_restore_jobs2", "bare_par_restore"),
]
# (ours, baseline, max ratio at ~1 GB, at 5 GB and more, what the issue says)
TARGETS = [
    ("ours_zstd", "bare_zstd", 1.10, 1.03, "single-stream dbbackup <= {}x bare pipeline"),
    ("ours_zstd", "bare_zstd_t1", 1.10, 1.03, "single-stream dbbackup <= {}x the issue's pipeline"),
    ("ours_jobs2", "bare_zstd", 1.10, 1.10, "dbbackup --jobs 2 <= {}x bare single stream"),
    ("ours_jobs2", "bare_zstd_t1", 1.10, 1.10, "dbbackup --jobs 2 <= {}x the issue's pipeline"),
    (
        "worker_zstd",
        "bare_zstd_t1",
        1.10,
        1.03,
        "(scheduled path) db_backup task <= {}x the issue's pipeline",
    ),
    (
        "worker_jobs2",
        "bare_zstd_t1",
        1.10,
        1.10,
        "(scheduled path) db_backup task, jobs=2 <= {}x the issue's pipeline",
    ),
    ("ours_restore_jobs2", "bare_restore", 0.85, 0.92, "dbrestore --jobs 2 <= {}x bare single"),
    (
        "ours_restore_jobs2",
        "bare_par_restore",
        1.05,
        1.05,
        "dbrestore --jobs 2 <= {}x bare parallel",
    ),
    ("ours_zstd_l1", "bare_zstd_t1", 9.9, 9.9, "(no target) dbbackup at level 1 vs the issue's"),
    ("bare_par_restore", "bare_restore", 1.0, 1.0, "(issue's figure) bare parallel vs bare single"),
    ("bare_two_dump", "bare_zstd", 9.9, 9.9, "(issue's figure) bare two-stream dump vs single"),
]


class ParallelBench(Bench):
    def __init__(self, server: Server, dbname: str, work: Path) -> None:
        super().__init__(server, dbname, work)
        self.remote_par = work / "remote-par"
        self.remote_par.mkdir()
        self.restored_par = f"{dbname}_rpar"
        with server.connect(dbname) as conn:
            row = conn.execute(
                "SELECT c.relname, a.attname FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public' "
                "JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary "
                "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0] "
                "WHERE c.relkind = 'r' ORDER BY pg_table_size(c.oid) DESC LIMIT 1"
            ).fetchone()
            assert row is not None
            self.big, self.key = str(row[0]), str(row[1])
            low, high = conn.execute(
                f"SELECT min({self.key}), max({self.key}) FROM {self.big}"
            ).fetchone()  # type: ignore[misc]
            self.mid = (int(low) + int(high)) // 2
        self.par_generation = 0
        self.prepared = False
        self.remote_warm = work / "remote-warm"
        self.remote_warm.mkdir()
        self.warm: WarmWorker | None = None

    def warm_env(self) -> dict[str, str]:
        """The worker's settings: fixed when it starts, as in production."""
        return {
            **self.env,
            "DRC_BENCH_DB": self.db,
            "DRC_BENCH_DIR": str(self.work),
            "DRC_BENCH_REMOTE": str(self.remote_warm),
            "DRC_BENCH_COMPRESSION": "zstd",
        }

    def _worker(self, **kwargs: object) -> Sample:
        assert self.warm is not None
        seconds = self.warm.run(database="bench", **kwargs)
        self.keep_newest(self.remote_warm)
        return Sample(seconds, sum(p.stat().st_size for p in (self.remote_warm / "db").iterdir()))

    def worker_zstd(self) -> Sample:
        return self._worker()

    def worker_jobs2(self) -> Sample:
        return self._worker(jobs=2)

    @staticmethod
    def newest_backup(remote: Path) -> Path:
        backups = [
            p
            for p in (remote / "db").iterdir()
            if ".partial-" not in p.name
            and not p.name.endswith(".manifest.json")
            and STREAM_MARKER not in p.name
        ]
        return max(backups, key=lambda p: p.stat().st_mtime)

    @staticmethod
    def keep_newest(remote: Path) -> None:
        newest = ParallelBench.newest_backup(remote)
        for path in (remote / "db").iterdir():
            if not path.name.startswith(newest.name):
                path.unlink()

    def ours_jobs2(self) -> Sample:
        sample = self.manage(
            ["dbbackup", "-d", "bench", "--jobs", "2"],
            db=self.db,
            remote=self.remote_par,
            compression="zstd",
        )
        self.keep_newest(self.remote_par)
        sample.size = sum(p.stat().st_size for p in (self.remote_par / "db").iterdir())
        return sample

    def _copy(self, half: int) -> str:
        cond = f"{self.key} < {self.mid}" if half == 0 else f"{self.key} >= {self.mid}"
        return f'"\\copy (SELECT * FROM {self.big} WHERE {cond}) TO STDOUT"'

    def bare_two_dump(self) -> Sample:
        out = self.bare_dir
        psql = f"psql -X -q {self.libpq} -d {self.db} -c"
        seconds = self.shell(
            f"( {psql} {self._copy(0)} | zstd -1 -q | {RCLONE} rcat {out}/h0.copy.zst ) & a=$!; "
            f"( {psql} {self._copy(1)} | zstd -1 -q | {RCLONE} rcat {out}/h1.copy.zst ) & b=$!; "
            f"pg_dump -Fc -Z0 -T {self.big} {self.libpq} {self.db} | zstd -1 -q "
            f"| {RCLONE} rcat {out}/rest.dump.zst && wait $a && wait $b"
        )
        size = sum(
            (out / n).stat().st_size for n in ("h0.copy.zst", "h1.copy.zst", "rest.dump.zst")
        )
        return Sample(seconds, size)

    def prepare_bare_parallel(self) -> None:
        """Untimed: a seekable local archive, its list without the big table's data, the halves."""
        out = self.bare_dir
        if not (out / "zstd.dump.zst").exists():
            self.bare_zstd()
        if not (out / "h0.copy.zst").exists():
            self.bare_two_dump()
        self.shell(f"zstd -dc -q {out}/zstd.dump.zst > {out}/full.dump")
        self.shell(
            f"pg_restore -l {out}/full.dump | grep -v ' TABLE DATA public {self.big} ' "
            f"> {out}/rest.list"
        )
        self.prepared = True

    @property
    def par_target(self) -> str:
        return f"{self.db}_bpar{self.par_generation % 2}"

    def bare_par_restore(self) -> Sample:
        if not self.prepared:
            self.prepare_bare_parallel()
        out = self.bare_dir
        previous = self.par_target
        self.par_generation += 1
        target = self.par_target
        psql = f"psql -X -q {self.libpq}"
        restore = f"pg_restore {RESTORE_FLAGS} {self.libpq} -d {target}"
        copy = f'{psql} -d {target} -c "COPY {self.big} FROM STDIN"'
        seconds = self.shell(
            f'{psql} -d postgres -c "CREATE DATABASE {target} TEMPLATE template0"'
            f" && {restore} --section=pre-data {out}/full.dump"
            f" && {{ ( zstd -dc -q {out}/h0.copy.zst | {copy} ) & a=$!;"
            f" ( zstd -dc -q {out}/h1.copy.zst | {copy} ) & b=$!;"
            f" {restore} --section=data -L {out}/rest.list {out}/full.dump"
            f" && wait $a && wait $b; }}"
            f" && {restore} --section=post-data -j 2 {out}/full.dump"
            f' && {psql} -d postgres -c "DROP DATABASE IF EXISTS {previous} WITH (FORCE)"'
        )
        return Sample(seconds)

    def ours_restore_jobs2(self) -> Sample:
        return self.manage(
            ["dbrestore", "-d", "bench", "--noinput", "--jobs", "2"],
            db=self.restored_par,
            remote=self.remote_par,
            compression="zstd",
        )

    def verify_parallel(self) -> str:
        source = self.fingerprint(self.db)
        for copy in (self.restored_par, self.par_target, self.bare_restored):
            if self.fingerprint(copy) != source:
                raise RuntimeError(f"{copy} does not hold the same rows as {self.db}")
        rows = sum(count for count, _ in source.values())
        return f"restored copies verified: {len(source)} tables, {rows:,} rows, same checksums"

    def drop_copies(self) -> None:
        super().drop_copies()
        with self.server.connect("postgres") as conn:
            for name in (
                self.restored_par,
                f"{self.restored_par}__temp",
                f"{self.restored_par}__old",
                f"{self.db}_bpar0",
                f"{self.db}_bpar1",
            ):
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=1000)
    parser.add_argument("--dbname", help="default: drc_bench_<size>")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--output", default=str(HERE / "results" / "parallel.md"))
    args = parser.parse_args(argv)
    server = Server()
    dbname = args.dbname or f"drc_bench_{args.size_mb}"
    ensure(server, dbname, args.size_mb)
    byte_compile()
    work = Path(tempfile.mkdtemp(prefix="drc-bench-par-"))
    bench = ParallelBench(server, dbname, work)
    measures = {key: Measure(key, label) for key, label in LABELS.items()}
    load_before = os.getloadavg()[0]
    started, steal_before = time.monotonic(), steal_seconds()
    warm = WarmWorker(bench.warm_env(), work) if WarmWorker.available() else None
    if warm is None:
        print("no redis-server: the warm worker's rows are left out", flush=True)
        for key in ("worker_zstd", "worker_jobs2"):
            del measures[key]
    try:
        bench.drop_copies()
        bench.shell(f"pg_dump -Fc -Z0 {bench.libpq} {dbname} > /dev/null")  # warm the cache
        bench.prepare_bare_parallel()
        bench.ours_jobs2()  # the restores' input, untimed
        if warm is not None:
            bench.warm = warm.__enter__()
            bench.worker_jobs2()  # the worker's first task: it has started; untimed
        for round_no in range(args.repeat):
            for group in GROUPS:
                group = tuple(key for key in group if key in measures)
                order = list(group) if round_no % 2 == 0 else list(reversed(group))
                for key in order:
                    bench.settle()
                    stolen = steal_seconds()
                    sample = getattr(bench, key)()
                    sample.steal = steal_seconds() - stolen
                    measures[key].samples.append(sample)
                    print(
                        f"  round {round_no + 1}: {key:18} {sample.seconds:7.2f} s"
                        + (f"  {mb(sample.size)}" if sample.size else "")
                        + (f"  rss {sample.rss_kb / 1024:.0f} MB" if sample.rss_kb else "")
                        + f"  steal {sample.steal:.2f} s  load {os.getloadavg()[0]:.1f}",
                        flush=True,
                    )
        verified = bench.verify_parallel()
    finally:
        if warm is not None:
            warm.__exit__(None, None, None)
        bench.drop_copies()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    cpu_seconds = (time.monotonic() - started) * (os.cpu_count() or 1)
    stolen = (steal_seconds() - steal_before) / cpu_seconds
    lines = [
        f"### {dbname}: pg_database_size {mb(database_size(server, dbname))}, "
        f"{args.repeat} rounds, {os.cpu_count()} CPUs, load average {load_before:.1f} -> "
        f"{os.getloadavg()[0]:.1f}, CPU time stolen {stolen:.1%}; pg_dump "
        f"{tool_version('pg_dump')}, zstd {tool_version('zstd')}",
        "",
        f"{verified.capitalize()}.",
        "",
        "| pipeline | median time | output size | peak RSS (Python) | runs (s) |",
        "|---|---|---|---|---|",
    ]
    for m in measures.values():
        rss = f"{m.rss_kb / 1024:.0f} MB" if m.rss_kb else ""
        runs = ", ".join(f"{s.seconds:.2f}" for s in m.samples)
        lines.append(f"| {cell(m.label)} | {m.median:.2f} s | {mb(m.size)} | {rss} | {runs} |")
    lines += ["", "| comparison | ratio (medians; paired) | target |", "|---|---|---|"]
    for ours, base, at_1gb, at_5gb, text in TARGETS:
        if ours not in measures:
            continue
        limit = at_5gb if args.size_mb >= 5000 else at_1gb
        pair = ratios(measures, ours, base)
        verdict = "" if limit > 5 else ("PASS" if max(pair) <= limit else "FAIL")
        lines.append(f"| {cell(text.format(limit))} | {show(pair)} | {verdict} |")
    report = "\n".join(lines) + "\n"
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)
    print("\n" + report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
