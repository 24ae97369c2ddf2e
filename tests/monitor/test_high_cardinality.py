"""Issue #14 item 6: a categorical with hundreds to thousands of values in the adversarial check.

Before the fix, HistGradientBoosting refused a categorical with more than 255 values (a raw
scikit-learn message) and the unseen-category code made a fresh sample of the same distribution look
drifted. The test builds a manifest with a 1,000-value categorical on top of the trained churn package.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from model_package.manifest import FeatureSpec
from monitor.adversarial import AdversarialClassifier

VALUES = 1000


def _manifest_with_merchant(manifest):
    categories = tuple(f"m{i:04d}" for i in range(VALUES))
    merchant = FeatureSpec(name="merchant", dtype="string", nullable=False, categories=categories)
    return manifest.model_copy(update={"features": (*manifest.features, merchant)})


def _with_merchant(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    # Zipf-like popularity: a few merchants are common, most are rare (the shape of real id-like columns).
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, VALUES + 1)
    picks = rng.choice(VALUES, size=len(frame), p=weights / weights.sum())
    return frame.assign(merchant=[f"m{i:04d}" for i in picks])


def test_thousand_value_categorical_runs_and_finds_no_drift_on_a_fresh_sample(trained) -> None:
    from tests.monitor.conftest import fresh

    manifest = _manifest_with_merchant(trained.manifest)
    reference = _with_merchant(fresh(3000, seed=11), seed=1)
    production = _with_merchant(fresh(3000, seed=12), seed=2)
    result = AdversarialClassifier(max_rows=3000).run(reference, production, manifest)
    assert result.auc is not None
    assert not result.drift, result.to_dict()


def test_thousand_value_categorical_still_flags_a_shift_in_that_column(trained) -> None:
    from tests.monitor.conftest import fresh

    manifest = _manifest_with_merchant(trained.manifest)
    reference = _with_merchant(fresh(3000, seed=11), seed=1)
    production = fresh(3000, seed=12)
    # Production traffic concentrates on merchants that were rare in the reference.
    rng = np.random.default_rng(3)
    production = production.assign(merchant=[f"m{i:04d}" for i in rng.integers(500, 520, len(production))])
    result = AdversarialClassifier(max_rows=3000).run(reference, production, manifest)
    assert result.drift, result.to_dict()
    assert result.top_features and result.top_features[0]["feature"] == "merchant"


def _baseline(frame: pd.DataFrame):
    from model_package.manifest import FeatureBaseline

    counts = frame["merchant"].value_counts(normalize=True)
    return FeatureBaseline(
        name="merchant",
        kind="categorical",
        count=len(frame),
        null_rate=0.0,
        category_fractions={str(k): float(v) for k, v in counts.items()},
    )


def test_univariate_test_of_a_thousand_value_categorical_is_quiet_on_a_fresh_sample(trained) -> None:
    from monitor.thresholds import DriftThresholds
    from monitor.univariate import categorical_drift
    from tests.monitor.conftest import fresh

    manifest = _manifest_with_merchant(trained.manifest)
    spec = manifest.features[-1]
    baseline = _baseline(_with_merchant(fresh(20000, seed=11), seed=1))
    production = _with_merchant(fresh(2000, seed=12), seed=2)["merchant"].to_numpy(dtype=object)
    result = categorical_drift(spec, baseline, production, DriftThresholds())
    assert not result.drift, result.reasons
    assert result.test == "chi2"


def test_univariate_test_of_a_thousand_value_categorical_flags_a_real_shift(trained) -> None:
    from monitor.thresholds import DriftThresholds
    from monitor.univariate import categorical_drift
    from tests.monitor.conftest import fresh

    manifest = _manifest_with_merchant(trained.manifest)
    spec = manifest.features[-1]
    baseline = _baseline(_with_merchant(fresh(20000, seed=11), seed=1))
    rng = np.random.default_rng(3)
    production = np.array([f"m{i:04d}" for i in rng.integers(0, 20, 2000)], dtype=object)
    result = categorical_drift(spec, baseline, production, DriftThresholds())
    assert result.drift, result.to_dict()
