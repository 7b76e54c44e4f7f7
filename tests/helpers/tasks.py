"""Task names and settings the Celery tests share."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from django_rclone_celery import naming

BACKUP = "django_rclone_celery.db_backup"
# About 1 MB/s end to end: rclone reads its input no faster than it writes
# (no read-ahead buffer), and no compressor sits between the two holding
# output back in large blocks. 50,000 rows of make_big_table stream for ~5 s.
SLOW_STREAM: dict[str, Any] = {
    "RCLONE_FLAGS": ["--bwlimit", "1M", "--buffer-size", "0"],
    "COMPRESSION": "none",
}
RESTORE = "django_rclone_celery.db_restore"


def complete_backups(directory: Path) -> list[str]:
    """Names of visible backups, each checked against its manifest's checksum.

    Fails if anything visible is not a complete backup: a partial upload may
    only exist under its hidden ``.partial-`` name.
    """
    names = sorted(p.name for p in directory.iterdir()) if directory.exists() else []
    visible = [n for n in names if naming.PARTIAL_MARKER not in n]
    backups = [n for n in visible if not n.endswith(naming.MANIFEST_SUFFIX)]
    assert sorted(visible) == sorted(backups + [naming.manifest_name(b) for b in backups])
    for name in backups:
        manifest = json.loads((directory / naming.manifest_name(name)).read_text())
        data = (directory / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == manifest["sha256"], name
        assert len(data) == manifest["size"], name
    return backups
