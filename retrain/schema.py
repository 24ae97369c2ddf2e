"""The feature schema: inferred from a frame (first model) or taken from the champion (refit).

Also the one conversion from a pandas frame to the column contract of ``model_package.runtime``, so
training, the parity sample and the holdout scoring all feed the models the same representation.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from model_package.manifest import FeatureDtype, FeatureSpec
from model_package.runtime import model_columns
from retrain.errors import DataError

LOG = logging.getLogger(__name__)
# More distinct values than this in a categorical column is probably an identifier, not a category.
MAX_CATEGORIES = 200


def _is_integral(series: pd.Series) -> bool:
    present = series.dropna().to_numpy(dtype=np.float64)
    return bool(len(present)) and bool(np.all(np.isfinite(present) & (present == np.round(present))))


def _is_temporal(series: pd.Series) -> bool:
    if pd.api.types.is_datetime64_any_dtype(series):
        return True
    sample = series.dropna().head(20)
    return len(sample) > 0 and all(
        isinstance(v, pd.Timestamp | np.datetime64) or type(v).__name__ == "date" for v in sample
    )


def infer_dtype(series: pd.Series) -> FeatureDtype | None:
    """``None`` for columns that are not features (dates)."""
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_integer_dtype(series):
        return "int"
    if pd.api.types.is_float_dtype(series):
        return "int" if _is_integral(series) else "float"
    if _is_temporal(series):
        return None
    return "string"


def string_values(series: pd.Series) -> np.ndarray:
    """object array of str, ``None`` for null; integral floats (ids read with NaN present) print as ints."""
    numeric = pd.api.types.is_float_dtype(series) and _is_integral(series)
    out = np.empty(len(series), dtype=object)
    for i, value in enumerate(series.to_numpy(dtype=object)):
        if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
            out[i] = None
        elif numeric:
            out[i] = str(int(value))
        else:
            out[i] = str(value)
    return out


def numeric_values(series: pd.Series, name: str) -> np.ndarray:
    converted = pd.to_numeric(series, errors="coerce")
    bad = series.notna() & converted.isna()
    if bad.any():
        examples = [str(v) for v in series[bad].unique()[:3]]
        raise DataError(f"column {name!r} must be numeric; found non-numeric values such as {examples}")
    return converted.to_numpy(dtype=np.float64, na_value=np.nan)


def frame_columns(frame: pd.DataFrame, features: Sequence[FeatureSpec]) -> dict[str, np.ndarray]:
    """The runtime column contract for ``features``: float64 with NaN, or object str with None."""
    missing = [f.name for f in features if f.name not in frame.columns]
    if missing:
        raise DataError(f"the data has no column(s) {missing}; the model needs {[f.name for f in features]}")
    return {
        f.name: numeric_values(frame[f.name], f.name) if f.is_numeric else string_values(frame[f.name])
        for f in features
    }


def describe(name: str, dtype: FeatureDtype, series: pd.Series) -> FeatureSpec:
    """A spec for ``name`` with its categories/range/nullability measured on ``series``."""
    nullable = bool(series.isna().any())
    if dtype == "string":
        values = [v for v in string_values(series) if v is not None]
        categories = tuple(sorted(set(values)))
        if len(categories) > MAX_CATEGORIES:
            LOG.warning("column %s has %d categories; is it an identifier?", name, len(categories))
        return FeatureSpec(name=name, dtype=dtype, nullable=nullable, categories=categories)
    values = numeric_values(series, name)
    present = values[~np.isnan(values)]
    if len(present) == 0:
        raise DataError(f"column {name!r} has no non-null values; it cannot be a feature")
    return FeatureSpec(
        name=name, dtype=dtype, nullable=nullable, minimum=float(present.min()), maximum=float(present.max())
    )


def infer_features(
    frame: pd.DataFrame,
    target: str,
    *,
    exclude: Iterable[str] = (),
    categorical: Sequence[str] | None = None,
    numeric: Sequence[str] | None = None,
) -> tuple[FeatureSpec, ...]:
    """Every column but the target and ``exclude`` becomes a feature; flags force a column's kind.

    Date columns are skipped (a model on raw dates does not generalise forward in time).
    """
    forced: dict[str, FeatureDtype | None] = {}
    for name in categorical or ():
        forced[name] = "string"
    for name in numeric or ():
        if name in forced:
            raise DataError(f"column {name!r} is listed as both categorical and numeric")
        forced[name] = "int" if _is_integral(pd.to_numeric(frame[name], errors="coerce")) else "float"
    unknown = sorted(set(forced) - set(frame.columns))
    if unknown:
        raise DataError(f"columns {unknown} given as features are not in the data; it has {list(frame.columns)}")
    skip = {target, *exclude}
    features = []
    for name in frame.columns:
        if name in skip:
            continue
        dtype = forced[name] if name in forced else infer_dtype(frame[name])
        if dtype is None:
            LOG.info("column %s looks like a date; not used as a feature", name)
            continue
        features.append(describe(str(name), dtype, frame[name]))
    if not features:
        raise DataError(f"no feature columns: the data has only {list(frame.columns)}")
    return tuple(features)


def refresh_features(specs: Sequence[FeatureSpec], frame: pd.DataFrame) -> tuple[FeatureSpec, ...]:
    """The champion's features (names and dtypes kept) re-measured on new data, for a refit."""
    frame_columns(frame, specs)  # raises DataError naming any missing/mistyped column
    return tuple(describe(s.name, s.dtype, frame[s.name]) for s in specs)


__all__ = ["describe", "frame_columns", "infer_features", "model_columns", "refresh_features"]
