"""``manage.py`` for the benchmark settings; also reports its own peak RSS.

With ``DRC_BENCH_RSS_FILE`` set, the process writes its ``VmHWM`` (peak
resident set size of this Python process only, not of pg_dump, zstd or
rclone) to that file when it exits.
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
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
