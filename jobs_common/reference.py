"""``reference.csv``: a sample of training rows (features + target) carried inside the package.

Written and read with the ``csv`` module and numpy only, so any job can read it without pandas. An
empty cell is null for every dtype (the model cannot tell an empty category from a missing one either,
see ``model_package.runtime.MISSING_CATEGORY``).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from model_package.archive import REFERENCE_NAME, ModelPackage
from model_package.errors import SchemaError
from model_package.manifest import FeatureSpec, Manifest, TaskSpec


def _cell(value: object, spec: FeatureSpec) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if spec.dtype == "int":
        return str(int(value))  # type: ignore[call-overload]
    if spec.dtype == "float":
        return repr(float(value))  # type: ignore[arg-type]
    return str(value)


def _target_cell(value: object, task: TaskSpec | None) -> str:
    """The user's label (classification, ``y`` is the class index) or the value (regression)."""
    if task is None:
        return str(int(value))  # type: ignore[call-overload]
    if task.is_classification:
        return str(task.labels[int(value)])  # type: ignore[call-overload]
    return repr(float(value))  # type: ignore[arg-type]


def reference_csv(
    features: tuple[FeatureSpec, ...],
    target: str,
    columns: Mapping[str, np.ndarray],
    y: np.ndarray,
    task: TaskSpec | None = None,
) -> bytes:
    """The target column holds the user's labels (as written in the training data) or regression values."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*(f.name for f in features), target])
    for i in range(len(y)):
        writer.writerow([*(_cell(columns[f.name][i], f) for f in features), _target_cell(y[i], task)])
    return buffer.getvalue().encode()


def read_reference(package: ModelPackage) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Columns in the runtime contract plus the target: the int64 class index (classification, so binary is
    0/1 = negative/positive) or float64 values (regression); a malformed file is a :class:`SchemaError`."""
    manifest: Manifest = package.manifest
    rows = list(csv.reader(io.StringIO(package.read(REFERENCE_NAME).decode())))
    if not rows:
        raise SchemaError(f"{package.source}: {REFERENCE_NAME} is empty; it must hold a header and sample rows")
    header, body = rows[0], rows[1:]
    needed = [*manifest.feature_names, manifest.target]
    missing = [n for n in needed if n not in header]
    if missing:
        raise SchemaError(f"{package.source}: {REFERENCE_NAME} lacks columns {missing}; it must have {needed}")
    if not body:
        raise SchemaError(f"{package.source}: {REFERENCE_NAME} has no rows; parity needs a sample")
    index = {name: header.index(name) for name in needed}
    columns: dict[str, np.ndarray] = {}
    try:
        for spec in manifest.features:
            cells = [row[index[spec.name]] for row in body]
            if spec.is_numeric:
                columns[spec.name] = np.array([float(c) if c else np.nan for c in cells], dtype=np.float64)
            else:
                columns[spec.name] = np.array([c if c else None for c in cells], dtype=object)
        cells = [row[index[manifest.target]] for row in body]
    except (ValueError, IndexError) as exc:
        raise SchemaError(f"{package.source}: {REFERENCE_NAME} has a malformed row: {exc}") from exc
    task = manifest.task
    if not task.is_classification:
        try:
            return columns, np.array([float(c) for c in cells], dtype=np.float64)
        except ValueError as exc:
            raise SchemaError(f"{package.source}: target {manifest.target!r} in {REFERENCE_NAME}: {exc}") from exc
    found = [task.label_index(c) for c in cells]
    if any(i is None for i in found):
        bad = sorted({c for c, i in zip(cells, found, strict=True) if i is None})[:5]
        raise SchemaError(
            f"{package.source}: target {manifest.target!r} in {REFERENCE_NAME} has {bad}, not the labels "
            f"{list(task.labels)}"
        )
    return columns, np.array(found, dtype=np.int64)


def reference_frame(package: ModelPackage) -> pd.DataFrame:
    """The training sample stored in the package (features + target), read as retrain wrote it."""
    columns, y = read_reference(package)
    return pd.DataFrame({**columns, package.manifest.target: y})
