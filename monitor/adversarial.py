"""Multivariate drift: can a classifier tell training rows from production rows?

Univariate tests miss changes in the joint distribution (two features that were independent
become correlated; marginals unchanged). A gradient-boosted classifier trained to separate the
package's reference rows from production rows finds them: out-of-fold ROC AUC near 0.5 means it
cannot tell them apart; at or above the threshold the populations differ.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from jobs_common.columns import feature_columns
from model_package.manifest import Manifest

DEFAULT_MAX_ROWS = 5_000
FOLDS = 3


@dataclass
class AdversarialResult:
    auc: float | None
    threshold: float
    drift: bool
    rows_reference: int
    rows_production: int
    top_features: list[dict[str, float]] = field(default_factory=list)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# HistGradientBoosting takes at most 255 distinct codes per categorical feature (its ``max_bins``).
MAX_CATEGORY_CODES = 250
# A category seen fewer times than this in the pooled sample goes to the shared "rare" bucket: one or two
# rows of a value tell the classifier nothing about the populations, only let it memorise noise.
MIN_CATEGORY_ROWS = 10


def category_codes(values: np.ndarray, max_codes: int = MAX_CATEGORY_CODES) -> dict[str, int]:
    """Codes for the most frequent categories of the pooled (reference + production) sample.

    Why pooled and not the manifest's categories: a value that is frequent only in production (a new
    merchant taking over traffic) must get its own code, or the shift is invisible. Why capped and
    bucketed: real tables have hundreds to thousands of values (ids, merchants, airports); the
    classifier cannot take more than 255 and would overfit the rare ones into false drift. Every value
    not in the returned map (rare, or beyond the cap) shares the code ``len(codes)``.
    """
    present = pd.Series(values, dtype=object).dropna().astype(str)
    counts = present.value_counts(sort=True)
    frequent = counts[counts >= MIN_CATEGORY_ROWS].index[:max_codes]
    return {str(c): i for i, c in enumerate(sorted(frequent))}


def _encode(frame: pd.DataFrame, manifest: Manifest, codes: dict[str, dict[str, int]]) -> np.ndarray:
    """Numeric as float (NaN kept); categorical as :func:`category_codes` codes (rare -> one shared code)."""
    columns = feature_columns(frame, manifest.features)
    out = np.empty((len(frame), len(manifest.features)), dtype=np.float64)
    for j, spec in enumerate(manifest.features):
        values = columns.get(spec.name)
        if values is None:
            out[:, j] = np.nan
        elif spec.is_numeric:
            out[:, j] = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            lookup = codes[spec.name]
            rare = len(lookup)
            out[:, j] = [np.nan if v is None else lookup.get(str(v), rare) for v in values]
    return out


def _raw(frame: pd.DataFrame, name: str) -> np.ndarray:
    return frame[name].to_numpy(dtype=object) if name in frame.columns else np.empty(0, dtype=object)


class AdversarialClassifier:
    """Out-of-fold AUC of reference-vs-production on balanced samples of at most ``max_rows`` each."""

    def __init__(self, threshold: float = 0.6, max_rows: int = DEFAULT_MAX_ROWS, seed: int = 0) -> None:
        self.threshold, self.max_rows, self.seed = threshold, max_rows, seed

    def run(self, reference: pd.DataFrame, production: pd.DataFrame, manifest: Manifest) -> AdversarialResult:
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.metrics import roc_auc_score
        from sklearn.model_selection import StratifiedKFold, cross_val_predict
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # no py.typed marker

        rng = np.random.default_rng(self.seed)
        n = min(len(reference), len(production), self.max_rows)
        if n < 50:
            return AdversarialResult(None, self.threshold, False, len(reference), len(production), note="too few rows")
        ref = reference.iloc[rng.choice(len(reference), n, replace=False)]
        prod = production.iloc[rng.choice(len(production), n, replace=False)]
        codes = {
            spec.name: category_codes(
                np.concatenate([_raw(ref, spec.name), _raw(prod, spec.name)]),
            )
            for spec in manifest.features
            if not spec.is_numeric
        }
        x = np.vstack([_encode(ref, manifest, codes), _encode(prod, manifest, codes)])
        y = np.concatenate([np.zeros(n), np.ones(n)])
        categorical = np.array([not spec.is_numeric for spec in manifest.features])
        model = HistGradientBoostingClassifier(
            max_iter=100,
            learning_rate=0.1,
            max_leaf_nodes=15,
            categorical_features=categorical if categorical.any() else None,
            random_state=self.seed,
        )
        folds = StratifiedKFold(FOLDS, shuffle=True, random_state=self.seed)
        # One OpenMP thread: on a busy 2-core box, spinning OpenMP threads made this 10x slower.
        with threadpool_limits(limits=1, user_api="openmp"):
            scores = cross_val_predict(model, x, y, cv=folds, method="predict_proba")[:, 1]
            auc = float(roc_auc_score(y, scores))
            top: list[dict[str, float]] = []
            if auc >= self.threshold:
                top = self._importance(model, x, y, manifest)
        return AdversarialResult(auc, self.threshold, auc >= self.threshold, len(reference), len(production), top)

    def _importance(self, model: Any, x: np.ndarray, y: np.ndarray, manifest: Manifest) -> list[dict[str, float]]:
        """Which features let the classifier separate the sets: permutation importance on a holdout."""
        from sklearn.inspection import permutation_importance
        from sklearn.model_selection import train_test_split

        x_fit, x_hold, y_fit, y_hold = train_test_split(x, y, test_size=0.3, stratify=y, random_state=self.seed)
        model.fit(x_fit, y_fit)
        result = permutation_importance(model, x_hold, y_hold, scoring="roc_auc", n_repeats=3, random_state=self.seed)
        ranked = np.argsort(-result.importances_mean)[:5]
        return [
            {"feature": manifest.features[i].name, "auc_drop": float(result.importances_mean[i])}
            for i in ranked
            if result.importances_mean[i] > 0
        ]
