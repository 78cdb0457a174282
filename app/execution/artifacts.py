"""Artifacts (screenshots): stored outside the messages, referenced by key.

``SYNMON_ARTIFACTS_URL`` chooses the store: ``file:///path`` (default: a folder in the
data directory) or ``s3://bucket/prefix`` (production; ``SYNMON_S3_ENDPOINT`` points it
at an S3-compatible endpoint).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from config.settings import Settings


class ArtifactStore(Protocol):
    def put(self, key: str, data: bytes, content_type: str) -> str:
        """Store ``data`` under ``key``; the artifact's URL."""
        ...


class FolderStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, key: str, data: bytes, content_type: str) -> str:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return f"file://{path}"


class S3Store:
    def __init__(self, bucket: str, prefix: str, settings: Settings) -> None:
        import boto3

        self.bucket, self.prefix = bucket, prefix.strip("/")
        kwargs: dict[str, Any] = {"region_name": settings.sqs_region}
        if settings.s3_endpoint:
            kwargs.update(
                endpoint_url=settings.s3_endpoint,
                aws_access_key_id="test",
                aws_secret_access_key="test",  # noqa: S106 - local endpoints take any key
            )
        self.client = boto3.session.Session().client("s3", **kwargs)

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: bytes, content_type: str) -> str:
        self.client.put_object(
            Bucket=self.bucket, Key=self._key(key), Body=data, ContentType=content_type
        )
        return f"s3://{self.bucket}/{self._key(key)}"


def store_for(settings: Settings) -> ArtifactStore:
    parts = urlsplit(settings.artifacts_url)
    if parts.scheme == "s3":
        return S3Store(parts.netloc, parts.path, settings)
    return FolderStore(Path(parts.netloc + parts.path))
