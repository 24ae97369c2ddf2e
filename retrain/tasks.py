"""Task type and labels from the target column: binary, multiclass or regression.

Inference (``--task`` overrides): 2 distinct non-null values -> binary; 3..MAX_CLASSES text values or
3..MAX_INT_CLASSES integer values -> multiclass; a float target, or more integer values than that ->
regression. The estimator is fitted on the class index (0..K-1) in the order of
:attr:`~model_package.manifest.TaskSpec.labels`, so every runtime's probability columns are in label order.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from jobs_common.errors import DataError
from model_package.manifest import TASK_TYPES, Label, TaskSpec

LOG = logging.getLogger(__name__)
# An integer target with more distinct values than this is a count or an amount: regression.
MAX_INT_CLASSES = 20
# A text target with more classes than this is an identifier or free text, not a label.
MAX_CLASSES = 100


@dataclass(frozen=True)
class Target:
    """The encoded target: class index (int64) or value (float64), and what was dropped."""

    task: TaskSpec
    y: np.ndarray
    keep: np.ndarray  # row mask of the rows kept (False = null target dropped)
    dropped_null: int


def _label(value: object) -> Label:
    """A target value as a JSON label: numbers that are whole become int, everything else text."""
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return int(value)
    return str(value)


def _is_numeric(series: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series))


def null_target_rows(frame: pd.DataFrame, target: str) -> np.ndarray:
    if target not in frame.columns:
        raise DataError(f"target column {target!r} is missing; the data has {list(frame.columns)}")
    series = frame[target]
    null: np.ndarray = series.isna().to_numpy().copy()
    if series.dtype == object or pd.api.types.is_string_dtype(series):
        null |= series.astype(str).str.strip().eq("").to_numpy() & series.notna().to_numpy()
    return null


def infer_task(series: pd.Series, target: str, task: str | None = None, positive: object | None = None) -> TaskSpec:
    """The task of a (null-free) target column; every refusal names the values and what is allowed."""
    if task is not None and task not in TASK_TYPES:
        raise DataError(f"--task {task!r} is not known; allowed: {list(TASK_TYPES)}")
    numeric = _is_numeric(series)
    distinct = pd.unique(series)
    if len(distinct) < 2:
        shown = _label(distinct[0]) if len(distinct) else None
        raise DataError(
            f"target {target!r} has a single class ({shown!r}) in {len(series)} rows; a model needs at least "
            "2 classes (or a numeric target for regression)"
        )
    if task is None:
        task = _guess_task(series, len(distinct), numeric)
        LOG.info("target %s: %d distinct values, task %s (pass --task to override)", target, len(distinct), task)
    if task == "regression":
        if not numeric or pd.api.types.is_bool_dtype(series):
            examples = [str(v) for v in distinct[:5]]
            raise DataError(f"--task regression needs a numeric target; {target!r} has values such as {examples}")
        if positive is not None:
            raise DataError("--positive is for binary targets; this one is regression")
        return TaskSpec(type="regression", labels=(), positive_label=None)
    return _classification_spec(task, distinct, target, positive)


def _guess_task(series: pd.Series, n_distinct: int, numeric: bool) -> str:
    if n_distinct == 2:
        return "binary"
    integral = numeric and bool(np.all(np.mod(series.to_numpy(dtype=np.float64), 1) == 0))
    if not numeric or (integral and n_distinct <= MAX_INT_CLASSES):
        return "multiclass"
    return "regression"


def _classification_spec(task: str, distinct: np.ndarray, target: str, positive: object | None) -> TaskSpec:
    labels = sorted({_label(v) for v in distinct}, key=lambda v: (isinstance(v, str), v))
    if len({str(v) for v in labels}) != len(labels):
        raise DataError(f"target {target!r} has labels that differ only in type, such as {labels[:5]}")
    if task == "binary":
        if len(labels) != 2:
            raise DataError(
                f"--task binary needs exactly 2 distinct target values; {target!r} has {len(labels)}: {labels[:10]}"
            )
        if positive is not None:
            chosen = next((v for v in labels if str(v) == str(positive)), None)
            if chosen is None:
                raise DataError(f"--positive {positive!r}: target {target!r} has values {labels}")
            labels = [v for v in labels if v != chosen] + [chosen]
        elif any(isinstance(v, str) for v in labels):
            # Which text label is "positive" cannot be guessed ("bad"/"good"): lift, AUC and every answer's
            # probability refer to it, so it is asked for once and recorded in the manifest.
            raise DataError(
                f"target {target!r} has the text labels {labels}; pass --positive with the one that is the "
                f"positive class (e.g. --positive {labels[1]}); it is recorded in the package"
            )
        return TaskSpec(type="binary", labels=tuple(labels), positive_label=labels[1])
    if positive is not None:
        raise DataError(f"--positive is for binary targets; {target!r} is {task}")
    if len(labels) < 3:
        raise DataError(f"--task multiclass needs at least 3 classes; {target!r} has {labels}")
    if len(labels) > MAX_CLASSES:
        raise DataError(
            f"target {target!r} has {len(labels)} classes; at most {MAX_CLASSES} are allowed for multiclass "
            "(is it an identifier? for a numeric amount use --task regression)"
        )
    return TaskSpec(type="multiclass", labels=tuple(labels), positive_label=None)


def encode(series: pd.Series, task: TaskSpec, target: str) -> np.ndarray:
    """Class index per row (classification) or float64 values (regression); unknown labels are refused."""
    if not task.is_classification:
        values: np.ndarray = pd.to_numeric(series, errors="raise").to_numpy(dtype=np.float64)
        return values
    index = {str(label): i for i, label in enumerate(task.labels)}
    text = [str(_label(v)) for v in series.to_numpy()]
    unknown = sorted({t for t in text if t not in index})
    if unknown:
        raise DataError(
            f"target {target!r} has values {unknown[:10]} that are not the model's labels {list(task.labels)}"
        )
    return np.array([index[t] for t in text], dtype=np.int64)


def prepare_target(
    frame: pd.DataFrame,
    target: str,
    *,
    task: str | None = None,
    positive: object | None = None,
    drop_null_target: bool = False,
    known: TaskSpec | None = None,
) -> Target:
    """Refuse or drop null targets, infer (or reuse ``known``, the champion's) task, encode.

    A null target is never a class: without ``drop_null_target`` it is refused with the count.
    """
    null = null_target_rows(frame, target)
    if null.any() and not drop_null_target:
        raise DataError(
            f"target {target!r} has {int(null.sum())} null values of {len(frame)} rows; every row needs a label "
            "(fix the data, or pass --drop-null-target to drop those rows; the count goes in the report)"
        )
    series = frame[target][~null]
    spec = infer_task(series, target, task, positive) if known is None else known
    y = encode(series, spec, target)
    if spec.is_classification and len(np.unique(y)) < 2:
        raise DataError(f"target {target!r} has a single class ({spec.labels[int(y[0])]!r}); at least 2 are needed")
    if null.any():
        LOG.warning("target %s: dropped %d rows with a null target (--drop-null-target)", target, int(null.sum()))
    return Target(spec, y, ~null, int(null.sum()))
