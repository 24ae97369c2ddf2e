"""Holdout metrics and the gate's view of them: which direction is better for each metric."""

from __future__ import annotations

from typing import Literal

import numpy as np

from model_package.manifest import Metrics
from retrain.errors import DataError

MetricName = Literal["roc_auc", "log_loss", "lift", "macro_f1", "rmse", "mae", "r2"]


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


def metric_value(metrics: Metrics, name: str) -> float:
    value = metrics.value(name)
    if value is None:
        raise ValueError(f"metric {name!r} is not recorded for this model (primary: {metrics.primary_metric})")
    return value
