"""``manage.py`` for the benchmark settings; also reports its own peak RSS.

With ``DRC_BENCH_RSS_FILE`` set, the process writes its ``VmHWM`` (peak
resident set size of this Python process only, not of pg_dump, zstd or
rclone) to that file when it exits; with ``DRC_BENCH_STAGES_FILE`` set, the
seconds of each operation stage (``pre_stage``/``post_stage`` signals).
"""

from __future__ import annotations

import atexit
import os
import sys
from pathlib import Path


def _write_peak_rss(path: str) -> None:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            Path(path).write_text(line.split()[1])  # in kB
            return


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    rss_file = os.environ.get("DRC_BENCH_RSS_FILE")
    if rss_file:
        atexit.register(_write_peak_rss, rss_file)
    stages_file = os.environ.get("DRC_BENCH_STAGES_FILE")
    if stages_file:
        _record_stages(stages_file)
    _migrate_once()
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


def _migrate_once() -> None:
    """Every run is recorded in the ledger (on ``default``): create it once per bench
    directory, in a process of its own, so a timed command never pays for it twice."""
    base = os.environ.get("DRC_BENCH_DIR")
    if not base or sys.argv[1:2] == ["migrate"]:
        return
    marker = Path(base) / ".ledger-migrated"
    if marker.exists():
        return
    import subprocess

    subprocess.run([sys.executable, __file__, "migrate", "-v0"], check=True)
    marker.touch()


def _record_stages(path: str) -> None:
    """Write each stage's seconds (and the set-up before the first) at exit."""
    import time

    started = time.monotonic()
    durations: dict[str, float] = {}
    marks: dict[str, float] = {}

    def pre(sender: object, stage: str, **kwargs: object) -> None:
        durations.setdefault("startup", time.monotonic() - started)
        marks[stage] = time.monotonic()

    def post(sender: object, stage: str, **kwargs: object) -> None:
        durations[stage] = time.monotonic() - marks.pop(stage)

    def write() -> None:
        durations["total"] = time.monotonic() - started
        Path(path).write_text(" ".join(f"{k}={v:.2f}" for k, v in durations.items()))

    # The signals module needs no app registry: connect before set-up.
    from django_rclone_celery import signals

    signals.pre_stage.connect(pre, weak=False)
    signals.post_stage.connect(post, weak=False)
    atexit.register(write)


if __name__ == "__main__":
    main()
