"""The app core: load a package, parse a body into records, validate and score, render the answer.

``load_model(model_dir)`` loads and verifies the package, ``parse_records(body, content_type)`` parses JSON
or CSV into records, ``score(data, model, settings)`` validates and scores under the runtime settings it is
given (never raising for bad records: their violations are returned), ``render(prediction, accept)`` renders
the answer. The HTTP app calls these with its settings refresher's current settings; the SageMaker
toolkit's four handler names are a thin shim over them (:mod:`app.handlers`).
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
from app.policies import PolicyContext, lenient, relax
from app.runtime_settings import RuntimeSettings
from contracts.environment import AppEnvironment
from model_package import Manifest, ModelPackage, open_package
from model_package.runtime import OnnxPredictor, Predictions, Predictor, check_schema, load_predictor
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
    """What :func:`load_model` (and the SageMaker ``model_fn``) returns: the verified package, its predictor and
    its validator."""

    package: ModelPackage
    predictor: Predictor
    validator: SchemaValidator
    # Only the SageMaker shim reads this (it has no settings refresher); the HTTP app passes its settings to
    # :func:`score` explicitly.
    settings: Callable[[], RuntimeSettings] = RuntimeSettings
    _policy_context: PolicyContext | None = None

    @property
    def manifest(self) -> Manifest:
        return self.package.manifest

    @property
    def policy_context(self) -> PolicyContext:
        """Built on first use: only a batch with violations under a lenient policy needs it."""
        if self._policy_context is None:
            self._policy_context = PolicyContext.for_manifest(self.manifest, self.validator.max_reported)
        return self._policy_context


def load_model(
    model_dir: str | os.PathLike[str], runtime: str | None = None, allow_pickle: bool | None = None
) -> LoadedModel:
    """Load a package directory (or ``model.zip``), verified, and its ONNX graph checked against the schema.

    ONNX Runtime serves unless ``MODEL_RUNTIME`` forces skops (needs the jobs' libraries) or pickle (only
    with ``ALLOW_PICKLE=1``). Raises ``PackageError`` (with ``exit_code``)."""
    location = Path(model_dir)
    if location.is_dir() and not (location / "manifest.json").exists() and (location / "model.zip").exists():
        location = location / "model.zip"  # SageMaker unpacks model.tar.gz; a zip inside is fine too
    package = open_package(location)
    # The HTTP app passes both from its AppEnvironment; the SageMaker shim (app/handlers.py) passes neither, so
    # they are read here, through the same class (a bad value raises EnvironmentConfigError naming it).
    environment = AppEnvironment.from_env() if allow_pickle is None else None
    allow = environment.allow_pickle if environment is not None else bool(allow_pickle)
    if package.manifest.runtime.format != "onnx":
        # A skops package (no ONNX converter for its pipeline): served with scikit-learn from the jobs'
        # requirements; the slim serving image refuses it with load_predictor's message naming the fix.
        fallback = load_predictor(package, runtime=package.manifest.runtime.format, allow_pickle=allow)
        return LoadedModel(
            package=package,
            predictor=fallback,
            validator=SchemaValidator(package.manifest.features, max_reported=MAX_REPORTED),
        )
    # The same checks as ``python -m retrain verify`` short of parity (which needs scikit-learn, absent from
    # the serving image): integrity above, then the schema against the ONNX graph. A package verify refuses
    # is never served, whatever runtime is chosen below.
    onnx = OnnxPredictor(package)
    check_schema(package, onnx)
    choice = runtime or (environment.model_runtime if environment is not None else None)
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


def parse_records(
    body: bytes | str, content_type: str | None, model: LoadedModel | None = None, max_records: int | None = None
) -> list[dict[str, Any]]:
    """Records from a JSON object, a JSON list of objects, or CSV with a header row.

    ``max_records`` is checked before any record is validated: a 1 MB body of empty records cost a worker
    seconds of validation (issue #13); now it costs the parse.
    """
    # The header as clients nearly always send it skips the parse (this runs once per request).
    kind = (
        "application/json" if content_type is None or content_type == "application/json" else _base_type(content_type)
    )
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
    """The answer for a list of records, in request order.

    ``outputs[i]`` is row ``i``'s answer in the user's labels (``None`` for a rejected row): binary
    ``{"label", "probability", "prediction"}`` (``prediction`` is 1 for the positive label, kept for
    format 1 clients), multiclass ``{"label", "probabilities": {label: p}}``, regression ``{"value"}``
    (the shapes of ``model_package.runtime.Predictions.record``; the capture record's ``output`` too).
    ``ids[i]`` holds the manifest's id columns found in record ``i`` (``None`` when the model has none).
    """

    uids: list[str]
    outputs: list[dict[str, Any] | None]
    errors: list[Violation] = field(default_factory=list)
    warnings: list[Violation] = field(default_factory=list)
    model_name: str = ""
    model_version: int = 0
    row_ok: list[bool] = field(default_factory=list)
    task: str = "binary"
    ids: list[dict[str, Any]] | None = None

    @property
    def ok(self) -> bool:
        """Every row scored. By rows, not by the violation list: that list is capped, the per-row verdict is not."""
        return not self.errors and all(self.row_ok)

    @property
    def any_ok(self) -> bool:
        return any(self.row_ok)

    @property
    def status(self) -> int:
        """200 every record scored, 207 some scored and some rejected, 422 none scored (docs/app.md)."""
        if self.ok:
            return 200
        return 207 if self.any_ok else 422

    @property
    def probabilities(self) -> list[float | None]:
        """P(positive label) per row (binary; ``None`` for rejected rows)."""
        return [None if o is None else o.get("probability") for o in self.outputs]

    def slice(self, start: int, stop: int) -> Prediction:
        """The part of a merged batch that belongs to one request, with rows renumbered from 0."""
        return Prediction(
            uids=self.uids[start:stop],
            outputs=self.outputs[start:stop],
            errors=_violations_within(self.errors, start, stop) if self.errors else [],
            warnings=_violations_within(self.warnings, start, stop) if self.warnings else [],
            model_name=self.model_name,
            model_version=self.model_version,
            row_ok=self.row_ok[start:stop],
            task=self.task,
            ids=None if self.ids is None else self.ids[start:stop],
        )


def _violations_within(items: Sequence[Violation], start: int, stop: int) -> list[Violation]:
    """Violations of rows ``start:stop`` (and batch-wide ones), renumbered from 0."""
    return [
        Violation(v.feature, v.kind, v.value, v.expected, None if v.row is None else v.row - start)
        for v in items
        if v.row is None or start <= v.row < stop
    ]


def _split_ids(
    data: Sequence[Mapping[str, Any]], id_columns: tuple[str, ...]
) -> tuple[Sequence[Mapping[str, Any]], list[dict[str, Any]]]:
    """Records without the id columns (never features), and the ids of each record (only those present)."""
    wanted = frozenset(id_columns)
    features: list[Mapping[str, Any]] = []
    ids: list[dict[str, Any]] = []
    for record in data:
        if wanted.isdisjoint(record):
            features.append(record)
            ids.append({})
        else:
            features.append({k: v for k, v in record.items() if k not in wanted})
            ids.append({k: record[k] for k in id_columns if k in record})
    return features, ids


def _outputs(predictions: Predictions, threshold: float) -> list[dict[str, Any]]:
    """Per-row answers; binary labels follow the runtime decision threshold, not the argmax."""
    task = predictions.task_spec
    if task.type == "binary":
        negative, positive = task.labels
        return [
            {"label": positive if p >= threshold else negative, "probability": p, "prediction": int(p >= threshold)}
            for p in predictions.positive_probability.tolist()
        ]
    return predictions.records()


def score(data: Sequence[Mapping[str, Any]], model: LoadedModel, settings: RuntimeSettings) -> Prediction:
    """Validate all records in one columnar pass and score the valid ones in one predictor call.

    Records that break a rule are rejected, or accepted with a warning when ``settings`` relax that
    violation class (:mod:`app.policies`); the valid rows are scored either way.
    """
    manifest = model.manifest
    id_columns = manifest.columns.id_columns
    ids = None
    if id_columns:
        data, ids = _split_ids(data, id_columns)
    result = model.validator.with_out_of_range(settings.out_of_range).validate_records(data)
    if not result.ok and lenient(settings):
        _, result = relax(data, model.policy_context, settings)
    n_rows = len(data)
    uids = new_uids(n_rows)
    outputs: list[dict[str, Any] | None] = [None] * n_rows
    if result.row_ok.any():
        if result.ok:
            answers = _outputs(model.predictor.predict(result.columns), settings.decision_threshold)
            outputs = answers  # type: ignore[assignment]
        else:
            keep = np.flatnonzero(result.row_ok)
            scored = model.predictor.predict({k: v[keep] for k, v in result.columns.items()})
            for row, answer in zip(keep.tolist(), _outputs(scored, settings.decision_threshold), strict=True):
                outputs[row] = answer
    return Prediction(
        uids=uids,
        outputs=outputs,
        errors=result.errors,
        warnings=result.warnings,
        model_name=manifest.name,
        model_version=manifest.version,
        row_ok=result.row_ok.tolist(),
        task=manifest.task.type,
        ids=ids,
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


# CSV answer columns per task, after ``uid`` (a multiclass answer adds ``p_<label>`` per class).
CSV_COLUMNS = {"binary": ("label", "probability", "prediction"), "multiclass": ("label",), "regression": ("value",)}


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    text = repr(value) if isinstance(value, float) else str(value)
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _csv_answer(prediction: Prediction) -> bytes:
    columns = list(CSV_COLUMNS.get(prediction.task, ("label",)))
    first = next((o for o in prediction.outputs if o is not None), None)
    classes = list(first["probabilities"]) if first is not None and "probabilities" in first else []
    id_names = sorted({k for ids in prediction.ids or () for k in ids})
    partial = not prediction.ok
    header = ["uid", *id_names, *columns, *(f"p_{c}" for c in classes), "model_version"]
    if partial:
        header.append("error")
        by_row: dict[int, list[str]] = {}
        for v in prediction.errors:
            if v.row is not None:
                by_row.setdefault(v.row, []).append(f"{v.feature}: {v.kind}")
    lines = [",".join(_csv_cell(h) for h in header)]
    version = str(prediction.model_version)
    for i, (uid, output) in enumerate(zip(prediction.uids, prediction.outputs, strict=True)):
        ids = prediction.ids[i] if prediction.ids is not None else {}
        cells = [] if output is None else [output.get(c) for c in columns]
        if output is None:
            cells = [None] * (len(columns) + len(classes))
        else:
            cells += [output["probabilities"][c] for c in classes]
        row = [uid if output is not None else None, *(ids.get(k) for k in id_names), *cells, version]
        if partial:
            row.append("; ".join(by_row.get(i, [])) if output is None else "")
        lines.append(",".join(_csv_cell(v) for v in row))
    return ("\n".join(lines) + "\n").encode()


def render(prediction: Prediction, accept: str | None) -> tuple[bytes, str]:
    """The answer body: 200 and 207 carry one entry per record; 422 the violations only (docs/app.md)."""
    kind = accepted_type(accept)
    if not prediction.any_ok:
        return json_codec.dumps(violations_body(prediction)), "application/json"
    if kind == "text/csv":
        return _csv_answer(prediction), "text/csv"
    ids = prediction.ids
    if prediction.ok:
        if ids is None:
            items = [{"uid": u, **o} for u, o in zip(prediction.uids, prediction.outputs, strict=True)]  # type: ignore[dict-item]
        else:
            items = [
                {"uid": u, **i, **o}  # type: ignore[dict-item]
                for u, i, o in zip(prediction.uids, ids, prediction.outputs, strict=True)
            ]
        body: dict[str, Any] = {
            "predictions": items,
            "model_version": prediction.model_version,
            "model_name": prediction.model_name,
            "warnings": [v.to_dict() for v in prediction.warnings],
        }
        return json_codec.dumps(body), "application/json"
    by_row: dict[int, list[dict[str, Any]]] = {}
    for v in prediction.errors:
        if v.row is not None:
            by_row.setdefault(v.row, []).append(v.to_dict())
    items = []
    for i, (uid, output) in enumerate(zip(prediction.uids, prediction.outputs, strict=True)):
        extra = ids[i] if ids is not None else {}
        if output is None:
            items.append({"uid": None, **extra, "errors": by_row.get(i, [])})
        else:
            items.append({"uid": uid, **extra, **output})
    rejected = prediction.row_ok.count(False)
    body = {
        "predictions": items,
        "error": f"{rejected} of {len(items)} records rejected; the others were scored",
        "violations": [v.to_dict() for v in prediction.errors],
        "warnings": [v.to_dict() for v in prediction.warnings],
        "model_version": prediction.model_version,
        "model_name": prediction.model_name,
    }
    return json_codec.dumps(body), "application/json"
