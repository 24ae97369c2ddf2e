"""Holdout metrics and the gate's view of them: which direction is better for each metric."""

from __future__ import annotations

import numpy as np

from jobs_common.errors import DataError
from model_package.manifest import HIGHER_IS_BETTER, PRIMARY_METRIC, Metrics, TaskSpec
from model_package.runtime import Predictions


def lift(y_true: np.ndarray, scores: np.ndarray, fraction: float = 0.1) -> float:
    """Positive rate among the top ``fraction`` by score over the base rate (1.0 = no better than random)."""
    base = float(np.mean(y_true))
    if base == 0:
        return 0.0
    top = max(1, int(np.ceil(len(scores) * fraction)))
    # Stable sort on -score: ties are broken by row order, so the value is deterministic.
    order = np.argsort(-scores, kind="stable")[:top]
    return float(np.mean(y_true[order]) / base)


def holdout_metrics(y_true: np.ndarray, scores: np.ndarray) -> Metrics:
    from sklearn.metrics import log_loss, roc_auc_score

    y = np.asarray(y_true, dtype=np.int64)
    p = np.clip(np.asarray(scores, dtype=np.float64), 1e-15, 1 - 1e-15)
    if len(np.unique(y)) < 2:
        raise DataError("the holdout has only one target class; ROC AUC needs both 0 and 1 (more or other data)")
    return Metrics(
        roc_auc=float(roc_auc_score(y, p)),
        log_loss=float(log_loss(y, p, labels=[0, 1])),
        lift=lift(y, p),
        holdout_rows=len(y),
    )


def task_metrics(task: TaskSpec, y_true: np.ndarray, predictions: Predictions) -> Metrics:
    """Holdout metrics of the task; ``y_true`` is the class index (classification) or the value."""
    if task.type == "binary":
        assert predictions.probabilities is not None
        return holdout_metrics(y_true, predictions.probabilities[:, 1])
    if task.type == "multiclass":
        return multiclass_metrics(task, y_true, predictions)
    return regression_metrics(y_true, predictions)


def multiclass_metrics(task: TaskSpec, y_true: np.ndarray, predictions: Predictions) -> Metrics:
    from sklearn.metrics import f1_score, log_loss, recall_score

    y = np.asarray(y_true, dtype=np.int64)
    assert predictions.probabilities is not None and predictions.label_index is not None
    k = len(task.labels)
    p = np.clip(predictions.probabilities, 1e-15, 1.0)
    p = p / p.sum(axis=1, keepdims=True)
    classes = list(range(k))
    recall = recall_score(y, predictions.label_index, labels=classes, average=None, zero_division=0)
    return Metrics(
        primary_metric=PRIMARY_METRIC["multiclass"],
        higher_is_better=HIGHER_IS_BETTER[PRIMARY_METRIC["multiclass"]],
        log_loss=float(log_loss(y, p, labels=classes)),
        macro_f1=float(f1_score(y, predictions.label_index, labels=classes, average="macro", zero_division=0)),
        per_class_recall={str(label): float(r) for label, r in zip(task.labels, recall, strict=True)},
        holdout_rows=len(y),
    )


def regression_metrics(y_true: np.ndarray, predictions: Predictions) -> Metrics:
    y = np.asarray(y_true, dtype=np.float64)
    assert predictions.values is not None
    error = predictions.values - y
    total = float(np.sum((y - y.mean()) ** 2))
    return Metrics(
        primary_metric=PRIMARY_METRIC["regression"],
        higher_is_better=HIGHER_IS_BETTER[PRIMARY_METRIC["regression"]],
        rmse=float(np.sqrt(np.mean(error**2))),
        mae=float(np.mean(np.abs(error))),
        # A constant holdout target has no variance to explain: R^2 is 0 when the error is 0 too, else -inf is
        # not JSON; report 0.0 and let RMSE speak.
        r2=float(1 - np.sum(error**2) / total) if total > 0 else 0.0,
        holdout_rows=len(y),
    )


def metric_value(metrics: Metrics, name: str) -> float:
    value = metrics.value(name)
    if value is None:
        raise ValueError(f"metric {name!r} is not recorded for this model (primary: {metrics.primary_metric})")
    return value


PSI_FLOOR = 1e-4  # the usual floor so an empty bin does not make PSI infinite


def psi_of_fractions(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index of two histograms given as fractions per bin (same bins).

    Shared by the drift monitor (feature PSI) and the Evaluate action (score PSI), so both read the same
    number against the same thresholds.
    """
    e = np.clip(expected, PSI_FLOOR, None)
    a = np.clip(actual, PSI_FLOOR, None)
    return float(np.sum((a - e) * np.log(a / e)))
