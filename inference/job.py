"""The InferenceJob: read in chunks, validate, score, stream out, commit both files at the end.

One chunk is in memory at a time; the outputs are staged and committed only after the last chunk, so
a failure anywhere (bad model, dead S3, killed container) leaves the previous outputs, never half of
new ones. Rejected rows go, with their row number and violations, to ``<output>.rejected.<ext>``.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from alerting import Alert, AlertPublisher, Severity
from inference.readers import DEFAULT_CHUNK_ROWS, ChunkReader, open_reader
from inference.writers import ChunkWriter, open_writer, rejected_uri
from jobs_common.columns import feature_columns
from model_package.archive import ModelPackage
from model_package.manifest import Manifest
from model_package.runtime import Predictions
from model_package.validation import SchemaValidator, ValidationResult

LOG = logging.getLogger(__name__)
PROBABILITY, PREDICTION, LABEL, VALUE = "probability", "prediction", "label", "value"
CLASS_PROBABILITY_PREFIX = "probability_"  # multiclass: one column per label, probability_<label>


def output_columns(manifest: Manifest) -> list[tuple[str, pa.DataType]]:
    """The columns the job appends per task, after every input column (ids and pass-through kept as read).

    binary: ``label`` (the user's label at the decision threshold), ``probability`` (P(positive label)),
    ``prediction`` (1 for the positive label; the format 1 column); multiclass: ``label`` and
    ``probability_<label>`` per class in the manifest's label order; regression: ``value``.
    """
    task = manifest.task
    if task.type == "regression":
        return [(VALUE, pa.float64())]
    label_type = pa.int64() if all(isinstance(v, int) for v in task.labels) else pa.string()
    if task.type == "binary":
        return [(LABEL, label_type), (PROBABILITY, pa.float64()), (PREDICTION, pa.int64())]
    return [(LABEL, label_type), *((f"{CLASS_PROBABILITY_PREFIX}{c}", pa.float64()) for c in task.labels)]


def answer_frame(manifest: Manifest, predictions: Predictions, threshold: float) -> dict[str, np.ndarray]:
    """The appended columns (see :func:`output_columns`) for scored rows."""
    task = manifest.task
    if task.type == "regression":
        assert predictions.values is not None
        return {VALUE: predictions.values}
    labels = np.array(task.labels, dtype=object)
    if task.type == "binary":
        positive = predictions.positive_probability
        chosen = (positive >= threshold).astype(np.int64)
        return {LABEL: labels[chosen], PROBABILITY: positive, PREDICTION: chosen}
    assert predictions.probabilities is not None and predictions.label_index is not None
    columns: dict[str, np.ndarray] = {LABEL: labels[predictions.label_index]}
    for i, label in enumerate(task.labels):
        columns[f"{CLASS_PROBABILITY_PREFIX}{label}"] = predictions.probabilities[:, i]
    return columns


ROW, ERRORS = "_row", "_errors"


class JobTerminated(BaseException):
    """SIGTERM arrived (Batch cancel/terminate, job timeout, ECS stop). Raised from the signal handler
    installed by :func:`terminate_on_sigterm`, so the job unwinds like any failure: writers abort, staged
    ``.partial`` files and temp directories are removed, and the failure notice goes out. A
    ``BaseException`` (like ``KeyboardInterrupt``) so no ``except Exception`` on the way swallows it."""


@contextlib.contextmanager
def terminate_on_sigterm() -> Iterator[None]:
    """Within the block SIGTERM raises :class:`JobTerminated` in the main thread; the old handler is back after.

    Python's default for SIGTERM ends the process at once without unwinding, which is what left partial
    files behind. SIGKILL cannot be caught; docs/inference.md says what it can leave.
    """

    def handler(signum: int, _frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not interrupt the clean-up
        raise JobTerminated(f"received {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@dataclass
class InferenceResult:
    output_uri: str
    rejected_uri: str
    rows_in: int
    rows_out: int
    rows_rejected: int
    columns: list[str]
    seconds: float
    model: dict[str, Any]
    violation_counts: dict[str, int] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows_out, len(self.columns))

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "shape": list(self.shape)}


def _row_errors(result: ValidationResult, rejected: np.ndarray, offset: int) -> dict[int, str]:
    """Violations per rejected row (as 'kind:feature'); whole-column ones apply to every row."""
    messages: dict[int, list[str]] = {}
    column_wide = [f"{v.kind}:{v.feature}" for v in result.errors if v.row is None]
    for violation in result.errors:
        if violation.row is not None:
            messages.setdefault(violation.row, []).append(f"{violation.kind}:{violation.feature}")
    return {
        int(i) + offset: ";".join(column_wide + messages.get(int(i), [])) or "rejected (details beyond report cap)"
        for i in rejected
    }


def _as_text(values: np.ndarray) -> list[str | None]:
    """Rejected cells as text: whatever was wrong with them, they must fit one column type."""
    return [None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in values]


class InferenceJob:
    def __init__(
        self,
        package: ModelPackage,
        predictor: Any,
        *,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        threshold: float = 0.5,
        out_of_range: str = "warn",
        s3_client: Any | None = None,
        publisher: AlertPublisher | None = None,
    ) -> None:
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
        self.package, self.predictor = package, predictor
        self.manifest = package.manifest
        self.chunk_rows, self.threshold = chunk_rows, threshold
        # Report every violation of a chunk so each rejected row can name its reasons.
        self.validator = SchemaValidator(self.manifest.features, out_of_range=out_of_range, max_reported=chunk_rows)  # type: ignore[arg-type]
        self.s3, self.publisher = s3_client, publisher

    def _schemas(self, reader: ChunkReader) -> tuple[pa.Schema, pa.Schema]:
        fields = []
        for name in reader.columns:
            spec = next((s for s in self.manifest.features if s.name == name), None)
            if spec is None:
                fields.append(pa.field(name, reader.arrow_type(name)))
            else:
                fields.append(pa.field(name, pa.float64() if spec.is_numeric else pa.string()))
        appended = output_columns(self.manifest)
        clash = [name for name, _ in appended if name in reader.columns]
        if clash:
            raise ValueError(f"input already has the output column(s) {clash}; rename them first")
        output = pa.schema([*fields, *(pa.field(name, kind) for name, kind in appended)])
        rejected = pa.schema(
            [
                pa.field(ROW, pa.int64()),
                pa.field(ERRORS, pa.string()),
                *(pa.field(c, pa.string()) for c in reader.columns),
            ]
        )
        return output, rejected

    def run(self, input_uri: str, output_uri: str) -> InferenceResult:
        started = time.monotonic()
        try:
            result = self._run(input_uri, output_uri, started)
        except (Exception, JobTerminated) as exc:
            self._notify_failure(input_uri, output_uri, exc)
            raise
        self._notify(result)
        return result

    def _run(self, input_uri: str, output_uri: str, started: float) -> InferenceResult:
        features = [s.name for s in self.manifest.features]
        counts: dict[str, int] = {}
        rows_in = rows_rejected = 0
        with (
            open_reader(input_uri, self.manifest, self.chunk_rows, self.s3) as reader,
            tempfile.TemporaryDirectory(prefix="inference-out-") as staging,
        ):
            missing = [f for f in features if f not in reader.columns]
            if missing:
                raise ValueError(
                    f"{input_uri}: feature columns {missing} are missing; the model needs {features} "
                    "(extra columns are passed through)"
                )
            out_schema, rej_schema = self._schemas(reader)
            writers: list[ChunkWriter] = []
            try:
                output = open_writer(output_uri, out_schema, self.s3, Path(staging))
                writers.append(output)
                rejected = open_writer(rejected_uri(output_uri), rej_schema, self.s3, Path(staging))
                writers.append(rejected)
                for chunk in reader.chunks():
                    offset = rows_in
                    rows_in += len(chunk)
                    validated = self.validator.validate_columns(feature_columns(chunk, self.manifest.features))
                    for kind, n in validated.counts().items():
                        counts[kind] = counts.get(kind, 0) + n
                    ok = validated.row_ok
                    if ok.any():
                        good = chunk.loc[ok].copy()
                        for name in features:
                            good[name] = validated.columns[name][ok]
                        scored = self.predictor.predict({n: c[ok] for n, c in validated.columns.items()})
                        for name, values in answer_frame(self.manifest, scored, self.threshold).items():
                            good[name] = values
                        output.write(good)
                    bad = np.flatnonzero(~ok)
                    if len(bad):
                        rows_rejected += len(bad)
                        reasons = _row_errors(validated, bad, offset)
                        frame = pd.DataFrame(
                            {c: _as_text(chunk[c].to_numpy(dtype=object)[bad]) for c in reader.columns}
                        )
                        frame.insert(0, ERRORS, [reasons[int(i) + offset] for i in bad])
                        frame.insert(0, ROW, (bad + offset).astype(np.int64))
                        rejected.write(frame)
                # Rejected first: the output appearing is the signal that the run finished.
                rejected_location = rejected.commit()
                output_location = output.commit()
            except BaseException:
                for writer in writers:
                    writer.abort()
                raise
        return InferenceResult(
            output_uri=output_location,
            rejected_uri=rejected_location,
            rows_in=rows_in,
            rows_out=rows_in - rows_rejected,
            rows_rejected=rows_rejected,
            columns=list(out_schema.names),
            seconds=time.monotonic() - started,
            model={"name": self.manifest.name, "version": self.manifest.version, "sha256": self.package.sha256},
            violation_counts=counts,
        )

    def _notify(self, result: InferenceResult) -> None:
        LOG.info("batch inference done: %s", result.to_dict())
        if self.publisher is None:
            return
        severity = Severity.WARNING if result.rows_rejected else Severity.INFO
        self.publisher.publish(
            Alert(
                source="inference",
                kind="job-finished",
                severity=severity,
                summary=f"scored {result.rows_out} rows, rejected {result.rows_rejected}, in {result.seconds:.1f}s",
                where_to_look=result.output_uri,
                details=result.to_dict(),
                dedup_key=uuid.uuid4().hex,  # every run's notification is news
            )
        )

    def _notify_failure(self, input_uri: str, output_uri: str, exc: BaseException) -> None:
        LOG.exception("batch inference failed")
        if self.publisher is None:
            return
        self.publisher.publish(
            Alert(
                source="inference",
                kind="job-failed",
                severity=Severity.CRITICAL,
                summary=f"batch inference of {input_uri} failed: {type(exc).__name__}",
                where_to_look=f"the Batch job's CloudWatch log; output {output_uri} was left untouched",
                details={"error": str(exc)[:2000], "input": input_uri, "output": output_uri},
                dedup_key=f"{input_uri}->{output_uri}",
            )
        )
