"""Per-feature drift tests against the manifest's baseline (no training rows needed).

Numeric features: Kolmogorov-Smirnov distance between the production sample and the training CDF
rebuilt from the baseline quantiles, plus PSI over the baseline's decile bins. Categorical features:
chi-square over the known categories, total variation distance and PSI including an "unseen" bucket,
and the share of unseen categories. Every feature: a null-rate test. Everything is numpy on one
column at a time, so a million rows cost one sort per feature.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from jobs_common.metrics import psi_of_fractions
from model_package.manifest import FeatureBaseline, FeatureSpec
from monitor.thresholds import DriftThresholds

PSI_BINS = 10
MIN_EXPECTED_COUNT = 5  # the usual validity rule of the chi-square test
RARE = "<rare>"
UNSEEN = "<unseen>"
# kstwo (exact) is slow for large n and the asymptotic form is accurate there.
KS_EXACT_MAX_N = 10_000


@dataclass
class FeatureDrift:
    """One feature's verdict and the numbers behind it; ``reasons`` says which rule fired."""

    name: str
    kind: str  # "numeric" | "categorical"
    test: str  # "ks" | "chi2" | "missing" | "none"
    drift: bool
    statistic: float | None = None
    p_value: float | None = None
    effect: float | None = None  # KS distance (numeric) or total variation distance (categorical)
    psi: float | None = None
    mean_shift: float | None = None  # (production mean - baseline mean) / baseline std
    mean_p_value: float | None = None
    rows: int = 0
    null_rate_baseline: float | None = None
    null_rate_production: float | None = None
    null_p_value: float | None = None
    unseen_share: float | None = None
    unseen_examples: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    # For the plots: baseline vs production fractions over the same bins/categories.
    bins: list[str] = field(default_factory=list)
    baseline_fractions: list[float] = field(default_factory=list)
    production_fractions: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {k: _clean(v) for k, v in self.__dict__.items()}


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


class BaselineCdf:
    """The training CDF rebuilt from evenly spaced quantiles.

    A value repeated among the quantiles is an atom (a point mass: counts, ratings, a clipped
    maximum): the CDF jumps there from the lowest to the highest probability of its run. Between
    distinct values it is linear. Without the jump, integer-valued data would look drifted against
    itself, because the production ECDF jumps at every integer.
    """

    def __init__(self, baseline: FeatureBaseline) -> None:
        q = np.asarray(baseline.quantiles, dtype=np.float64)
        p = np.linspace(0.0, 1.0, len(q))
        self.values, first = np.unique(q, return_index=True)
        last = len(q) - 1 - np.unique(q[::-1], return_index=True)[1]
        self.p_low, self.p_high = p[first], p[last]

    def right(self, x: np.ndarray) -> np.ndarray:
        """P(X <= x)."""
        x = np.asarray(x, dtype=np.float64)
        v, n = self.values, len(self.values)
        idx = np.searchsorted(v, x, side="right") - 1
        safe = np.clip(idx, 0, n - 1)
        nxt = np.clip(idx + 1, 0, n - 1)
        exact = (idx >= 0) & (v[safe] == x)
        span = np.where(nxt > safe, v[nxt] - v[safe], 1.0)
        frac = np.clip((x - v[safe]) / span, 0.0, 1.0)
        between = self.p_high[safe] + frac * (self.p_low[nxt] - self.p_high[safe])
        out = np.where(exact, self.p_high[safe], between)
        out = np.where(idx < 0, 0.0, out)
        return np.where((idx >= n - 1) & ~exact, 1.0, out)

    def left(self, x: np.ndarray) -> np.ndarray:
        """P(X < x): differs from ``right`` only at an atom."""
        x = np.asarray(x, dtype=np.float64)
        idx = np.searchsorted(self.values, x, side="left")
        safe = np.clip(idx, 0, len(self.values) - 1)
        exact = (idx < len(self.values)) & (self.values[safe] == x)
        return np.where(exact, self.p_low[safe], self.right(x))

    def decile_edges(self) -> np.ndarray:
        """Interior PSI bin edges at the baseline deciles, distinct values only."""
        probs = np.linspace(0, 1, PSI_BINS + 1)[1:-1]
        # invert the CDF: the smallest value whose P(X <= value) reaches each decile
        idx = np.searchsorted(self.p_high, probs, side="left")
        return np.unique(self.values[np.clip(idx, 0, len(self.values) - 1)])


def ks_p_value(distance: float, n_production: int, n_baseline: int) -> float:
    """Two-sample KS p-value with the effective sample size (as scipy's asymptotic ks_2samp)."""
    n_eff = n_production * n_baseline / (n_production + n_baseline) if n_baseline > 0 else n_production
    n_eff = max(1, round(n_eff))
    if n_eff <= KS_EXACT_MAX_N:
        return float(stats.kstwo.sf(distance, n_eff))
    return float(stats.kstwobign.sf(distance * math.sqrt(n_eff)))


def ks_distance(sample: np.ndarray, cdf: BaselineCdf) -> float:
    """sup |F_production - F_baseline|, checked at every jump of either function and its left limit.

    One sort of the sample; the production ECDF at its own distinct values comes from the run
    boundaries of the sorted array (linear), only the ~100 baseline points need a binary search.
    """
    xs = np.sort(sample)
    n = len(xs)
    boundaries = np.flatnonzero(xs[1:] != xs[:-1]) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [n]])
    values = xs[starts]
    at_sample = max(
        np.max(np.abs(ends / n - cdf.right(values))),
        np.max(np.abs(starts / n - cdf.left(values))),
    )
    grid = cdf.values
    at_baseline = max(
        np.max(np.abs(np.searchsorted(xs, grid, side="right") / n - cdf.right(grid))),
        np.max(np.abs(np.searchsorted(xs, grid, side="left") / n - cdf.left(grid))),
    )
    return float(max(at_sample, at_baseline))


def null_rate_test(result: FeatureDrift, baseline: FeatureBaseline, nulls: int, total: int, t: DriftThresholds) -> None:
    """Two-proportion z-test on the null rate, gated by an absolute change."""
    p0, p1 = baseline.null_rate, nulls / total if total else 0.0
    # count is the non-null training rows; the null rate is over all of them.
    n0 = max(round(baseline.count / max(1e-9, 1 - p0)), 1)
    pooled = (p0 * n0 + p1 * total) / (n0 + total)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n0 + 1 / max(total, 1)))
    p_value = 1.0 if se == 0 else float(2 * stats.norm.sf(abs(p1 - p0) / se))
    if se == 0 and p0 != p1:
        p_value = 0.0
    result.null_rate_baseline, result.null_rate_production, result.null_p_value = p0, p1, p_value
    if p_value < t.p_value and abs(p1 - p0) >= t.null_rate_change:
        result.drift = True
        result.reasons.append(f"null rate {p0:.3f} -> {p1:.3f} (p={p_value:.2g})")


def numeric_drift(spec: FeatureSpec, baseline: FeatureBaseline, values: np.ndarray, t: DriftThresholds) -> FeatureDrift:
    """KS + PSI on the non-null values, null-rate test on the rest. ``values``: float64, NaN = null."""
    values = np.asarray(values, dtype=np.float64)
    present = values[~np.isnan(values)]
    result = FeatureDrift(spec.name, "numeric", "ks", False, rows=len(values))
    null_rate_test(result, baseline, len(values) - len(present), len(values), t)
    if len(present) < t.min_rows or len(baseline.quantiles) < 2:
        result.test = "none"
        result.reasons.append(f"only {len(present)} non-null rows (< {t.min_rows}); not tested")
        return result
    cdf = BaselineCdf(baseline)
    distance = ks_distance(present, cdf)
    p_value = ks_p_value(distance, len(present), baseline.count)
    edges = cdf.decile_edges()
    expected = np.diff(np.concatenate([[0.0], cdf.right(edges), [1.0]]))
    actual = np.bincount(np.searchsorted(edges, present, side="left"), minlength=len(edges) + 1) / len(present)
    psi = psi_of_fractions(expected, actual)
    result.statistic, result.p_value, result.effect, result.psi = distance, p_value, distance, psi
    if len(edges):
        pairs = [f"({a:.4g}, {b:.4g}]" for a, b in itertools.pairwise(edges)]
        result.bins = [f"<= {edges[0]:.4g}", *pairs, f"> {edges[-1]:.4g}"]
    else:
        result.bins = ["all"]
    result.baseline_fractions, result.production_fractions = expected.tolist(), actual.tolist()
    if p_value < t.p_value and (distance >= t.ks_statistic or psi >= t.psi):
        result.drift = True
        result.reasons.append(f"KS distance {distance:.3f}, PSI {psi:.3f} (p={p_value:.2g})")
    mean_shift_test(result, baseline, present, t)
    return result


def mean_shift_test(result: FeatureDrift, baseline: FeatureBaseline, present: np.ndarray, t: DriftThresholds) -> None:
    """Standardised mean difference (Welch z-test for significance, Cohen's d for size).

    KS and PSI look at the whole shape and need a large move to cross their floors; a location shift
    of a fifth of a standard deviation is already a real change of the population.
    """
    if baseline.mean is None or not baseline.std:
        return
    mean, std = float(np.mean(present)), float(np.std(present))
    se = math.sqrt(baseline.std**2 / max(baseline.count, 1) + std**2 / len(present))
    shift = (mean - baseline.mean) / baseline.std
    p_value = 0.0 if se == 0 else float(2 * stats.norm.sf(abs(mean - baseline.mean) / se))
    result.mean_shift, result.mean_p_value = shift, p_value
    if p_value < t.p_value and abs(shift) >= t.mean_shift:
        result.drift = True
        result.reasons.append(f"mean moved {shift:+.2f} standard deviations (p={p_value:.2g})")


def categorical_drift(
    spec: FeatureSpec, baseline: FeatureBaseline, values: np.ndarray, t: DriftThresholds
) -> FeatureDrift:
    """Chi-square over known categories; TVD and PSI with an unseen bucket; unseen share."""
    result = FeatureDrift(spec.name, "categorical", "chi2", False, rows=len(values))
    # pandas' hash-based counting: a million strings in tens of milliseconds, where np.unique sorts.
    counted = pd.Series(np.asarray(values, dtype=object), dtype=object).value_counts(dropna=True)
    observed_by = {str(k): int(v) for k, v in counted.items()}
    n_present = sum(observed_by.values())
    null_rate_test(result, baseline, len(values) - n_present, len(values), t)
    if n_present < t.min_rows or not baseline.category_fractions:
        result.test = "none"
        result.reasons.append(f"only {n_present} non-null rows (< {t.min_rows}); not tested")
        return result
    known = list(baseline.category_fractions)
    observed = np.array([observed_by.get(c, 0) for c in known], dtype=np.float64)
    unseen = {c: n for c, n in observed_by.items() if c not in baseline.category_fractions}
    unseen_count = float(sum(unseen.values()))
    expected_frac = np.array([baseline.category_fractions[c] for c in known], dtype=np.float64)
    expected_frac = expected_frac / expected_frac.sum()
    # Categories expected fewer than MIN_EXPECTED_COUNT times in this sample share one bin: chi-square is
    # not valid on tiny expected counts, and with hundreds of rare values (ids, merchants) their sampling
    # noise alone made TVD/PSI cross the thresholds on a fresh sample of the same distribution.
    rare = expected_frac * n_present < MIN_EXPECTED_COUNT
    if rare.sum() > 1:
        known = [c for c, r in zip(known, rare, strict=True) if not r] + [RARE]
        observed = np.concatenate([observed[~rare], [observed[rare].sum()]])
        expected_frac = np.concatenate([expected_frac[~rare], [expected_frac[rare].sum()]])
    n_known = observed.sum()
    support = expected_frac > 0
    if n_known > 0 and support.sum() > 1:
        chi = stats.chisquare(observed[support], expected_frac[support] / expected_frac[support].sum() * n_known)
        statistic, p_value = float(chi.statistic), float(chi.pvalue)
    else:
        statistic, p_value = 0.0, 1.0
    actual = np.concatenate([observed, [unseen_count]]) / n_present
    expected = np.concatenate([expected_frac, [0.0]])
    tvd = float(0.5 * np.abs(actual - expected).sum())
    psi = psi_of_fractions(expected, actual)
    result.statistic, result.p_value, result.effect, result.psi = statistic, p_value, tvd, psi
    result.unseen_share = unseen_count / n_present
    result.unseen_examples = sorted(unseen, key=lambda c: -unseen[c])[:5]
    result.bins = [*known, UNSEEN]
    result.baseline_fractions, result.production_fractions = expected.tolist(), actual.tolist()
    if p_value < t.p_value and (tvd >= t.tvd or psi >= t.psi):
        result.drift = True
        result.reasons.append(f"chi-square {statistic:.1f} (p={p_value:.2g}), TVD {tvd:.3f}, PSI {psi:.3f}")
    if result.unseen_share >= t.unseen_share:
        result.drift = True
        result.reasons.append(f"{result.unseen_share:.1%} unseen categories, e.g. {result.unseen_examples[:3]}")
    return result


def missing_feature(spec: FeatureSpec) -> FeatureDrift:
    kind = "numeric" if spec.is_numeric else "categorical"
    return FeatureDrift(spec.name, kind, "missing", True, reasons=["column is missing from production data"])
