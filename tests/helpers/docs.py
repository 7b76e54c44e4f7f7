"""Reading the docs' Markdown tables."""

from __future__ import annotations

import re


def table_rows(text: str, heading: str) -> dict[str, list[str]]:
    """Rows of the first table after ``heading``, keyed by the first cell's `code`."""
    section = text.split(heading, 1)[1]
    rows: dict[str, list[str]] = {}
    started = False
    for line in section.splitlines():
        if line.startswith("|"):
            started = True
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            match = re.fullmatch(r"`(\w+)`", cells[0])
            if match:
                rows[match.group(1)] = cells
        elif started:
            break
    return rows
