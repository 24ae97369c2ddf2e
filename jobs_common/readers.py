"""Where training data comes from: a local file, an S3 object or prefix, or a SQL query kept beside the code.

Each reader returns a :class:`DataSet` with the frame and the sha256 that identifies the data for lineage
and re-run detection. Any failure to read is a :class:`DataError`, so missing or corrupt data stops the
job before anything is trained or uploaded.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

import pandas as pd

from jobs_common.datasize import EXPANSION, check_data_size, data_kind
from jobs_common.errors import ConfigError, DataError

LOG = logging.getLogger(__name__)
FORMATS = (".csv", ".parquet", ".pq")
SQL_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def frame_sha256(frame: pd.DataFrame) -> str:
    """Content hash of a frame (CSV of its values), for data without a source file (SQL results)."""
    return hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()


@dataclass(frozen=True)
class DataSet:
    frame: pd.DataFrame
    uri: str
    sha256: str


class DataReader(Protocol):
    def read(self) -> DataSet: ...


def _format(name: str) -> str:
    suffix = PurePosixPath(name.lower().removesuffix(".gz")).suffix
    if suffix not in FORMATS:
        raise DataError(f"{name}: unknown data format {suffix or '(no extension)'!r}; allowed: {list(FORMATS)}")
    return "csv" if suffix == ".csv" else "parquet"


def parse_bytes(data: bytes, name: str) -> pd.DataFrame:
    """CSV or Parquet by extension; a truncated/garbled file is a DataError naming the file."""
    kind = _format(name)
    if not data:
        raise DataError(f"{name}: the file is empty")
    try:
        if kind == "csv":
            compression = "gzip" if name.lower().endswith(".gz") else None
            return pd.read_csv(io.BytesIO(data), compression=compression)
        return pd.read_parquet(io.BytesIO(data))
    except Exception as exc:  # pandas/pyarrow raise many types for a malformed file
        raise DataError(f"{name}: cannot be read as {kind}: {type(exc).__name__}: {exc}") from exc


class LocalFileReader:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def read(self) -> DataSet:
        try:
            check_data_size(self.path.stat().st_size, str(self.path))  # before reading: too large is refused
            data = self.path.read_bytes()
        except OSError as exc:
            raise DataError(f"{self.path}: cannot read the training data: {exc.strerror or exc}") from exc
        return DataSet(parse_bytes(data, self.path.name), str(self.path), hashlib.sha256(data).hexdigest())


class S3Reader:
    """``s3://bucket/key`` (one object) or ``s3://bucket/prefix/`` (every CSV/Parquet object under it).

    The infra sets ``DATA_URI`` to the training-data prefix (``contracts.bucket_layout.TRAINING_DATA_PREFIX``)
    and the README tells users to put files there, so a URI ending in ``/`` reads all data files under it
    in key order (deterministic, so the same files give the same data set and sha256), concatenated; they
    must share their columns. Zero-byte "folder" markers and files whose name starts with ``_`` or ``.``
    (``_SUCCESS``, ``.keep``) are skipped with a log line; any other file must be a known format. The
    client comes from the caller (``AWS_ENDPOINT_URL`` is honoured by boto3).
    """

    def __init__(self, uri: str, s3_client: Any) -> None:
        match = re.fullmatch(r"s3://([^/]+)/(.+)", uri)
        if not match:
            raise ConfigError(f"DATA_URI {uri!r} is not an s3://bucket/key or s3://bucket/prefix/ URI")
        self.uri, self.bucket, self.key, self.s3 = uri, match[1], match[2], s3_client

    @property
    def is_prefix(self) -> bool:
        return self.key.endswith("/")

    def _get(self, key: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        where = f"s3://{self.bucket}/{key}"
        try:
            response = self.s3.get_object(Bucket=self.bucket, Key=key)
            if response.get("ContentLength") is not None:  # before reading the body: too large is refused
                try:
                    check_data_size(int(response["ContentLength"]), where)
                except DataError:
                    response["Body"].close()
                    raise
            body: bytes = response["Body"].read()
            return body
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "?")
            raise DataError(f"{where}: cannot read the training data ({code})") from exc
        except BotoCoreError as exc:
            raise DataError(f"{where}: cannot read the training data ({exc})") from exc

    def _data_keys(self) -> list[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        keys, skipped, total_bytes = [], [], 0
        try:
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.key):
                for item in page.get("Contents", []):
                    key, name = item["Key"], PurePosixPath(item["Key"]).name
                    if key.endswith("/") or name.startswith(("_", ".")):
                        skipped.append(key)
                    else:
                        keys.append(key)
                        total_bytes += int(item.get("Size", 0))
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "?")
            raise DataError(f"{self.uri}: cannot list the training data ({code})") from exc
        except BotoCoreError as exc:
            raise DataError(f"{self.uri}: cannot list the training data ({exc})") from exc
        if skipped:
            LOG.info("%s: skipped %d marker/hidden objects: %s", self.uri, len(skipped), skipped[:10])
        if not keys:
            raise DataError(
                f"{self.uri}: no data files under this prefix; put one or more {', '.join(FORMATS)} files "
                "(optionally .gz for CSV) under it, e.g. aws s3 cp churn.csv " + f"{self.uri}churn.csv"
            )
        for key in keys:
            _format(f"s3://{self.bucket}/{key}")  # every file is a known format before any is downloaded
        # All files together, before any is downloaded, as the most expanding format among them.
        kinds = {data_kind(key) for key in keys}
        check_data_size(total_bytes, self.uri, kind=max(kinds, key=EXPANSION.__getitem__))
        return sorted(keys)

    def read(self) -> DataSet:
        if not self.is_prefix:
            data = self._get(self.key)
            return DataSet(parse_bytes(data, self.key), self.uri, hashlib.sha256(data).hexdigest())
        frames, identity, first = [], hashlib.sha256(), None
        for key in self._data_keys():
            data = self._get(key)
            frame = parse_bytes(data, f"s3://{self.bucket}/{key}")
            if first is None:
                first = (key, list(frame.columns))
            elif list(frame.columns) != first[1]:
                raise DataError(
                    f"s3://{self.bucket}/{key}: columns differ from s3://{self.bucket}/{first[0]} "
                    f"({list(frame.columns)} vs {first[1]}); every file under {self.uri} must have the same columns"
                )
            frames.append(frame)
            identity.update(f"{key}\t{hashlib.sha256(data).hexdigest()}\n".encode())
        LOG.info("read %d files under %s", len(frames), self.uri)
        return DataSet(pd.concat(frames, ignore_index=True), self.uri, identity.hexdigest())


@dataclass(frozen=True)
class SqlFiles:
    """``<name>_ddl.sql`` (schema), ``<name>_etl.sql`` (the one query), ``<name>_test.sql`` (checks: no rows)."""

    name: str
    ddl: str
    etl: str
    tests: tuple[str, ...]

    @classmethod
    def load(cls, name: str, directory: Path) -> SqlFiles:
        """The three files of ``name`` in ``directory`` (the job's own query folder, e.g. retrain's SQL_DIR)."""
        if not SQL_NAME_PATTERN.fullmatch(name):
            raise ConfigError(f"SQL_NAME {name!r} must match {SQL_NAME_PATTERN.pattern}")
        paths = {part: directory / f"{name}_{part}.sql" for part in ("ddl", "etl", "test")}
        missing = [p.name for p in paths.values() if not p.is_file()]
        if missing:
            known = sorted({p.name.rsplit("_", 1)[0] for p in directory.glob("*_etl.sql")})
            raise ConfigError(f"SQL_NAME {name!r}: files {missing} not found in {directory}; known names: {known}")
        etl = split_statements(paths["etl"].read_text())
        if len(etl) != 1:
            raise ConfigError(f"{paths['etl'].name} must hold exactly one SELECT statement, found {len(etl)}")
        return cls(name, paths["ddl"].read_text(), etl[0], tuple(split_statements(paths["test"].read_text())))


def split_statements(text: str) -> list[str]:
    """Statements separated by ``;``; ``--`` comment lines are dropped (keep ``;`` out of string literals)."""
    lines = [line for line in text.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def engine_url(url: str) -> str:
    """Accept plain ``postgresql://`` (what a secret usually holds) and use the installed psycopg 3 driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _coerce(frame: pd.DataFrame) -> pd.DataFrame:
    """Drivers return Decimal/None in object columns; make numeric columns numeric again."""
    from decimal import Decimal

    for name in frame.columns:
        column = frame[name]
        if column.dtype == object:
            present = column.dropna()
            if len(present) and all(isinstance(v, int | float | Decimal) and not isinstance(v, bool) for v in present):
                frame[name] = pd.to_numeric(column.astype(object).where(column.notna(), None), errors="coerce")
    return frame


class SqlReader:
    """Runs the ``_test.sql`` checks (each must return no rows), then the ``_etl.sql`` query, read-only."""

    def __init__(self, files: SqlFiles, database_url: str) -> None:
        self.files, self.database_url = files, database_url

    def _engine(self) -> Any:
        from sqlalchemy import create_engine
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError

        try:
            return create_engine(engine_url(self.database_url))
        except (ArgumentError, NoSuchModuleError) as exc:
            raise ConfigError(f"DATABASE_URL is not a usable SQLAlchemy URL ({exc}); e.g. sqlite:///x.db") from exc

    def apply_ddl(self) -> None:
        """Create the table from ``_ddl.sql`` (local runs, the demo and tests; the job never writes)."""
        from sqlalchemy import text

        with self._engine().begin() as conn:
            for statement in split_statements(self.files.ddl):
                conn.execute(text(statement))

    def read(self) -> DataSet:
        from sqlalchemy import text
        from sqlalchemy.exc import SQLAlchemyError

        engine = self._engine()
        try:
            with engine.connect() as conn:
                for i, check in enumerate(self.files.tests, start=1):
                    rows = conn.execute(text(check)).fetchmany(5)
                    if rows:
                        raise DataError(
                            f"{self.files.name}_test.sql check {i} returned rows (it must return none): "
                            f"{[tuple(r) for r in rows]}\n  check: {' '.join(check.split())[:300]}"
                        )
                result = conn.execute(text(self.files.etl))
                frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
        except SQLAlchemyError as exc:
            raise DataError(f"SQL source {self.files.name!r}: {type(exc).__name__}: {exc}") from exc
        finally:
            engine.dispose()
        frame = _coerce(frame)
        from sqlalchemy.engine import make_url

        # URI without credentials: the query name and the database's host/path only.
        safe = make_url(engine_url(self.database_url)).render_as_string(hide_password=True)
        return DataSet(frame, f"sql://{self.files.name}@{safe}", frame_sha256(frame))
