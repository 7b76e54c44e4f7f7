"""django-pgclone's verbs over rclone: ``ls``, ``dump``, ``restore`` and ``copy``.

Each returns what django-pgclone's does: dump keys (``ls``), the key written
(``dump``), restored (``restore``) or created (``copy``).
"""

from __future__ import annotations

from .copy import copy
from .dump import dump
from .ls import ls
from .restore import restore

__all__ = ["copy", "dump", "ls", "restore"]
