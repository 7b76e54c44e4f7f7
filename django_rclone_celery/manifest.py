"""The manifest written beside every backup: what made it and how to read it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from .exceptions import InvalidBackup

FORMAT_VERSION = 1


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
    version: int = FORMAT_VERSION

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
