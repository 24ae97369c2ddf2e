"""Example factories for ``python -m retrain train --estimator retrain.examples:NAME`` (docs/retrain.md).

Each returns an *unfitted* estimator. A bare estimator gets the standard preprocessing in front
(median-impute numbers, one-hot categories, dense); a ``Pipeline`` takes the feature frame as is. Your
own module works the same way (``--estimator mypkg.models:make``) as long as it is importable where the
package is trained and, for a skops package, where it is loaded.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def logistic_regression() -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=2000)


def hist_gradient_boosting() -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(max_iter=100)


def hist_gradient_boosting_regressor() -> Any:
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(max_iter=100)


def lightgbm() -> Any:
    from lightgbm import LGBMClassifier

    return LGBMClassifier(n_estimators=100, verbose=-1)


def lightgbm_regressor() -> Any:
    from lightgbm import LGBMRegressor

    return LGBMRegressor(n_estimators=100, verbose=-1)


def xgboost() -> Any:
    from xgboost import XGBClassifier

    return XGBClassifier(n_estimators=100, max_depth=4)


def xgboost_regressor() -> Any:
    from xgboost import XGBRegressor

    return XGBRegressor(n_estimators=100, max_depth=4)


try:
    from sklearn.base import BaseEstimator, TransformerMixin
except ImportError:  # the serving image has no scikit-learn; these examples are for training
    BaseEstimator = TransformerMixin = object


class NumericRatios(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """A custom transformer (no ONNX converter exists for it): the numeric columns with medians imputed,
    plus ``numerator / (1 + denominator)``. Categorical columns are dropped."""

    def __init__(self, numerator: str = "monthly_spend", denominator: str = "tenure_months") -> None:
        self.numerator = numerator
        self.denominator = denominator

    def fit(self, x: Any, y: Any = None) -> NumericRatios:
        self.columns_ = [c for c in x.columns if x[c].dtype != object]
        self.medians_ = np.array([np.nanmedian(x[c].to_numpy(dtype=np.float64)) for c in self.columns_])
        return self

    def transform(self, x: Any) -> np.ndarray:
        values = x[self.columns_].to_numpy(dtype=np.float64)
        values = np.where(np.isnan(values), self.medians_, values)
        ratio = np.zeros(len(values))
        if self.numerator in self.columns_ and self.denominator in self.columns_:
            num = values[:, self.columns_.index(self.numerator)]
            ratio = num / (1.0 + np.abs(values[:, self.columns_.index(self.denominator)]))
        return np.column_stack([values, ratio])


def ratio_pipeline() -> Any:
    """A Pipeline with a custom transformer: packaged with skops (no ONNX converter for ``NumericRatios``)."""
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.pipeline import Pipeline

    return Pipeline([("ratios", NumericRatios()), ("model", GradientBoostingClassifier(n_estimators=50))])
