"""From a pandas frame (or Arrow batch) to the columns the validator and predictor take.

CSV readers guess types: one stray word turns a numeric column into strings and a code like "12"
in a categorical column becomes an integer. Converting here, per manifest feature, keeps each bad
cell a bad cell (reported as ``data_type`` by the validator) instead of poisoning the whole column.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from model_package.manifest import FeatureSpec, Manifest


def csv_dtypes(manifest: Manifest) -> dict[str, Any]:
    """Read categorical features as text so "007" stays "007"; numbers are coerced per cell later."""
    return {spec.name: "object" for spec in manifest.features if not spec.is_numeric}


def numeric_cells(series: pd.Series) -> np.ndarray:
    """float64 if every non-null cell is a number, else an object array keeping the bad cells as they were."""
    cells: np.ndarray
    if pd.api.types.is_bool_dtype(series.dtype):
        cells = series.to_numpy(dtype=object, na_value=None)
        return cells
    if pd.api.types.is_numeric_dtype(series.dtype):
        cells = series.to_numpy(dtype=np.float64, na_value=np.nan)
        return cells
    coerced = pd.to_numeric(series, errors="coerce")
    bad = coerced.isna().to_numpy() & series.notna().to_numpy()
    if not bad.any():
        cells = coerced.to_numpy(dtype=np.float64, na_value=np.nan)
        return cells
    out = np.array(coerced.to_numpy(dtype=object, na_value=None), dtype=object)  # writable copy
    raw = series.to_numpy(dtype=object, na_value=None)
    out[bad] = raw[bad]
    return out


def string_cells(series: pd.Series) -> np.ndarray:
    """object array: str kept, null -> None, numbers left as numbers (so they are reported, not cast)."""
    cells: np.ndarray = series.to_numpy(dtype=object, na_value=None)
    return cells


def feature_columns(frame: pd.DataFrame, features: Iterable[FeatureSpec]) -> dict[str, np.ndarray]:
    """One array per manifest feature present in ``frame`` (absent ones are left for the validator)."""
    out: dict[str, np.ndarray] = {}
    for spec in features:
        if spec.name in frame.columns:
            series = frame[spec.name]
            out[spec.name] = numeric_cells(series) if spec.is_numeric else string_cells(series)
    return out
