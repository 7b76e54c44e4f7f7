"""The manifest written beside every backup: what made it and how to read it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from .exceptions import InvalidBackup

FORMAT_VERSION = 2
# Version 2 added ``streams``: a manifest with streams is written as version 2,
# so a release that cannot load them refuses the backup instead of half-loading it.


@dataclass(frozen=True, kw_only=True)
class Manifest:
    database: str
    engine: str
    vendor: str
    connector: str
    compression: str  # "zstd", "native" or "none"
    format: str = "native"  # "native" (the dump tool's) or "portable"
    size: int = 0
    sha256: str = ""
    created: str = ""
    tool_versions: dict[str, str] = field(default_factory=dict)
    row_counts: dict[str, int] = field(default_factory=dict)
    # "dump": counted from the dump's stream or inside the snapshot it read,
    # so exact for this backup; "" on older manifests (server-engine estimates).
    row_counts_from: str = ""
    # Schema objects by kind ("tables", "views", "triggers"...): Connector.inventory().
    inventory: dict[str, list[str]] = field(default_factory=dict)
    # A parallel PostgreSQL backup (#19.4): the object itself is the schema
    # archive; each entry is a data stream (``name``, ``size``, ``sha256``,
    # ``pieces``: what it holds). Empty for a single-stream backup.
    streams: list[dict[str, Any]] = field(default_factory=list)
    layout: str = ""  # "" one stream; "pg-parallel": schema archive + data streams
    version: int = 1

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), indent=2, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        try:
            raw: dict[str, Any] = json.loads(data)
            known = {k: raw[k] for k in cls.__dataclass_fields__ if k in raw}
            manifest = cls(**known)
        except (ValueError, TypeError) as exc:
            raise InvalidBackup(f"manifest is not readable: {exc}") from None
        if manifest.version > FORMAT_VERSION:
            raise InvalidBackup(
                f"manifest version {manifest.version} is newer than this release understands"
            )
        return manifest
