"""Model quality on labelled rows, defined exactly as the manifest's holdout ``Metrics``.

``lift`` is the positive rate in the top decile of scores over the base rate (manifest.Metrics).
Concept drift is judged by comparing these live numbers with the holdout ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from jobs_common.metrics import lift
from model_package.manifest import TASK_METRICS, Metrics, TaskSpec
from monitor.thresholds import DriftThresholds

EPS = 1e-15


def log_loss(labels: np.ndarray, probability: np.ndarray) -> float:
    p = np.clip(probability, EPS, 1 - EPS)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


def roc_auc(labels: np.ndarray, probability: np.ndarray) -> float | None:
    if len(np.unique(labels)) < 2:
        return None
    from scipy.stats import rankdata

    ranks = rankdata(probability)
    positives = labels == 1
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def quality(labels: np.ndarray, probability: np.ndarray) -> dict[str, float | None]:
    return {
        "roc_auc": roc_auc(labels, probability),
        "log_loss": log_loss(labels, probability),
        "lift": lift(labels, probability),
        "rows": len(labels),
        "positive_rate": float(np.mean(labels)) if len(labels) else None,
    }


@dataclass
class ConceptResult:
    evaluated: bool
    drift: bool
    live: dict[str, float | None] = field(default_factory=dict)
    holdout: dict[str, float | None] = field(default_factory=dict)  # None: the manifest has no such metric
    reasons: list[str] = field(default_factory=list)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def concept_drift(
    labels: np.ndarray | None,
    probability: np.ndarray | None,
    holdout: Metrics,
    t: DriftThresholds,
    *,
    task: TaskSpec | None = None,
    class_probabilities: np.ndarray | None = None,
) -> ConceptResult:
    """Live task metrics against the holdout's, on the rows that have both a label and a prediction.

    binary: ROC AUC drop >= ``concept_auc_drop`` or log-loss rise >= ``concept_log_loss_rise``;
    multiclass: macro F1 drop >= ``concept_auc_drop`` or log-loss rise >= ``concept_log_loss_rise``;
    regression: relative RMSE rise >= ``concept_log_loss_rise`` (the same "relative loss rise" rule).
    ``labels`` are class indexes (classification) or values (regression), NaN where none arrived.
    """
    kind = task.type if task is not None else "binary"
    reference = {m: holdout.value(m) for m in TASK_METRICS[kind]}
    if labels is None or probability is None:
        return ConceptResult(False, False, holdout=reference, note="no labels: concept drift not evaluated")
    known = ~np.isnan(labels) & ~np.isnan(probability)
    if class_probabilities is not None:
        known &= ~np.isnan(class_probabilities).any(axis=1)
    if known.sum() < t.min_labelled_rows:
        note = f"only {int(known.sum())} labelled predictions (< {t.min_labelled_rows}); not judged"
        return ConceptResult(False, False, holdout=reference, note=note)
    if kind != "binary":
        assert task is not None
        return _task_concept(
            task=task,
            labels=labels[known],
            score=probability[known],
            class_probabilities=class_probabilities,
            known=known,
            holdout=holdout,
            t=t,
        )
    live = quality(labels[known], probability[known])
    result = ConceptResult(True, False, live=live, holdout=reference)
    auc = live["roc_auc"]
    if auc is not None and holdout.roc_auc is not None and holdout.roc_auc - auc >= t.concept_auc_drop:
        result.drift = True
        result.reasons.append(f"ROC AUC {holdout.roc_auc:.3f} -> {auc:.3f}")
    live_loss = live["log_loss"]
    if (
        live_loss is not None
        and holdout.log_loss is not None
        and live_loss >= holdout.log_loss * (1 + t.concept_log_loss_rise)
    ):
        result.drift = True
        result.reasons.append(f"log loss {holdout.log_loss:.3f} -> {live_loss:.3f}")
    return result


def _task_concept(
    *,
    task: TaskSpec,
    labels: np.ndarray,
    score: np.ndarray,
    class_probabilities: np.ndarray | None,
    known: np.ndarray,
    holdout: Metrics,
    t: DriftThresholds,
) -> ConceptResult:
    """Multiclass and regression: the training code's own metric definitions on the live rows."""
    from jobs_common.metrics import task_metrics
    from model_package.runtime import Predictions

    if task.type == "multiclass":
        assert class_probabilities is not None
        live_metrics = task_metrics(
            task, labels.astype(np.int64), Predictions(task, probabilities=class_probabilities[known])
        )
    else:
        live_metrics = task_metrics(task, labels, Predictions(task, values=score))
    names = TASK_METRICS[task.type]
    live: dict[str, float | None] = {m: live_metrics.value(m) for m in names}
    live["rows"] = len(labels)
    result = ConceptResult(True, False, live=live, holdout={m: holdout.value(m) for m in names})
    if task.type == "multiclass":
        f1, base_f1 = live["macro_f1"], holdout.macro_f1
        if f1 is not None and base_f1 is not None and base_f1 - f1 >= t.concept_auc_drop:
            result.drift = True
            result.reasons.append(f"macro F1 {base_f1:.3f} -> {f1:.3f}")
        loss, base_loss = live["log_loss"], holdout.log_loss
        if loss is not None and base_loss is not None and loss >= base_loss * (1 + t.concept_log_loss_rise):
            result.drift = True
            result.reasons.append(f"log loss {base_loss:.3f} -> {loss:.3f}")
        recall = live_metrics.per_class_recall or {}
        result.live["per_class_recall"] = recall  # type: ignore[assignment]
    else:
        rmse, base_rmse = live["rmse"], holdout.rmse
        if rmse is not None and base_rmse is not None and rmse >= base_rmse * (1 + t.concept_log_loss_rise):
            result.drift = True
            result.reasons.append(f"RMSE {base_rmse:.3f} -> {rmse:.3f}")
    return result
