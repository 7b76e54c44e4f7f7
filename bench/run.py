"""Benchmark ``manage.py dbbackup`` / ``dbrestore`` against the bare pipelines, side by side.

    .venv/bin/python bench/run.py --sizes 100,1000 --repeat 3

For each size it reuses (or generates, see ``generate.py``) the database
``drc_bench_<size>``, then runs every measurement ``--repeat`` times,
interleaved: each of our commands runs right next to its baseline, and the
order inside each pair flips every round, so the machine's background load
(2 cores, shared) hits both sides alike. Medians are reported, and each
ratio twice (ratio of the medians; median of the per-round ratios), with the
targets of issue #2 marked PASS/FAIL (a time target must hold both ways), on
stdout and in ``bench/results/latest.md``.

Fairness notes (also in bench/README.md):

* Our commands are timed as a user runs them: a fresh ``python manage.py``
  process, Django start-up, listing, manifest and final ``moveto`` included.
* Both restores do the same database work, all of it timed: the bare one creates
  an empty database, runs ``zstd -dc | pg_restore`` into it and drops the
  previous copy; ``dbrestore`` creates its temp database, restores, swaps by
  rename and drops the previous copy. Both use
  ``pg_restore --no-owner --no-acl --exit-on-error``. Before every measurement
  an untimed ``CHECKPOINT`` and ``sync`` flush what the one before left dirty.
* ``dbrestore -d bench`` re-points the ``bench`` alias (``DRC_BENCH_DB``) at a
  copy, ``drc_bench_<size>_restored``, so the source database is never
  replaced; the bare restore alternates between ``drc_bench_<size>_bare0/1``.
* Peak RSS is the ``VmHWM`` of the Python process alone (children excluded),
  written by ``bench/manage.py`` when it exits.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from generate import Server, compression_sample, database_size, ensure  # noqa: E402

PYTHON = sys.executable
RCLONE = shutil.which("rclone") or str(Path(PYTHON).parent / "rclone")
RESTORE_FLAGS = "--no-owner --no-acl --exit-on-error"
# Time targets are defined on a database of about 1 GB; smaller ones are
# dominated by fixed costs (Python and Django start-up, rclone calls).
TIME_TARGET_MIN_MB = 500
RSS_LIMIT_MB = 100


@dataclass
class Sample:
    seconds: float
    size: int | None = None
    rss_kb: int | None = None
    stages: str = ""  # ours only: seconds per operation stage, for the log
    steal: float = 0.0  # CPU-seconds the hypervisor gave to other guests meanwhile


@dataclass
class Measure:
    key: str
    label: str
    samples: list[Sample] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(s.seconds for s in self.samples)

    @property
    def size(self) -> int | None:
        sizes = [s.size for s in self.samples if s.size is not None]
        return int(statistics.median(sizes)) if sizes else None

    @property
    def rss_kb(self) -> int | None:
        values = [s.rss_kb for s in self.samples if s.rss_kb is not None]
        return max(values) if values else None


class Bench:
    """Measurements for one database size; every timed step is a method."""

    def __init__(self, server: Server, dbname: str, work: Path) -> None:
        self.server = server
        self.db = dbname
        self.work = work
        self.bare_dir = work / "bare"
        self.remote = work / "remote"
        self.remote_native = work / "remote-native"
        self.remote_l1 = work / "remote-l1"
        self.remote_mt = work / "remote-mt"
        for path in (
            self.bare_dir,
            self.remote,
            self.remote_native,
            self.remote_l1,
            self.remote_mt,
        ):
            path.mkdir(parents=True, exist_ok=True)
        self.restored = f"{dbname}_restored"  # where dbrestore -d bench writes
        self.bare_generation = 0  # the bare restore alternates between two copies
        self.libpq = " ".join(shlex.quote(a) for a in server.libpq_args())
        self.env = {
            **os.environ,
            "PGHOST": server.host,
            "PGPORT": server.port,
            "PGUSER": server.user,
        }
        # The run ledger our commands record in: created here, untimed.
        subprocess.run(
            [PYTHON, str(HERE / "manage.py"), "migrate", "-v0"],
            env={**self.env, "DRC_BENCH_DIR": str(work)},
            check=True,
            cwd=ROOT,
        )
        (work / ".ledger-migrated").touch()

    # helpers ------------------------------------------------------------
    def shell(self, script: str) -> float:
        started = time.monotonic()
        proc = subprocess.run(
            ["bash", "-o", "pipefail", "-c", script], env=self.env, capture_output=True
        )
        elapsed = time.monotonic() - started
        if proc.returncode != 0:
            raise RuntimeError(f"failed ({proc.returncode}): {script}\n{proc.stderr.decode()}")
        return elapsed

    def manage(
        self,
        args: list[str],
        *,
        db: str,
        remote: Path,
        compression: str,
        level: int | None = None,
        threads: int | None = None,
    ) -> Sample:
        rss_file = self.work / "rss.txt"
        rss_file.unlink(missing_ok=True)
        stages_file = self.work / "stages.txt"
        stages_file.unlink(missing_ok=True)
        env = {
            **self.env,
            "DRC_BENCH_DB": db,
            "DRC_BENCH_DIR": str(self.work),
            "DRC_BENCH_REMOTE": str(remote),
            "DRC_BENCH_COMPRESSION": compression,
            "DRC_BENCH_RSS_FILE": str(rss_file),
            "DRC_BENCH_STAGES_FILE": str(stages_file),
        }
        # Unset means the product's own defaults are measured.
        if level is not None:
            env["DRC_BENCH_LEVEL"] = str(level)
        if threads is not None:
            env["DRC_BENCH_THREADS"] = str(threads)
        started = time.monotonic()
        proc = subprocess.run(
            [PYTHON, str(HERE / "manage.py"), *args], env=env, capture_output=True, cwd=ROOT
        )
        elapsed = time.monotonic() - started
        if proc.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{proc.stderr.decode()}")
        rss = int(rss_file.read_text()) if rss_file.exists() else None
        stages = stages_file.read_text() if stages_file.exists() else ""
        return Sample(elapsed, rss_kb=rss, stages=stages)

    @staticmethod
    def newest_backup(remote: Path) -> Path:
        backups = [
            p
            for p in (remote / "db").iterdir()
            if ".partial-" not in p.name and not p.name.endswith(".manifest.json")
        ]
        return max(backups, key=lambda p: p.stat().st_mtime)

    @staticmethod
    def keep_newest(remote: Path) -> None:
        """Remove all but the newest backup (and its manifest): disk space, not timed."""
        newest = Bench.newest_backup(remote)
        for path in (remote / "db").iterdir():
            if path.name not in (newest.name, newest.name + ".manifest.json"):
                path.unlink()

    # measurements -----------------------------------------------------------
    def bare_fc(self) -> Sample:
        out = self.bare_dir / "fc.dump"
        seconds = self.shell(f"pg_dump -Fc {self.libpq} {self.db} > {out}")
        return Sample(seconds, out.stat().st_size)

    def bare_zstd(self) -> Sample:
        out = self.bare_dir / "zstd.dump.zst"
        seconds = self.shell(
            f"pg_dump -Fc -Z0 {self.libpq} {self.db} | zstd -1 -T2 -q | {RCLONE} rcat {out}"
        )
        return Sample(seconds, out.stat().st_size)

    def bare_zstd_t1(self) -> Sample:
        """The issue's bare pipeline as it spells it: ``zstd -1``, zstd's one default worker."""
        out = self.bare_dir / "zstd-t1.dump.zst"
        seconds = self.shell(
            f"pg_dump -Fc -Z0 {self.libpq} {self.db} | zstd -1 -q | {RCLONE} rcat {out}"
        )
        return Sample(seconds, out.stat().st_size)

    def bare_null(self) -> Sample:
        """No target: ``pg_dump -Z0`` into /dev/null, the floor of any streamed backup."""
        return Sample(self.shell(f"pg_dump -Fc -Z0 {self.libpq} {self.db} > /dev/null"))

    def bare_native(self) -> Sample:
        out = self.bare_dir / "native.dump"
        seconds = self.shell(f"pg_dump -Fc {self.libpq} {self.db} | {RCLONE} rcat {out}")
        return Sample(seconds, out.stat().st_size)

    def ours_zstd(self) -> Sample:
        sample = self.manage(
            ["dbbackup", "-d", "bench"], db=self.db, remote=self.remote, compression="zstd"
        )
        self.keep_newest(self.remote)
        sample.size = self.newest_backup(self.remote).stat().st_size
        return sample

    def ours_zstd_l1(self) -> Sample:
        """Not a target: the same backup at COMPRESSION_LEVEL 1, the level of the bare pipeline."""
        sample = self.manage(
            ["dbbackup", "-d", "bench"],
            db=self.db,
            remote=self.remote_l1,
            compression="zstd",
            level=1,
        )
        self.keep_newest(self.remote_l1)
        sample.size = self.newest_backup(self.remote_l1).stat().st_size
        return sample

    def ours_zstd_mt(self) -> Sample:
        """Not a target: the same backup with COMPRESSION_THREADS -1 (a zstd worker per CPU)."""
        sample = self.manage(
            ["dbbackup", "-d", "bench"],
            db=self.db,
            remote=self.remote_mt,
            compression="zstd",
            threads=-1,
        )
        self.keep_newest(self.remote_mt)
        sample.size = self.newest_backup(self.remote_mt).stat().st_size
        return sample

    def ours_native(self) -> Sample:
        sample = self.manage(
            ["dbbackup", "-d", "bench"],
            db=self.db,
            remote=self.remote_native,
            compression="native",
        )
        self.keep_newest(self.remote_native)
        sample.size = self.newest_backup(self.remote_native).stat().st_size
        return sample

    def bare_restore(self) -> Sample:
        """Create a database, restore into it, drop the previous copy: what dbrestore does."""
        src = self.bare_dir / "zstd.dump.zst"
        previous = self.bare_restored
        self.bare_generation += 1
        target = self.bare_restored
        psql = f"psql {self.libpq} -d postgres -q -c"
        seconds = self.shell(
            f'{psql} "CREATE DATABASE {target} TEMPLATE template0"'
            f" && zstd -dc -q {src} | pg_restore {RESTORE_FLAGS} {self.libpq} -d {target}"
            f' && {psql} "DROP DATABASE IF EXISTS {previous} WITH (FORCE)"'
        )
        return Sample(seconds)

    def ours_restore(self) -> Sample:
        return self.manage(
            ["dbrestore", "-d", "bench", "--noinput"],
            db=self.restored,
            remote=self.remote,
            compression="zstd",
        )

    @property
    def bare_restored(self) -> str:
        """Where the bare restore writes: two names in turn, like dbrestore's temp and live."""
        return f"{self.db}_bare{self.bare_generation % 2}"

    def settle(self) -> None:
        """Untimed, before every measurement: flush what earlier ones left dirty.

        DROP DATABASE forces a checkpoint; without this, a restore would pay for
        writing out whatever the measurement before it left in memory.
        """
        with self.server.connect("postgres") as conn:
            conn.execute("CHECKPOINT")
        os.sync()

    def fingerprint(self, dbname: str) -> dict[str, tuple[int, str]]:
        """Exact row count and an order-independent checksum of every table."""
        result: dict[str, tuple[int, str]] = {}
        with self.server.connect(dbname) as conn:
            tables = conn.execute(
                "SELECT relname FROM pg_stat_user_tables ORDER BY relname"
            ).fetchall()
            for (table,) in tables:
                row = conn.execute(
                    f"SELECT count(*), coalesce(sum(hashtext(t::text)::bigint), 0)::text "
                    f'FROM "{table}" AS t'
                ).fetchone()
                assert row is not None
                result[str(table)] = (int(row[0]), str(row[1]))
        return result

    def verify_copies(self) -> str:
        """Check that both restores produced the source's data (untimed)."""
        source = self.fingerprint(self.db)
        for copy in (self.restored, self.bare_restored):
            if self.fingerprint(copy) != source:
                raise RuntimeError(f"{copy} does not hold the same rows as {self.db}")
        rows = sum(count for count, _ in source.values())
        return f"both restored copies verified: {len(source)} tables, {rows:,} rows, same checksums"

    def drop_copies(self) -> None:
        with self.server.connect("postgres") as conn:
            for name in (
                self.restored,
                f"{self.db}_bare0",
                f"{self.db}_bare1",
                f"{self.restored}__temp",
                f"{self.restored}__old",
            ):
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# Pairs run back to back; the order inside a pair flips every round.
PAIRS: list[tuple[str, ...]] = [
    ("bare_zstd", "ours_zstd", "ours_zstd_mt", "ours_zstd_l1"),
    ("bare_fc", "bare_null"),
    ("bare_native", "ours_native"),
    ("bare_restore", "ours_restore"),
]
LABELS = {
    "bare_fc": "bare `pg_dump -Fc > file`",
    "bare_null": "bare `pg_dump -Fc -Z0 > /dev/null` (the floor; no target)",
    "bare_zstd": "bare `pg_dump -Fc -Z0 | zstd -1 -T2 | rclone rcat`",
    "ours_zstd": "`manage.py dbbackup` (COMPRESSION=zstd)",
    "ours_zstd_mt": "`manage.py dbbackup` (zstd, COMPRESSION_THREADS=-1; no target)",
    "ours_zstd_l1": "`manage.py dbbackup` (zstd, COMPRESSION_LEVEL=1; no target)",
    "bare_native": "bare `pg_dump -Fc | rclone rcat`",
    "ours_native": "`manage.py dbbackup` (COMPRESSION=native)",
    "bare_restore": "bare `zstd -dc | pg_restore` (create db, drop old copy: timed)",
    "ours_restore": "`manage.py dbrestore --noinput` (zstd backup)",
}
# (ours, baseline, max ratio, what the issue says)
TIME_TARGETS = [
    ("ours_zstd", "bare_fc", 0.30, "dbbackup <= 0.30x bare pg_dump -Fc > file"),
    ("ours_zstd", "bare_zstd", 1.10, "dbbackup <= 1.10x bare zstd pipeline"),
    ("ours_restore", "bare_restore", 1.10, "dbrestore <= 1.10x bare zstd -dc | pg_restore"),
    ("ours_native", "bare_native", 1.05, "native <= 1.05x bare pg_dump -Fc | rclone rcat"),
]
BASELINE_OF = {
    "bare_null": "bare_fc",
    "bare_zstd": "bare_fc",
    "ours_zstd": "bare_zstd",
    "ours_zstd_mt": "bare_zstd",
    "ours_zstd_l1": "bare_zstd",
    "ours_native": "bare_native",
    "ours_restore": "bare_restore",
}


def steal_seconds() -> float:
    """CPU time stolen from this VM so far (``/proc/stat``): neighbours' load, not ours."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    return int(fields[8]) / os.sysconf("SC_CLK_TCK") if len(fields) > 8 else 0.0


def cell(text: str) -> str:
    """Escape pipes so a shell pipeline fits in a markdown table cell."""
    return text.replace("|", "\\|")


def mb(size: int | None) -> str:
    return "" if size is None else f"{size / 2**20:.0f} MB"


def run_size(
    server: Server,
    size_mb: int,
    repeat: int,
    only: set[str] | None,
    keep: bool,
    *,
    sample_ratio: bool,
) -> tuple[str, dict[str, Measure], list[tuple[str, bool | None, str]]]:
    dbname = f"drc_bench_{size_mb}"
    ensure(server, dbname, size_mb)
    db_bytes = database_size(server, dbname)
    work = Path(tempfile.mkdtemp(prefix=f"drc-bench-{size_mb}-"))
    bench = Bench(server, dbname, work)
    measures = {key: Measure(key, label) for key, label in LABELS.items()}
    wanted = [k for pair in PAIRS for k in pair if only is None or k in only]
    # Restores need their inputs; make them once, untimed, if not measured first.
    needs: dict[str, Callable[[], Sample]] = {
        "bare_restore": bench.bare_zstd,
        "ours_restore": bench.ours_zstd,
    }
    load_before = os.getloadavg()[0]
    steal_before, started = steal_seconds(), time.monotonic()
    verified = ""
    try:
        bench.drop_copies()
        bench.shell(f"pg_dump -Fc -Z0 {bench.libpq} {dbname} > /dev/null")  # warm the cache
        for key, make in needs.items():
            if key in wanted:
                make()
        for round_no in range(repeat):
            for pair in PAIRS:
                order = list(pair) if round_no % 2 == 0 else list(reversed(pair))
                for key in order:
                    if key not in wanted:
                        continue
                    bench.settle()
                    stolen = steal_seconds()
                    sample = getattr(bench, key)()
                    sample.steal = steal_seconds() - stolen
                    measures[key].samples.append(sample)
                    print(
                        f"  [{size_mb} MB] round {round_no + 1}: {key:13} {sample.seconds:6.2f} s"
                        + (f"  {mb(sample.size)}" if sample.size else "")
                        + (f"  rss {sample.rss_kb / 1024:.0f} MB" if sample.rss_kb else "")
                        + f"  steal {sample.steal:.2f} s"
                        + (f"  [{sample.stages}]" if sample.stages else ""),
                        flush=True,
                    )
        if "ours_restore" in wanted and "bare_restore" in wanted:
            verified = bench.verify_copies()
            print(f"  {verified}", flush=True)
    finally:
        bench.drop_copies()
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()[0]
    cpu_seconds = (time.monotonic() - started) * (os.cpu_count() or 1)
    stolen = (steal_seconds() - steal_before) / cpu_seconds
    measures = {k: m for k, m in measures.items() if m.samples}
    verdicts = judge(measures, size_mb)
    header = (
        f"### {dbname}: pg_database_size {mb(db_bytes)}, {repeat} rounds, "
        f"load average {load_before:.1f} -> {load_after:.1f}, "
        f"CPU time stolen by other guests {stolen:.1%}"
    )
    if sample_ratio:
        ratios = compression_sample(server, dbname)
        header += f"; zstd -1 ratio of a COPY sample: {ratios['all tables']:.2f}x"
    if verified:
        header += f"\n\n{verified.capitalize()}."
    return header, measures, verdicts


def ratios(measures: dict[str, Measure], ours: str, base: str) -> tuple[float, float]:
    """Ratio of the medians, and the median of the per-round ratios.

    Each round measures ours right next to its baseline, so the per-round ratio
    cancels load that drifts between rounds; targets must hold for both.
    """
    a, b = measures[ours], measures[base]
    paired = [x.seconds / y.seconds for x, y in zip(a.samples, b.samples, strict=True)]
    return a.median / b.median, statistics.median(paired)


def show(pair: tuple[float, float]) -> str:
    return f"{pair[0]:.2f}x (paired {pair[1]:.2f}x)"


def judge(measures: dict[str, Measure], size_mb: int) -> list[tuple[str, bool | None, str]]:
    verdicts: list[tuple[str, bool | None, str]] = []
    timed = size_mb >= TIME_TARGET_MIN_MB
    for ours, base, limit, text in TIME_TARGETS:
        if ours not in measures or base not in measures:
            continue
        pair = ratios(measures, ours, base)
        verdicts.append((text, max(pair) <= limit if timed else None, show(pair)))
    ours_size, fc_size = measures.get("ours_zstd"), measures.get("bare_fc")
    if ours_size and fc_size and ours_size.size is not None and fc_size.size is not None:
        verdicts.append(
            (
                "dbbackup output no larger than bare pg_dump -Fc > file",
                ours_size.size <= fc_size.size,
                f"{mb(ours_size.size)} vs {mb(fc_size.size)}",
            )
        )
    for key in ("ours_zstd", "ours_zstd_mt", "ours_zstd_l1", "ours_native", "ours_restore"):
        if key in measures and measures[key].rss_kb is not None:
            rss = measures[key].rss_kb / 1024  # type: ignore[operator]
            verdicts.append(
                (f"RSS <= {RSS_LIMIT_MB} MB: {LABELS[key]}", rss <= RSS_LIMIT_MB, f"{rss:.0f} MB")
            )
    return verdicts


def table(
    header: str, measures: dict[str, Measure], verdicts: list[tuple[str, bool | None, str]]
) -> str:
    lines = [
        header,
        "",
        "| pipeline | median time | ratio to baseline | output size | peak RSS (Python) "
        "| runs (s) | stolen by other guests (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, m in measures.items():
        base = BASELINE_OF.get(key)
        ratio = ""
        if base and base in measures:
            ratio = f"{show(ratios(measures, key, base))} {base}"
            if key.startswith("ours_zstd") and "bare_fc" in measures:
                ratio += f"; {show(ratios(measures, key, 'bare_fc'))} bare_fc"
        rss = f"{m.rss_kb / 1024:.0f} MB" if m.rss_kb else ""
        runs = ", ".join(f"{s.seconds:.2f}" for s in m.samples)
        stolen = ", ".join(f"{s.steal:.2f}" for s in m.samples)
        label = cell(m.label)
        lines.append(
            f"| {label} | {m.median:.2f} s | {ratio} | {mb(m.size)} | {rss} | {runs} | {stolen} |"
        )
    lines += ["", "| target | measured | result |", "|---|---|---|"]
    for text, ok, detail in verdicts:
        result = "n/a (time targets are set at ~1 GB)" if ok is None else ("PASS" if ok else "FAIL")
        lines.append(f"| {cell(text)} | {detail} | {result} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,1000", help="database sizes in MB, comma-separated")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(LABELS)}")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument("--output", default=str(HERE / "results" / "latest.md"))
    args = parser.parse_args(argv)
    only = set(args.only.split(",")) if args.only else None
    if only and only - set(LABELS):
        parser.error(f"unknown measurements: {', '.join(sorted(only - set(LABELS)))}")
    server = Server()
    byte_compile()
    started = datetime.now(timezone.utc)
    sections = [
        f"# django-rclone-celery benchmark, {started:%Y-%m-%d %H:%M} UTC",
        "",
        f"{os.cpu_count()} CPUs; pg_dump {tool_version('pg_dump')}; zstd {tool_version('zstd')}; "
        f"rclone {tool_version(RCLONE)}; Python {sys.version.split()[0]}. "
        "Medians of interleaved rounds; a ratio is given as the ratio of the medians and as"
        " the median of the per-round (paired) ratios, and a time target passes only if"
        " both meet it.",
    ]
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    for size in sizes:
        header, measures, verdicts = run_size(
            server, size, args.repeat, only, args.keep, sample_ratio=size == max(sizes)
        )
        sections += ["", table(header, measures, verdicts)]
        print("\n" + sections[-1] + "\n", flush=True)
    report = "\n".join(sections) + "\n"
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)
    print(f"written to {out}")
    return 0


def byte_compile() -> None:
    """Compile the package as ``pip install`` does, so no run pays for it.

    A source checkout has no ``.pyc`` files until Python writes them, and with
    PYTHONDONTWRITEBYTECODE set (as on some CI machines) it never does: every
    ``manage.py`` would compile the package again.
    """
    import compileall

    for directory in (ROOT / "django_rclone_celery", HERE):
        compileall.compile_dir(str(directory), quiet=1)


def tool_version(program: str) -> str:
    try:
        text = subprocess.run([program, "--version"], capture_output=True, text=True).stdout
    except OSError:
        return "?"
    first = text.splitlines()[0] if text else "?"
    words = [w.strip(",").lstrip("v") for w in first.split()]
    return next((w for w in words if w[:1].isdigit()), first)


if __name__ == "__main__":
    sys.exit(main())
