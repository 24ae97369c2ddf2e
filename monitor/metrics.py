"""Model quality on labelled rows, defined exactly as the manifest's holdout ``Metrics``.

``lift`` is the positive rate in the top decile of scores over the base rate (manifest.Metrics).
Concept drift is judged by comparing these live numbers with the holdout ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from model_package.manifest import Metrics
from monitor.thresholds import DriftThresholds
from retrain.metrics import lift

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
    holdout: dict[str, float] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def concept_drift(
    labels: np.ndarray | None, probability: np.ndarray | None, holdout: Metrics, t: DriftThresholds
) -> ConceptResult:
    """Live ROC AUC and log loss against the holdout's, on the rows that have both a label and a score."""
    reference = {"roc_auc": holdout.roc_auc, "log_loss": holdout.log_loss, "lift": holdout.lift}
    if labels is None or probability is None:
        return ConceptResult(False, False, holdout=reference, note="no labels: concept drift not evaluated")
    known = ~np.isnan(labels) & ~np.isnan(probability)
    if known.sum() < t.min_labelled_rows:
        note = f"only {int(known.sum())} labelled predictions (< {t.min_labelled_rows}); not judged"
        return ConceptResult(False, False, holdout=reference, note=note)
    live = quality(labels[known], probability[known])
    result = ConceptResult(True, False, live=live, holdout=reference)
    auc = live["roc_auc"]
    if auc is not None and holdout.roc_auc - auc >= t.concept_auc_drop:
        result.drift = True
        result.reasons.append(f"ROC AUC {holdout.roc_auc:.3f} -> {auc:.3f}")
    live_loss = live["log_loss"]
    if live_loss is not None and live_loss >= holdout.log_loss * (1 + t.concept_log_loss_rise):
        result.drift = True
        result.reasons.append(f"log loss {holdout.log_loss:.3f} -> {live_loss:.3f}")
    return result
