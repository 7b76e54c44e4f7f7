"""How a restored copy differs from what its manifest says the source held.

The manifest records, at dump time, the schema objects per kind
(``Connector.inventory``) and the row count per table. A trial restore reads
the same from the staged copy; every object missing or extra, and every
count that differs, is one line of the listing. A manifest written before a
field existed has nothing to compare for it: only what it has is compared.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .connectors.base import Connector, Inventory
from .floor.manifest import Manifest

SHOWN = 10  # names listed per line; the rest are counted


@dataclass(frozen=True)
class Comparison:
    compared: list[str] = field(default_factory=list)  # "inventory", "row counts"
    differences: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:SHOWN])
    return shown + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


def inventory_differences(expected: Inventory, actual: Inventory) -> list[str]:
    lines = []
    for kind in sorted(expected):  # kinds the manifest does not name are not compared
        want, got = set(expected[kind]), set(actual.get(kind, ()))
        if missing := sorted(want - got):
            lines.append(f"{kind} missing: {_names(missing)}")
        if extra := sorted(got - want):
            lines.append(f"{kind} extra: {_names(extra)}")
    return lines


def count_differences(expected: dict[str, int], actual: dict[str, int]) -> list[str]:
    """Tables whose rows differ; a table one side does not list counts as empty there
    (a dump's own counts may list only tables it wrote rows for; the inventory
    is what says which tables exist)."""
    lines = []
    for table in sorted(set(expected) | set(actual)):
        want, got = expected.get(table), actual.get(table)
        if (want or 0) != (got or 0):
            has = "no such table" if got is None else f"{got} rows"
            says = "no such table" if want is None else f"{want}"
            lines.append(f"table {table}: {has} (manifest: {says})")
    return lines


def compare_restored(connector: Connector, target: str, manifest: Manifest) -> Comparison:
    """Compare the staged copy ``target`` with ``manifest``."""
    compared: list[str] = []
    differences: list[str] = []
    notes: list[str] = []
    if manifest.inventory:
        differences += inventory_differences(manifest.inventory, connector.inventory(target))
        compared.append("inventory")
    else:
        notes.append("its manifest has no schema inventory: the restored objects were not compared")
    if manifest.row_counts and manifest.row_counts_from == "dump":
        differences += count_differences(manifest.row_counts, connector.table_counts(target))
        compared.append("row counts")
    elif manifest.row_counts:
        notes.append("its manifest's row counts are estimates: they were not compared")
    return Comparison(compared, differences, notes)
