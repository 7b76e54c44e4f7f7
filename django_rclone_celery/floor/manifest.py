"""The manifest written beside every backup: what made it, how to read it, and who may."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .. import naming
from ..exceptions import InvalidBackup, RcloneError
from ..rclone import Rclone
from .catalogue import stat

if TYPE_CHECKING:
    from ..connectors import Connector

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


def read_manifest(rclone: Rclone, path: str) -> Manifest | None:
    """The manifest beside the object at ``path``; None if it has none (django-rclone's)."""
    manifest_path = path + naming.MANIFEST_SUFFIX
    try:
        data = rclone.get_bytes(manifest_path)
    except RcloneError as exc:
        if exc.not_found or "not found" in exc.stderr.lower():
            return None  # a django-rclone backup: no manifest
        raise
    if not data and stat(rclone, manifest_path) is None:
        # Bucket remotes: ``rclone cat`` of a missing object prints nothing and succeeds.
        return None
    return Manifest.from_bytes(data)


def check_manifest(manifest: Manifest, connector: Connector, name: str) -> None:
    """Refuse a backup ``connector``'s database cannot load, before anything is touched."""
    if manifest.format not in ("native", "portable"):
        raise InvalidBackup(f"{name!r} is in the unknown format {manifest.format!r}")
    # A portable backup is JSON through the models: any engine can load it.
    if manifest.format == "native" and manifest.vendor != connector.vendor:
        raise InvalidBackup(
            f"{name!r} is a {manifest.vendor} backup; database {connector.alias!r} "
            f"is {connector.vendor}: refusing to restore across engines "
            "(only a portable backup can go across engines)"
        )
    if manifest.compression not in ("zstd", "native", "none"):
        raise InvalidBackup(f"{name!r} uses unknown compression {manifest.compression!r}")
