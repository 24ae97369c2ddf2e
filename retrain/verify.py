"""``python -m retrain verify``: integrity, schema, then ONNX-vs-estimator parity on the stored sample.

Each failure is a ``model_package.errors`` class whose ``exit_code`` the CLI returns (2..6), so a
pipeline step can tell "corrupted" from "inconsistent" from "the two runtimes disagree".
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np

from jobs_common.reference import read_reference
from model_package.archive import ModelPackage, open_package
from model_package.errors import IntegrityError, ParityError
from model_package.runtime import OnnxPredictor, check_schema, load_predictor

LOG = logging.getLogger(__name__)
# Trees compare float32 thresholds in both runtimes; the sums of leaf values differ by float rounding only.
PARITY_TOLERANCE = 1e-4


@dataclass(frozen=True)
class VerifyResult:
    sha256: str
    name: str
    version: int
    parity_rows: int
    max_abs_diff: float
    task: str = "binary"
    labels: tuple[str | int, ...] = (0, 1)
    model_format: str = "onnx"
    trusted_types: tuple[str, ...] = ()

    def summary(self) -> str:
        task = self.task if not self.labels else f"{self.task} {list(self.labels)}"
        if self.model_format != "onnx":
            trusted = ", ".join(self.trusted_types) or "none beyond scikit-learn/numpy"
            return (
                f"OK {self.name} v{self.version} ({task}) sha256={self.sha256}: integrity, schema; "
                f"{self.model_format} only (no ONNX converter), scored {self.parity_rows} reference rows; "
                f"trusted types: {trusted}"
            )
        return (
            f"OK {self.name} v{self.version} ({task}) sha256={self.sha256}: integrity, schema and parity "
            f"(max |onnx - estimator| = {self.max_abs_diff:.2e} over {self.parity_rows} rows)"
        )


def check_parity(package: ModelPackage, tolerance: float = PARITY_TOLERANCE) -> tuple[int, float]:
    """Score the stored sample with both runtimes; returns (rows, max abs difference) or raises ParityError.

    Classification compares every class probability; regression compares values relative to their scale
    (``tolerance * max(1, |value|)``: float32 inputs in the graph round a 1e5 value by more than 1e-4).
    """
    columns, _ = read_reference(package)
    onnx = load_predictor(package, runtime="onnx").predict(columns).comparable()
    estimator = load_predictor(package, runtime="skops").predict(columns).comparable()
    diff = np.abs(onnx - estimator)
    if package.manifest.task.type == "regression":
        diff = diff / np.maximum(1.0, np.abs(estimator))
    diff = diff.reshape(len(diff), -1).max(axis=1) if len(diff) else diff.reshape(-1)
    worst = float(np.max(diff)) if len(diff) else 0.0
    if not np.all(np.isfinite(onnx)) or worst > tolerance:
        row = int(np.argmax(diff))
        raise ParityError(
            f"{package.source}: ONNX and estimator disagree by {worst:.3g} (row {row} of the parity sample: "
            f"onnx {np.round(onnx[row], 6).tolist()}, estimator {np.round(estimator[row], 6).tolist()}); "
            f"allowed is {tolerance:g}"
        )
    return len(diff), worst


def check_skops(package: ModelPackage) -> int:
    """A skops-only package: load with its recorded trusted types and score the reference sample."""
    columns, _ = read_reference(package)
    predictions = load_predictor(package, runtime="skops").predict(columns)
    values = predictions.comparable()
    if not np.all(np.isfinite(values)):
        raise ParityError(f"{package.source}: the estimator gives non-finite predictions on the reference sample")
    return len(predictions)


def verify_package(
    location: str | os.PathLike[str] | bytes,
    tolerance: float = PARITY_TOLERANCE,
    expect_sha256: str | None = None,
) -> VerifyResult:
    """Integrity, schema, parity. ``expect_sha256`` pins the manifest itself (the one file whose digest the
    package cannot carry): pass the champion pointer's or release record's ``model_sha256``."""
    package = open_package(location)  # integrity: every file's sha256 against the manifest
    if expect_sha256 is not None and package.sha256 != expect_sha256.lower():
        raise IntegrityError(
            f"{package.source}: manifest sha256 is {package.sha256}, expected {expect_sha256}; "
            "the manifest was altered or this is a different package"
        )
    manifest = package.manifest
    if manifest.runtime.format == "onnx":
        onnx = OnnxPredictor(package)
        check_schema(package, onnx)
        rows, worst = check_parity(package, tolerance)
    else:
        rows, worst = check_skops(package), 0.0
    return VerifyResult(
        package.sha256,
        manifest.name,
        manifest.version,
        rows,
        worst,
        manifest.task.type,
        manifest.task.labels,
        manifest.runtime.format,
        manifest.runtime.trusted_types,
    )
