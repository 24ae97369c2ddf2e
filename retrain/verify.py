"""``python -m retrain verify``: integrity, schema, then ONNX-vs-estimator parity on the stored sample.

Each failure is a ``model_package.errors`` class whose ``exit_code`` the CLI returns (2..6), so a
pipeline step can tell "corrupted" from "inconsistent" from "the two runtimes disagree".
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np

from model_package.archive import ModelPackage, open_package
from model_package.errors import IntegrityError, ParityError
from model_package.runtime import OnnxPredictor, check_schema, load_predictor
from retrain.reference import read_reference

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

    def summary(self) -> str:
        return (
            f"OK {self.name} v{self.version} sha256={self.sha256}: integrity, schema and parity "
            f"(max |onnx - estimator| = {self.max_abs_diff:.2e} over {self.parity_rows} rows)"
        )


def check_parity(package: ModelPackage, tolerance: float = PARITY_TOLERANCE) -> tuple[int, float]:
    """Score the stored sample with both runtimes; returns (rows, max abs difference) or raises ParityError."""
    columns, _ = read_reference(package)
    onnx = load_predictor(package, runtime="onnx").predict_proba(columns)
    estimator = load_predictor(package, runtime="skops").predict_proba(columns)
    diff = np.abs(onnx - estimator)
    worst = float(np.max(diff)) if len(diff) else 0.0
    if not np.all(np.isfinite(onnx)) or worst > tolerance:
        row = int(np.argmax(diff))
        raise ParityError(
            f"{package.source}: ONNX and estimator disagree by {worst:.3g} (row {row} of the parity sample: "
            f"onnx {onnx[row]:.6f}, estimator {estimator[row]:.6f}); allowed is {tolerance:g}"
        )
    return len(diff), worst


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
    onnx = OnnxPredictor(package)
    check_schema(package, onnx)
    rows, worst = check_parity(package, tolerance)
    return VerifyResult(package.sha256, package.manifest.name, package.manifest.version, rows, worst)
