"""Where reports go: a local directory and/or an S3 prefix. Each write is whole or absent."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from model_package.archive import write_atomically


class ReportSink(Protocol):
    def write(self, name: str, data: bytes, content_type: str) -> str:
        """Store ``data`` as ``name``; returns where it went (path or s3:// URI)."""
        ...


class LocalReportSink:
    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def write(self, name: str, data: bytes, content_type: str) -> str:
        path = self.directory / name
        write_atomically(path, data)  # temp file + os.replace: never a half report
        return str(path)


class S3ReportSink:
    """A single PUT per object: S3 makes it visible whole or not at all."""

    def __init__(self, s3_client: Any, bucket: str, prefix: str) -> None:
        self.s3, self.bucket, self.prefix = s3_client, bucket, prefix.strip("/")

    def write(self, name: str, data: bytes, content_type: str) -> str:
        key = f"{self.prefix}/{name}"
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        return f"s3://{self.bucket}/{key}"


class MultiSink:
    """Writes to every sink; the first location is the one alerts point to."""

    def __init__(self, *sinks: ReportSink) -> None:
        self.sinks = sinks

    def write(self, name: str, data: bytes, content_type: str) -> str:
        locations = [sink.write(name, data, content_type) for sink in self.sinks]
        return locations[0]
