"""Where production rows come from: capture JSON lines (local, S3, SQL), CSV/Parquet tables, labels.

Every reader returns :class:`Observations`, so the drift job does not care whether the rows came
from the app's capture or from a table somebody exported. Readers are small classes so a job can be
handed another one (a test, a different store) without touching the analysis.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import numpy as np
import pandas as pd

from contracts.bucket_layout import PROD_CAPTURE_PREFIX, hour_prefixes
from contracts.capture_record import IDS, INPUT, LATENCY_MS, OUTPUT, PROBABILITIES, PROBABILITY, TIME, UID, VALUE
from jobs_common.columns import csv_dtypes
from model_package.manifest import Manifest, TaskSpec

LOG = logging.getLogger(__name__)
CAPTURE_SUFFIXES = (".jsonl", ".json", ".ndjson")
TABLE_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", **dict.fromkeys(CAPTURE_SUFFIXES, "jsonl")}


@dataclass
class Observations:
    """Production rows split into model inputs and what is known about each prediction."""

    inputs: pd.DataFrame
    labels: np.ndarray | None = None  # float, NaN where no label arrived: class index, or the value (regression)
    # The per-row prediction score (``Predictions.score``): binary P(positive), multiclass the probability of
    # the predicted label, regression the value. NaN where unknown.
    probability: np.ndarray | None = None
    class_probabilities: np.ndarray | None = None  # multiclass: (n, K) in manifest.task.labels order
    uid: np.ndarray | None = None
    time: pd.Series | None = None  # tz-aware UTC
    latency_ms: np.ndarray | None = None

    @property
    def rows(self) -> int:
        return len(self.inputs)


def split_uri(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc or not parsed.path.lstrip("/"):
        raise ValueError(f"{uri!r} is not an s3://bucket/key URI")
    return parsed.netloc, parsed.path.lstrip("/")


def table_format(path: str) -> str:
    name = path.lower().removesuffix(".gz")
    for suffix, fmt in TABLE_FORMATS.items():
        if name.endswith(suffix):
            return fmt
    raise ValueError(
        f"{path}: cannot tell the format from the name; allowed: .csv, .parquet/.pq, .jsonl/.json/.ndjson (capture)"
    )


def parse_time(value: Any) -> datetime:
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def iter_json_lines(lines: Iterable[str | bytes], source: str) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(lines, start=1):
        text = line.decode() if isinstance(line, bytes) else line
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{source}: line {number} is not JSON ({exc}); capture files are JSON lines") from exc
        if not isinstance(record, dict) or not isinstance(record.get(INPUT), dict):
            raise ValueError(f"{source}: line {number} is not a capture record (an object with an 'input' object)")
        yield record


def scores_from_outputs(outputs: list[dict[str, Any]], task: TaskSpec | None) -> tuple[np.ndarray, np.ndarray | None]:
    """(per-row score, multiclass probability matrix) from capture ``output`` objects of any task.

    The output keys are the capture contract's (``contracts.capture_record.OUTPUT_KEYS``): binary
    ``probability``, multiclass ``probabilities`` keyed by ``str(label)``, regression ``value``.
    """
    kind = task.type if task is not None else "binary"
    if kind == "regression":
        return np.array([_number(o.get(VALUE)) for o in outputs], dtype=np.float64), None
    if kind == "multiclass":
        assert task is not None
        keys = [str(label) for label in task.labels]
        matrix = np.full((len(outputs), len(keys)), np.nan)
        for i, output in enumerate(outputs):
            given = output.get(PROBABILITIES)
            if isinstance(given, dict):
                matrix[i] = [_number(given.get(k)) for k in keys]
        score = np.nanmax(matrix, axis=1, initial=np.nan) if len(outputs) else np.empty(0)
        return score, matrix
    return np.array([_number(o.get(PROBABILITY)) for o in outputs], dtype=np.float64), None


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else np.nan


def label_values(values: Any, task: TaskSpec | None, source: str) -> np.ndarray:
    """Ground truth as float: the class index (binary, multiclass; user labels or their text) or the value.

    A label that is not one of the model's labels is an error naming the allowed ones: silently reading
    it as a class (or as NaN) would skew the live metrics.
    """
    series = pd.Series(values, dtype=object)
    if task is None or task.type == "regression":
        numbers = pd.to_numeric(series, errors="coerce")
        bad = numbers.isna() & series.notna()
        if bad.any():
            raise ValueError(f"{source}: {int(bad.sum())} labels are not numbers, e.g. {series[bad].iloc[0]!r}")
        labels: np.ndarray = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
        return labels
    out = np.full(len(series), np.nan)
    unknown = []
    for i, value in enumerate(series):
        if value is None or (isinstance(value, float) and np.isnan(value)):
            continue
        index = task.label_index(value)
        if index is None and isinstance(value, float) and value.is_integer():
            index = task.label_index(int(value))  # CSV/pandas reads 0/1 as 0.0/1.0
        if index is None:
            unknown.append(value)
        else:
            out[i] = index
    if unknown:
        raise ValueError(
            f"{source}: {len(unknown)} labels are not labels of this model, e.g. {unknown[0]!r}; "
            f"allowed: {list(task.labels)}"
        )
    return out


def observations_from_records(
    records: list[dict[str, Any]], target: str | None = None, task: TaskSpec | None = None
) -> Observations:
    """Capture records (contract 3) -> inputs frame plus the task's prediction score, uid, time, latency."""
    inputs = pd.DataFrame.from_records([r[INPUT] for r in records])
    if target is not None and target in inputs.columns:
        inputs = inputs.drop(columns=[target])

    def meta(key: str, default: Any = None) -> list[Any]:
        return [r.get(key, default) for r in records]

    outputs = [r.get(OUTPUT) or {} for r in records]
    probability, matrix = scores_from_outputs(outputs, task)
    times = pd.to_datetime(pd.Series(meta(TIME)), utc=True, errors="coerce", format="ISO8601")
    latency = np.array([np.nan if v is None else v for v in meta(LATENCY_MS)], dtype=np.float64)
    return Observations(
        inputs=inputs,
        probability=probability,
        class_probabilities=matrix,
        uid=np.array(meta(UID), dtype=object),
        time=times,
        latency_ms=latency,
    )


def observations_from_frame(frame: pd.DataFrame, manifest: Manifest) -> Observations:
    """A table of features, optionally with the target (labels) and the training time column."""
    labels = None
    if manifest.target in frame.columns:
        labels = label_values(frame[manifest.target].to_numpy(dtype=object), manifest.task, manifest.target)
    time_column = manifest.training_data.time_column
    time = None
    if time_column and time_column in frame.columns and time_column not in manifest.feature_names:
        time = pd.to_datetime(frame[time_column], utc=True, errors="coerce")
    drop = [c for c in (manifest.target, time_column) if c and c in frame.columns and c not in manifest.feature_names]
    return Observations(inputs=frame.drop(columns=drop), labels=labels, time=time)


class S3Download:
    """``s3://`` objects to local files (a temp file, never memory: inputs can be large)."""

    def __init__(self, s3_client: Any) -> None:
        self.s3 = s3_client

    def download(self, uri: str, path: Path) -> None:
        bucket, key = split_uri(uri)
        self.s3.download_file(bucket, key, str(path))


SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
_SQLITE_MAGIC = b"SQLite format 3\x00"
LOCAL_CAPTURE_EXPECTED = (
    "expected the app's local capture: capture JSON lines (*.jsonl/*.json/*.ndjson: the S3 layout or the "
    "app's SPOOL_DIR segments) and/or its SQLite capture database (*.db/*.sqlite/*.sqlite3, the file of "
    "CAPTURE_DB_URL=sqlite:///...), or a sqlite:/// URL"
)


def _is_sqlite(path: Path) -> bool:
    if path.suffix.lower() in SQLITE_SUFFIXES:
        return True
    try:
        with path.open("rb") as handle:
            return handle.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC
    except OSError:
        return False


def _local_files(path: Path) -> tuple[list[Path], list[Path]]:
    """(JSON-lines files, SQLite files) under a directory; quarantine and temp files are not capture."""
    lines: list[Path] = []
    databases: list[Path] = []
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        relative = file.relative_to(path).parts
        if any(part.endswith("-quarantine") for part in relative[:-1]) or file.name.startswith(".tmp-"):
            continue
        if file.suffix in CAPTURE_SUFFIXES:
            lines.append(file)
        elif file.suffix.lower() in SQLITE_SUFFIXES and not file.name.endswith(("-wal", "-shm", "-journal")):
            databases.append(file)
    return lines, databases


def _local_sources(path: Path) -> tuple[list[Path], list[Path], str]:
    """(JSON-lines files, SQLite files, description) of a local path, or an error naming what is expected."""
    if not path.exists():
        raise ValueError(f"{path}: no such file or directory; {LOCAL_CAPTURE_EXPECTED}")
    if path.is_dir():
        lines, databases = _local_files(path)
        if not lines and not databases:
            raise ValueError(f"{path}: holds no capture files; {LOCAL_CAPTURE_EXPECTED}")
        return lines, databases, f"{path} ({len(lines)} JSON-lines files, {len(databases)} SQLite databases)"
    if _is_sqlite(path):
        return [], [path], str(path)
    if path.suffix in CAPTURE_SUFFIXES:
        return [path], [], str(path)
    raise ValueError(f"{path}: not a capture file; {LOCAL_CAPTURE_EXPECTED}")


def _read_sqlite(path: Path) -> list[dict[str, Any]]:
    return SqlCaptureReader(f"sqlite:///{path}").read(None, datetime(1970, 1, 1, tzinfo=UTC))


def read_local_capture(source: str | Path) -> list[dict[str, Any]]:
    """Every capture record of a local source, deduplicated by uid (see :data:`LOCAL_CAPTURE_EXPECTED`).

    Why dedup: a spool segment the sink already confirmed stays on disk until the app deletes it, so the
    same record can be in a segment and in the database. Why an error when nothing is found: a summary
    of 0 predictions from a path that simply held another format looked like a quiet service.
    """
    text = str(source)
    if text.startswith("sqlite:"):
        import sqlalchemy as sa

        database = sa.make_url(text).database
        if not database or not Path(database).is_file():
            raise ValueError(f"{text}: no such SQLite database; {LOCAL_CAPTURE_EXPECTED}")
        records = SqlCaptureReader(text).read(None, datetime(1970, 1, 1, tzinfo=UTC))
        where = text
    else:
        lines, databases, where = _local_sources(Path(text))
        records = []
        for sqlite_file in databases:
            records.extend(_read_sqlite(sqlite_file))
        for file in lines:
            with file.open() as handle:
                records.extend(iter_json_lines(handle, str(file)))
    unique: dict[Any, dict[str, Any]] = {}
    for record in records:
        unique.setdefault(record.get(UID) or id(record), record)
    if not unique:
        raise ValueError(f"{where}: holds no capture records; {LOCAL_CAPTURE_EXPECTED}")
    LOG.info("read %d capture records from %s", len(unique), where)
    return list(unique.values())


def read_observations(uri: str, manifest: Manifest, s3_client: Any | None = None) -> Observations:
    """Local path or ``s3://`` URI of CSV, Parquet or capture JSON lines (a directory: all JSON lines in it)."""
    if uri.startswith("s3://"):
        if s3_client is None:
            raise ValueError(f"{uri}: an S3 client is needed to read s3:// data")
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / Path(split_uri(uri)[1]).name
            S3Download(s3_client).download(uri, local)
            return read_observations(str(local), manifest)
    path = Path(uri)
    if uri.startswith("sqlite:") or (path.is_file() and _is_sqlite(path)):
        return observations_from_records(read_local_capture(uri), manifest.target, manifest.task)
    if not path.exists():
        raise ValueError(f"{uri}: no such file or directory")
    fmt = "jsonl" if path.is_dir() else table_format(path.name)
    if fmt == "jsonl":
        return observations_from_records(read_local_capture(path), manifest.target, manifest.task)
    frame = pd.read_csv(path, dtype=csv_dtypes(manifest)) if fmt == "csv" else pd.read_parquet(path)
    return observations_from_frame(frame, manifest)


class CaptureReader(Protocol):
    def read(
        self, manifest: Manifest | None, since: datetime, until: datetime | None = None
    ) -> list[dict[str, Any]]: ...


def _keep(record: dict[str, Any], manifest: Manifest | None, since: datetime, until: datetime | None) -> bool:
    """In the window and, when ``manifest`` is given, made by that model version."""
    if manifest is not None and (
        record.get("model_name") not in (None, manifest.name) or record.get("model_version") != manifest.version
    ):
        return False
    try:
        at = parse_time(record.get(TIME))
    except ValueError:
        return False
    return at >= since and (until is None or at < until)


class Reservoir:
    """At most ``size`` records, a uniform random sample of all offered (Vitter's algorithm R), seeded.

    Why: the window is bounded in time, but traffic is not; drift statistics on a uniform sample of the
    window are valid, and the sample keeps the job's memory fixed whatever the volume. ``size=None`` keeps
    everything (the summary job counts every prediction).
    """

    def __init__(self, size: int | None, seed: int = 0) -> None:
        self.size, self.seen = size, 0
        self.items: list[dict[str, Any]] = []
        self._rng = np.random.default_rng(seed)

    def offer(self, records: Iterable[dict[str, Any]]) -> None:
        for record in records:
            self.seen += 1
            if self.size is None or len(self.items) < self.size:
                self.items.append(record)
                continue
            slot = int(self._rng.integers(0, self.seen))
            if slot < self.size:
                self.items[slot] = record

    @property
    def sampled(self) -> bool:
        return self.seen > len(self.items)

    def result(self) -> list[dict[str, Any]]:
        """The kept records in time order (a sample is shuffled by replacement)."""
        if self.sampled:
            self.items.sort(key=lambda r: str(r.get(TIME)))
        return list(self.items)


class S3CaptureReader:
    """Capture objects of the window [since, until), listed by hour partition and fetched in parallel.

    Only the hour prefixes the window touches are listed (``contracts.bucket_layout``, the layout the
    app writes), so objects outside the window are never listed nor fetched: a run costs what its window
    holds, not what the bucket has accumulated. ``workers`` GETs run at once through one shared client
    (boto3 low-level clients are thread-safe once created: boto3 guide "Low-level clients", section
    "Multithreading or multiprocessing with clients"); at most ``2 * workers`` objects are in flight, and
    only records of the window are kept — at most ``max_records`` of them, a uniform sample when the
    window holds more (:class:`Reservoir`) — so memory is bounded whatever the traffic.
    ``workers`` stays below botocore's default pool of 10 connections (``max_pool_connections``).
    """

    def __init__(
        self,
        s3_client: Any,
        bucket: str,
        prefix: str = PROD_CAPTURE_PREFIX,
        workers: int = 8,
        max_records: int | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.s3, self.bucket, self.prefix, self.workers = s3_client, bucket, prefix.strip("/"), workers
        self.max_records = max_records
        self.last_seen = 0  # records of the window seen by the last read (before sampling)

    def keys(self, since: datetime, until: datetime | None = None) -> Iterator[str]:
        """Capture object keys under the window's hour prefixes, oldest hour first."""
        paginator = self.s3.get_paginator("list_objects_v2")
        for prefix in hour_prefixes(self.prefix, since, until or datetime.now(UTC)):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    if item["Key"].endswith(CAPTURE_SUFFIXES):
                        yield item["Key"]

    def _fetch(
        self, key: str, manifest: Manifest | None, since: datetime, until: datetime | None
    ) -> list[dict[str, Any]]:
        body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"]
        source = f"s3://{self.bucket}/{key}"
        return [r for r in iter_json_lines(body.iter_lines(), source) if _keep(r, manifest, since, until)]

    def read(self, manifest: Manifest | None, since: datetime, until: datetime | None = None) -> list[dict[str, Any]]:
        from collections import deque
        from concurrent.futures import Future, ThreadPoolExecutor

        kept = Reservoir(self.max_records)
        objects = 0
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="capture-get") as pool:
            pending: deque[Future[list[dict[str, Any]]]] = deque()
            for key in self.keys(since, until):
                pending.append(pool.submit(self._fetch, key, manifest, since, until))
                objects += 1
                if len(pending) >= 2 * self.workers:  # bounded in flight; results taken in key (time) order
                    kept.offer(pending.popleft().result())
            while pending:
                kept.offer(pending.popleft().result())
        records = kept.result()
        self.last_seen = kept.seen
        LOG.info(
            "read %d capture records of s3://%s/%s from %d objects in [%s, %s)%s",
            kept.seen,
            self.bucket,
            self.prefix,
            objects,
            since.isoformat(),
            until.isoformat() if until else "now",
            f"; kept a uniform sample of {len(records)} (max_records)" if kept.sampled else "",
        )
        return records


class SqlCaptureReader:
    """The ``prediction_capture`` table (contract 3), filtered on model and time in the database."""

    def __init__(self, url: str, table: str = "prediction_capture") -> None:
        self.url, self.table = url, table

    def read(self, manifest: Manifest | None, since: datetime, until: datetime | None = None) -> list[dict[str, Any]]:
        import sqlalchemy as sa

        engine = sa.create_engine(self.url)
        try:
            table = sa.Table(self.table, sa.MetaData(), autoload_with=engine)
            query = sa.select(table).where(table.c.time >= since)
            if manifest is not None:
                query = query.where(table.c.model_name == manifest.name, table.c.model_version == manifest.version)
            if until is not None:
                query = query.where(table.c.time < until)
            with engine.connect() as connection:
                rows = connection.execute(query.order_by(table.c.time)).mappings().all()
        finally:
            engine.dispose()
        records = []
        for row in rows:
            record = dict(row)
            for key in (INPUT, OUTPUT, IDS):
                if isinstance(record.get(key), str):
                    record[key] = json.loads(record[key])
            if record.get(IDS) is None:
                record.pop(IDS, None)  # contract 3: ``ids`` only where the model has id columns
            record[TIME] = record[TIME].isoformat() if isinstance(record[TIME], datetime) else record[TIME]
            records.append(record)
        return records


class FileCaptureReader:
    """The app's local capture (:func:`read_local_capture`): JSON lines and/or SQLite, filtered like the others."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)

    def read(self, manifest: Manifest | None, since: datetime, until: datetime | None = None) -> list[dict[str, Any]]:
        return [r for r in read_local_capture(self.path) if _keep(r, manifest, since, until)]


def read_labels(uri: str, target: str, s3_client: Any | None = None, task: TaskSpec | None = None) -> pd.DataFrame:
    """Ground truth: a table with ``uid`` and the target column (or ``label``), CSV/Parquet/JSON lines.

    Labels are the model's own (``task.labels``: text or numbers, as in training); without ``task`` they
    must be 0/1 (format 1). Regression labels are numbers.
    """
    if uri.startswith("s3://"):
        if s3_client is None:
            raise ValueError(f"{uri}: an S3 client is needed to read s3:// labels")
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / Path(split_uri(uri)[1]).name
            S3Download(s3_client).download(uri, local)
            return read_labels(str(local), target, task=task)
    fmt = table_format(uri)
    if fmt == "csv":
        frame = pd.read_csv(uri, dtype={"uid": "object"})
    elif fmt == "parquet":
        frame = pd.read_parquet(uri)
    else:
        frame = pd.read_json(uri, lines=True, dtype={"uid": "object"})
    column = target if target in frame.columns else "label" if "label" in frame.columns else None
    if "uid" not in frame.columns or column is None:
        raise ValueError(f"{uri}: labels need columns 'uid' and {target!r} (or 'label'); found {list(frame.columns)}")
    if task is None:
        labels = pd.to_numeric(frame[column], errors="coerce")
        bad = ~labels.isin([0, 1])
        if bad.any():
            raise ValueError(f"{uri}: {int(bad.sum())} labels are not 0 or 1 (column {column!r})")
        values = labels.to_numpy(dtype=np.float64)
    else:
        values = label_values(frame[column].to_numpy(dtype=object), task, f"{uri} (column {column!r})")
    return pd.DataFrame({"uid": frame["uid"].astype(str), "label": values}).drop_duplicates("uid")


def attach_labels(observations: Observations, labels: pd.DataFrame) -> Observations:
    """Join labels to captured predictions by uid; unlabelled predictions get NaN."""
    if observations.uid is None:
        raise ValueError("labels can only be joined to capture records (they carry a uid)")
    by_uid = dict(zip(labels["uid"], labels["label"], strict=True))
    observations.labels = np.array([by_uid.get(str(u), np.nan) for u in observations.uid], dtype=np.float64)
    return observations
