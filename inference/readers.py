"""Chunked input readers: CSV or Parquet, local or ``s3://``, never the whole table in memory.

An ``s3://`` input is first downloaded to a local temp file (disk, not RAM): Parquet needs random
access to its footer, and a local file makes retries of a flaky read somebody else's problem (boto3's
transfer manager).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from jobs_common.capture import split_uri, table_format
from model_package.manifest import Manifest

DEFAULT_CHUNK_ROWS = 50_000


class ChunkReader(Protocol):
    columns: list[str]

    def arrow_type(self, column: str) -> pa.DataType: ...
    def chunks(self) -> Iterator[pd.DataFrame]: ...


class CsvChunkReader:
    """``pandas.read_csv(chunksize=...)``. Every column but the numeric features is read as text, so a
    column's type cannot change from one chunk to the next (and ids like "007" survive)."""

    def __init__(self, path: Path, manifest: Manifest, chunk_rows: int) -> None:
        self.path, self.manifest, self.chunk_rows = path, manifest, chunk_rows
        header = pd.read_csv(path, nrows=0)
        self.columns = [str(c) for c in header.columns]
        numeric = {s.name for s in manifest.features if s.is_numeric}
        self._dtypes = {c: "object" for c in self.columns if c not in numeric}

    def arrow_type(self, column: str) -> pa.DataType:
        return pa.string()

    def chunks(self) -> Iterator[pd.DataFrame]:
        with pd.read_csv(self.path, dtype=self._dtypes, chunksize=self.chunk_rows) as reader:
            yield from reader


class ParquetChunkReader:
    """``ParquetFile.iter_batches``: one record batch of ``chunk_rows`` at a time."""

    def __init__(self, path: Path, chunk_rows: int) -> None:
        self.path, self.chunk_rows = path, chunk_rows
        self.file = pq.ParquetFile(path)
        self.schema = self.file.schema_arrow
        self.columns = list(self.schema.names)

    def arrow_type(self, column: str) -> pa.DataType:
        return self.schema.field(column).type

    def chunks(self) -> Iterator[pd.DataFrame]:
        for batch in self.file.iter_batches(batch_size=self.chunk_rows):
            yield batch.to_pandas()


@contextlib.contextmanager
def open_reader(uri: str, manifest: Manifest, chunk_rows: int, s3_client: Any | None = None) -> Iterator[ChunkReader]:
    """A reader for ``uri``; an ``s3://`` object is staged in a temp directory removed afterwards."""
    fmt = table_format(uri)
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"{uri}: batch inference reads CSV or Parquet, not {fmt}")
    with contextlib.ExitStack() as stack:
        if uri.startswith("s3://"):
            if s3_client is None:
                raise ValueError(f"{uri}: an S3 client is needed")
            bucket, key = split_uri(uri)
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="inference-in-")))
            path = tmp / Path(key).name
            s3_client.download_file(bucket, key, str(path))
        else:
            path = Path(uri)
            if not path.is_file():
                raise ValueError(f"{uri}: no such input file")
        yield CsvChunkReader(path, manifest, chunk_rows) if fmt == "csv" else ParquetChunkReader(path, chunk_rows)
