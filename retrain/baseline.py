"""The drift baseline stored in the manifest: what "normal" looked like for each feature at training time."""

from __future__ import annotations

import numpy as np

from model_package.manifest import FeatureBaseline, FeatureSpec

QUANTILES = 101


def numeric_baseline(name: str, values: np.ndarray) -> FeatureBaseline:
    values = np.asarray(values, dtype=np.float64)
    present = values[~np.isnan(values)]
    null_rate = float(1 - len(present) / len(values)) if len(values) else 0.0
    if len(present) == 0:
        return FeatureBaseline(name=name, kind="numeric", count=0, null_rate=null_rate)
    quantiles = np.quantile(present, np.linspace(0, 1, QUANTILES))
    # np.quantile can be off by an ulp between neighbours; the manifest requires non-decreasing values.
    quantiles = np.maximum.accumulate(quantiles)
    return FeatureBaseline(
        name=name,
        kind="numeric",
        count=len(present),
        null_rate=null_rate,
        mean=float(np.mean(present)),
        std=float(np.std(present)),
        quantiles=tuple(float(q) for q in quantiles),
    )


def categorical_baseline(name: str, values: np.ndarray, missing: str) -> FeatureBaseline:
    present = [v for v in values if v != missing]
    null_rate = float(1 - len(present) / len(values)) if len(values) else 0.0
    fractions: dict[str, float] = {}
    if present:
        labels, counts = np.unique(np.array(present, dtype=str), return_counts=True)
        fractions = {str(k): float(c) / len(present) for k, c in zip(labels, counts, strict=True)}
    return FeatureBaseline(
        name=name, kind="categorical", count=len(present), null_rate=null_rate, category_fractions=fractions
    )


def feature_baselines(
    features: tuple[FeatureSpec, ...], columns: dict[str, np.ndarray], missing: str
) -> tuple[FeatureBaseline, ...]:
    """``columns`` are in the model's representation (``model_package.runtime.model_columns``)."""
    return tuple(
        numeric_baseline(f.name, columns[f.name])
        if f.is_numeric
        else categorical_baseline(f.name, columns[f.name], missing)
        for f in features
    )
