"""Remotes: local-directory listings and moto's S3 server."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


def remote_files(root: Path) -> list[str]:
    """Every file under a local remote, as sorted relative POSIX paths."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@dataclass(frozen=True)
class MotoS3:
    endpoint: str
    pid: int
    remote: str = "moto"  # the rclone remote name configured by environment

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )


@dataclass(frozen=True)
class S3Remote:
    bucket: str
    remote: str  # the REMOTE setting, e.g. "moto:drc-1a2b/backups"
    s3: MotoS3

    def keys(self) -> list[str]:
        listed = self.s3.client().list_objects_v2(Bucket=self.bucket)
        return sorted(item["Key"] for item in listed.get("Contents", []))
