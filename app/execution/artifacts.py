"""Artifacts (screenshots): stored outside the messages, referenced by key.

``SYNMON_ARTIFACTS_URL`` chooses the store: ``file:///path`` (default: a folder in the
data directory) or ``s3://bucket/prefix`` (production; ``SYNMON_S3_ENDPOINT`` points it
at an S3-compatible endpoint).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from config.errors import RetryableError
from config.settings import Settings


class ArtifactsNotDeleted(RetryableError):
    """The store refused to delete some artifacts; the prune pass that asked is undone
    and the next one tries again."""


class ArtifactStore(Protocol):
    def put(self, key: str, data: bytes, content_type: str) -> str:
        """Store ``data`` under ``key``; the artifact's URL."""
        ...

    def delete(self, keys: Sequence[str]) -> None:
        """Remove the artifacts stored under ``keys``; a key already gone is no error
        (two prune passes, or one retried, may remove the same artifact)."""
        ...


class FolderStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, key: str, data: bytes, content_type: str) -> str:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return f"file://{path}"

    def delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            path = self.root / key
            path.unlink(missing_ok=True)
            # The run's folder (check/run/) goes with its last artifact; a folder still
            # holding something, or shared with another run, stays.
            for folder in (path.parent, path.parent.parent):
                if folder == self.root or not folder.is_relative_to(self.root):
                    break
                try:
                    folder.rmdir()
                except OSError:
                    break


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

    def delete(self, keys: Sequence[str]) -> None:
        # delete_objects takes at most 1000 keys a request; S3 reports a missing key as
        # deleted, so a retried pass fails on nothing.
        for start in range(0, len(keys), 1000):
            objects = [{"Key": self._key(key)} for key in keys[start : start + 1000]]
            answer = self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True}
            )
            if answer.get("Errors"):
                first = answer["Errors"][0]
                raise ArtifactsNotDeleted(
                    f"S3 did not delete {len(answer['Errors'])} artifacts of "
                    f"s3://{self.bucket}/, e.g. {first.get('Key')}: {first.get('Message')}"
                )


def store_for(settings: Settings) -> ArtifactStore:
    parts = urlsplit(settings.artifacts_url)
    if parts.scheme == "s3":
        return S3Store(parts.netloc, parts.path, settings)
    return FolderStore(Path(parts.netloc + parts.path))
