"""Streaming, atomic output writers: Parquet or CSV, local or ``s3://``.

Chunks are streamed into a staging file (``ParquetWriter`` / Arrow ``CSVWriter``), so memory holds
one chunk. Nothing is visible at the destination until :meth:`commit`: locally an ``os.replace`` of
a temp file in the same directory, on S3 one upload whose object appears whole when the (multipart)
upload completes; boto3 aborts an unfinished multipart upload, so a failure leaves no object.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from jobs_common.capture import split_uri, table_format


class ChunkWriter(Protocol):
    uri: str

    def write(self, frame: pd.DataFrame) -> None: ...
    def commit(self) -> str: ...
    def abort(self) -> None: ...


class _StagedWriter:
    """Writes to a staging file; subclasses say where it goes on commit."""

    def __init__(self, uri: str, schema: pa.Schema, staging_dir: Path) -> None:
        self.uri, self.schema = uri, schema
        self.format = table_format(uri)
        if self.format not in ("csv", "parquet"):
            raise ValueError(f"{uri}: output must be .csv or .parquet")
        fd, name = tempfile.mkstemp(prefix=f".{Path(uri).name}.", suffix=".partial", dir=staging_dir)
        os.close(fd)
        self.staging = Path(name)
        self.rows = 0
        if self.format == "parquet":
            self._writer: Any = pq.ParquetWriter(self.staging, schema, compression="snappy")
        else:
            self._writer = pacsv.CSVWriter(str(self.staging), schema)
        self._closed = False

    def write(self, frame: pd.DataFrame) -> None:
        table = pa.Table.from_pandas(frame, schema=self.schema, preserve_index=False)
        self._writer.write_table(table)
        self.rows += len(frame)

    def _close(self) -> None:
        if not self._closed:
            self._writer.close()
            self._closed = True

    def abort(self) -> None:
        try:
            self._close()
        finally:
            self.staging.unlink(missing_ok=True)


class LocalWriter(_StagedWriter):
    def __init__(self, path: str, schema: pa.Schema) -> None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        super().__init__(path, schema, target.parent)  # same directory: os.replace is atomic

    def commit(self) -> str:
        self._close()
        with self.staging.open("rb") as handle:
            os.fsync(handle.fileno())
        self.staging.replace(self.uri)
        return self.uri


class S3Writer(_StagedWriter):
    def __init__(self, uri: str, schema: pa.Schema, s3_client: Any, staging_dir: Path) -> None:
        self.bucket, self.key = split_uri(uri)
        self.s3 = s3_client
        super().__init__(uri, schema, staging_dir)

    def commit(self) -> str:
        self._close()
        content_type = "text/csv" if self.format == "csv" else "application/vnd.apache.parquet"
        try:
            self.s3.upload_file(str(self.staging), self.bucket, self.key, ExtraArgs={"ContentType": content_type})
        finally:
            self.staging.unlink(missing_ok=True)
        return self.uri


def open_writer(uri: str, schema: pa.Schema, s3_client: Any | None, staging_dir: Path) -> ChunkWriter:
    if uri.startswith("s3://"):
        if s3_client is None:
            raise ValueError(f"{uri}: an S3 client is needed")
        return S3Writer(uri, schema, s3_client, staging_dir)
    return LocalWriter(uri, schema)


def rejected_uri(output_uri: str) -> str:
    """``preds.parquet`` -> ``preds.rejected.parquet``, beside the output."""
    head, dot, ext = output_uri.rpartition(".")
    return f"{head}.rejected.{ext}" if dot else f"{output_uri}.rejected"
