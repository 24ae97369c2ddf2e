"""The SageMaker inference toolkit's four handlers; the HTTP app calls exactly these.

``model_fn(model_dir)`` loads and verifies the package, ``input_fn(body, content_type)`` parses JSON or
CSV into records, ``predict_fn(data, model)`` validates and scores (never raising for bad records: their
violations are returned), ``output_fn(prediction, accept)`` renders the answer. The same package therefore
runs under SageMaker (point its ``SAGEMAKER_PROGRAM`` at this module) and in this app's image.
"""

from __future__ import annotations

import csv
import functools
import io
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app import json_codec
from app.runtime_settings import RuntimeSettings
from model_package import Manifest, ModelPackage, open_package
from model_package.runtime import OnnxPredictor, Predictor, check_schema, load_predictor
from model_package.validation import SchemaValidator, Violation

log = logging.getLogger("app.model")

JSON_TYPES = ("application/json", "application/jsonlines")
CSV_TYPES = ("text/csv", "application/csv")
# Violations kept per merged batch: enough that one request's problems are never hidden by another's
# (the body limit bounds a request to a few thousand records).
MAX_REPORTED = 10_000


class RequestError(Exception):
    """A client error with its HTTP status; the message says what was wrong and what is allowed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class LoadedModel:
    """What ``model_fn`` returns: the verified package, its predictor and its validator."""

    package: ModelPackage
    predictor: Predictor
    validator: SchemaValidator
    settings: Callable[[], RuntimeSettings] = RuntimeSettings

    @property
    def manifest(self) -> Manifest:
        return self.package.manifest


def _flag(name: str) -> bool:
    return os.environ.get(name, "0").strip().lower() in ("1", "true", "yes")


def model_fn(
    model_dir: str | os.PathLike[str], runtime: str | None = None, allow_pickle: bool | None = None
) -> LoadedModel:
    """Load a package directory (or ``model.zip``), verified, and its ONNX graph checked against the schema.

    ONNX Runtime serves unless ``MODEL_RUNTIME`` forces skops (needs the jobs' libraries) or pickle (only
    with ``ALLOW_PICKLE=1``). Raises ``PackageError`` (with ``exit_code``)."""
    location = Path(model_dir)
    if location.is_dir() and not (location / "manifest.json").exists() and (location / "model.zip").exists():
        location = location / "model.zip"  # SageMaker unpacks model.tar.gz; a zip inside is fine too
    package = open_package(location)
    # The same checks as ``python -m retrain verify`` short of parity (which needs scikit-learn, absent from
    # the serving image): integrity above, then the schema against the ONNX graph. A package verify refuses
    # is never served, whatever runtime is chosen below.
    onnx = OnnxPredictor(package)
    check_schema(package, onnx)
    allow = _flag("ALLOW_PICKLE") if allow_pickle is None else allow_pickle
    choice = runtime or os.environ.get("MODEL_RUNTIME") or None
    if choice in (None, "onnx"):
        predictor: Predictor = onnx
    else:
        predictor = load_predictor(package, runtime=choice, allow_pickle=allow)  # type: ignore[arg-type]
    return LoadedModel(
        package=package,
        predictor=predictor,
        validator=SchemaValidator(package.manifest.features, max_reported=MAX_REPORTED),
    )


def _base_type(content_type: str | None) -> str:
    return (content_type or "application/json").split(";", 1)[0].strip().lower() or "application/json"


def input_fn(
    body: bytes | str, content_type: str | None, model: LoadedModel | None = None, max_records: int | None = None
) -> list[dict[str, Any]]:
    """Records from a JSON object, a JSON list of objects, or CSV with a header row.

    ``max_records`` is checked before any record is validated: a 1 MB body of empty records cost a worker
    seconds of validation (issue #13); now it costs the parse.
    """
    kind = _base_type(content_type)
    if kind in JSON_TYPES or kind.endswith("+json"):
        records = _json_records(body)
        if max_records is not None and len(records) > max_records:
            raise _too_many(len(records), max_records)
        return records
    if kind in CSV_TYPES:
        return _csv_records(body, model.manifest if model else None, max_records)
    raise RequestError(415, f"content type {kind!r} is not supported; use application/json or text/csv")


def _json_records(body: bytes | str) -> list[dict[str, Any]]:
    try:
        payload = json_codec.loads(body)
    except json_codec.InvalidJSONError as exc:
        raise RequestError(400, str(exc)) from None
    records = payload if isinstance(payload, list) else [payload]
    if not records:
        raise RequestError(400, "the list of records is empty; send at least one record")
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise RequestError(
                400,
                f"record {index} is a {type(record).__name__}; send a JSON object (feature -> value) or a list of them",
            )
    return records


def _csv_value(raw: str, numeric: bool | None) -> Any:
    """CSV carries text: empty is null; a numeric feature's text is read as a number when it is one.

    Text that is not a finite number stays text, so validation reports ``data_type`` with the value sent.
    """
    if raw == "":
        return None
    if numeric is False:
        return raw
    try:
        number = float(raw)
    except ValueError:
        return raw
    if not math.isfinite(number):
        return raw
    if number.is_integer() and abs(number) < 2**53 and not any(c in raw for c in ".eE"):
        return int(number)
    return number


def _too_many(count: int | str, limit: int) -> RequestError:
    return RequestError(
        413, f"{count} records in one request; at most {limit} are allowed (MAX_RECORDS_PER_REQUEST): split it"
    )


def _csv_records(body: bytes | str, manifest: Manifest | None, max_records: int | None = None) -> list[dict[str, Any]]:
    try:
        text = body.decode("utf-8-sig") if isinstance(body, bytes) else body
    except UnicodeDecodeError as exc:
        raise RequestError(400, f"CSV body is not UTF-8: {exc}") from None
    rows: list[list[str]] = []
    try:
        for row in csv.reader(io.StringIO(text), strict=True):
            if not row:
                continue
            rows.append(row)
            if max_records is not None and len(rows) > max_records + 1:  # + the header; stop reading here
                raise _too_many(f"more than {max_records}", max_records)
    except csv.Error as exc:
        raise RequestError(400, f"body is not valid CSV: {exc}") from None
    if len(rows) < 2:
        raise RequestError(400, "CSV needs a header row naming the features and at least one data row")
    header = [name.strip() for name in rows[0]]
    if len(set(header)) != len(header):
        raise RequestError(400, f"CSV header has duplicate column names: {header}")
    numeric = {spec.name: spec.is_numeric for spec in manifest.features} if manifest else {}
    kinds = [numeric.get(name) for name in header]
    records = []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise RequestError(400, f"CSV line {line} has {len(row)} fields; the header has {len(header)}")
        records.append({name: _csv_value(value, kind) for name, value, kind in zip(header, row, kinds, strict=True)})
    return records


def new_uids(count: int) -> list[str]:
    """``count`` time-ordered UUIDv7s (RFC 9562, section 5.7) as hex, with one ``os.urandom`` call per batch.

    Why version 7: ``uid`` is the capture table's primary key, and random (v4) keys land on a random
    B-tree page each, so every 1,000-row commit rewrote ~1,000 index pages. Keys that start with the
    millisecond append at the right edge of the index instead (in SQLite, PostgreSQL and MySQL alike).
    Why one ``urandom`` per batch: under load each syscall cost ~10 µs, more than validating a record.
    """
    stamp = (time.time_ns() // 1_000_000).to_bytes(6, "big")  # unix_ts_ms, 48 bits
    raw = bytearray(os.urandom(16 * count))
    for offset in range(0, 16 * count, 16):
        raw[offset : offset + 6] = stamp
        raw[offset + 6] = (raw[offset + 6] & 0x0F) | 0x70  # version 7, then 12 random bits (rand_a)
        raw[offset + 8] = (raw[offset + 8] & 0x3F) | 0x80  # RFC 9562 variant, then 62 random bits (rand_b)
    text = raw.hex()
    return [text[i : i + 32] for i in range(0, 32 * count, 32)]


# -- predict ----------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Prediction:
    """Scores for a list of records; rows with errors have no score and make the answer a 422."""

    uids: list[str]
    probabilities: list[float | None]
    predictions: list[int | None]
    errors: list[Violation] = field(default_factory=list)
    warnings: list[Violation] = field(default_factory=list)
    model_name: str = ""
    model_version: int = 0
    row_ok: list[bool] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """By rows, not by the violation list: that list is capped, the per-row verdict is not."""
        return not self.errors and all(self.row_ok)

    def slice(self, start: int, stop: int) -> Prediction:
        """The part of a merged batch that belongs to one request, with rows renumbered from 0."""
        return Prediction(
            uids=self.uids[start:stop],
            probabilities=self.probabilities[start:stop],
            predictions=self.predictions[start:stop],
            errors=_violations_within(self.errors, start, stop) if self.errors else [],
            warnings=_violations_within(self.warnings, start, stop) if self.warnings else [],
            model_name=self.model_name,
            model_version=self.model_version,
            row_ok=self.row_ok[start:stop],
        )


def _violations_within(items: Sequence[Violation], start: int, stop: int) -> list[Violation]:
    """Violations of rows ``start:stop`` (and batch-wide ones), renumbered from 0."""
    return [
        Violation(v.feature, v.kind, v.value, v.expected, None if v.row is None else v.row - start)
        for v in items
        if v.row is None or start <= v.row < stop
    ]


def predict_fn(data: Sequence[Mapping[str, Any]], model: LoadedModel) -> Prediction:
    """Validate all records in one columnar pass and score the valid ones in one predictor call."""
    settings = model.settings()
    validator = model.validator.with_out_of_range(settings.out_of_range)
    result = validator.validate_records(data)
    n_rows = len(data)
    uids = new_uids(n_rows)
    probabilities: list[float | None] = [None] * n_rows
    labels: list[int | None] = [None] * n_rows
    if result.row_ok.any():
        if result.ok:
            scores = model.predictor.predict_proba(result.columns)
            rows = range(n_rows)
        else:
            keep = np.flatnonzero(result.row_ok)
            scores = model.predictor.predict_proba({k: v[keep] for k, v in result.columns.items()})
            rows = keep.tolist()
        threshold = settings.decision_threshold
        for row, score in zip(rows, scores.tolist(), strict=True):
            probabilities[row] = score
            labels[row] = int(score >= threshold)
    manifest = model.manifest
    return Prediction(
        uids=uids,
        probabilities=probabilities,
        predictions=labels,
        errors=result.errors,
        warnings=result.warnings,
        model_name=manifest.name,
        model_version=manifest.version,
        row_ok=result.row_ok.tolist(),
    )


# -- output -----------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)  # an unacceptable value raises, and exceptions are not cached
def accepted_type(accept: str | None) -> str:
    """The response type for an Accept header: JSON unless only CSV is acceptable; 406 otherwise."""
    if not accept:
        return "application/json"
    offered = [part.split(";", 1)[0].strip().lower() for part in accept.split(",")]
    for kind in offered:
        if kind in ("application/json", "*/*", "application/*", "") or kind.endswith("+json"):
            return "application/json"
        if kind in CSV_TYPES or kind == "text/*":
            return "text/csv"
    raise RequestError(406, f"Accept {accept!r} cannot be served; the app answers application/json or text/csv")


def violations_body(prediction: Prediction) -> dict[str, Any]:
    if not prediction.errors:  # rows rejected but their violations fell beyond the report cap
        bad = [i for i, ok in enumerate(prediction.row_ok) if not ok]
        return {
            "error": f"rows {bad[:20]} violate the schema (details cut: send fewer records); nothing was scored",
            "violations": [],
            "model_name": prediction.model_name,
            "model_version": prediction.model_version,
        }
    return {
        "error": f"{len(prediction.errors)} schema violation(s); nothing was scored",
        "violations": [v.to_dict() for v in prediction.errors],
        "model_name": prediction.model_name,
        "model_version": prediction.model_version,
    }


def output_fn(prediction: Prediction, accept: str | None) -> tuple[bytes, str]:
    kind = accepted_type(accept)
    if not prediction.ok:
        return json_codec.dumps(violations_body(prediction)), "application/json"
    if kind == "text/csv":
        lines = ["uid,prediction,probability,model_version"]
        lines += [
            f"{u},{p},{q!r},{prediction.model_version}"
            for u, p, q in zip(prediction.uids, prediction.predictions, prediction.probabilities, strict=True)
        ]
        return ("\n".join(lines) + "\n").encode(), "text/csv"
    body = {
        "predictions": [
            {"uid": u, "prediction": p, "probability": q}
            for u, p, q in zip(prediction.uids, prediction.predictions, prediction.probabilities, strict=True)
        ],
        "model_version": prediction.model_version,
        "model_name": prediction.model_name,
        "warnings": [v.to_dict() for v in prediction.warnings],
    }
    return json_codec.dumps(body), "application/json"
