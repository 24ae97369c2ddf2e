"""The feature schema: inferred from a frame (first model) or taken from the champion (refit).

Also the one conversion from a pandas frame to the column contract of ``model_package.runtime``, so
training, the parity sample and the holdout scoring all feed the models the same representation.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from jobs_common.errors import DataError
from model_package.manifest import FeatureDtype, FeatureSpec
from model_package.runtime import model_columns

LOG = logging.getLogger(__name__)
# More distinct values than this in a categorical column is probably an identifier, not a category.
MAX_CATEGORIES = 200
# A feature name becomes an ONNX graph input, a manifest feature and a JSON field of every request.
# skl2onnx rewrites names outside this set (``a.b`` -> ``a_b``), so the package would fail its own
# schema check after the whole fit; refusing them before the fit is the one consistent rule for
# train and serve (sanitising would make the request field differ from the training column).
FEATURE_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
FEATURE_NAME_RULE = "a letter or '_' first, then letters, digits or '_' (at most 128; no '.', space, '-' or '/')"
# An object column whose non-null cells are at least this share numbers is a numeric column with a few
# bad cells (a typo, a unit, a thousands separator), not a category: reported instead of silently
# becoming categorical.
MOSTLY_NUMERIC_SHARE = 0.9


def duplicate_header_problems(columns: Iterable[object]) -> list[str]:
    """Names that occur more than once (Parquet and SQL results keep duplicates; CSV is handled below)."""
    counts: dict[str, int] = {}
    for column in columns:
        counts[str(column)] = counts.get(str(column), 0) + 1
    return [
        f"column {name!r} appears more than once in the header ({n} times); every column needs its own name"
        for name, n in counts.items()
        if n > 1
    ]


def column_name_problems(columns: Sequence[object], skip: Iterable[str] = ()) -> list[str]:
    """Every feature-candidate column whose name the package cannot carry, and every duplicate header.

    pandas renames a repeated CSV header ``x`` to ``x.1``; that is reported as the duplicate it is.
    """
    names = [str(c) for c in columns]
    skipped = set(skip)
    problems = duplicate_header_problems(names)
    seen = set(names)
    for name in names:
        if name in skipped:
            continue
        base, _, suffix = name.rpartition(".")
        if base in seen and suffix.isdigit():
            problems.append(
                f"column {base!r} appears more than once in the header (the copy was read as {name!r}); "
                "every column needs its own name"
            )
        elif not FEATURE_NAME_PATTERN.fullmatch(name):
            problems.append(f"column name {name!r} is not allowed: feature names must be {FEATURE_NAME_RULE}")
    return problems


def mostly_numeric_problem(series: pd.Series, name: str) -> str | None:
    """A text column that is numbers except for a few cells: name it, count the cells, show examples."""
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series) or _is_temporal(series):
        return None
    present = series.dropna()
    if present.empty:
        return None
    converted = pd.to_numeric(present, errors="coerce")
    bad = converted.isna()
    share = 1.0 - float(bad.mean())
    if not bad.any() or share < MOSTLY_NUMERIC_SHARE:
        return None
    examples = [str(v) for v in present[bad].unique()[:3]]
    rows = [int(i) for i in present.index[bad][:3]]
    return (
        f"column {name!r} is {share:.1%} numbers but {int(bad.sum())} cell(s) are not, such as {examples} "
        f"(0-based rows {rows}); fix those cells (empty means missing), or declare the column categorical "
        "(--categorical) if it is really text"
    )


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
    """float64 with NaN for missing; non-numbers and infinities are a :class:`DataError` naming the column.

    ``inf``/``-inf`` (pandas reads the text ``inf`` as a number) are refused rather than treated as
    missing: an infinity is almost always an upstream division by zero, and imputing it would hide that.
    """
    converted = pd.to_numeric(series, errors="coerce")
    bad = series.notna() & converted.isna()
    if bad.any():
        examples = [str(v) for v in series[bad].unique()[:3]]
        raise DataError(f"column {name!r} must be numeric; found non-numeric values such as {examples}")
    values: np.ndarray = converted.to_numpy(dtype=np.float64, na_value=np.nan)
    infinite = np.isinf(values)
    if infinite.any():
        rows = [int(i) for i in np.flatnonzero(infinite)[:3]]
        raise DataError(
            f"column {name!r} has {int(infinite.sum())} infinite value(s) (inf/-inf) at 0-based rows {rows}; "
            "replace them with a finite number or leave the cell empty (missing)"
        )
    return values


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
        texts = [v for v in string_values(series) if v is not None]
        categories = tuple(sorted(set(texts)))
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


def _measure(
    frame: pd.DataFrame, kinds: dict[str, FeatureDtype], forced: set[str], problems: list[str]
) -> list[FeatureSpec]:
    """Describe every feature; a mostly-numeric text column or a bad cell adds to ``problems``, then all
    problems are raised together (one failed run names every bad column)."""
    features = []
    for name, dtype in kinds.items():
        if name not in forced and (problem := mostly_numeric_problem(frame[name], name)):
            problems.append(problem)
            continue
        try:
            features.append(describe(name, dtype, frame[name]))
        except DataError as exc:
            problems.append(str(exc))
    if problems:
        raise DataError("the training data is not usable:\n  - " + "\n  - ".join(dict.fromkeys(problems)))
    return features


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
    skip = {str(target), *map(str, exclude)}
    if duplicated := duplicate_header_problems(frame.columns):
        raise DataError("the training data is not usable:\n  - " + "\n  - ".join(duplicated))
    kinds = {
        str(name): forced[name] if name in forced else infer_dtype(frame[name])
        for name in frame.columns
        if str(name) not in skip
    }
    dates = {name for name, kind in kinds.items() if kind is None}
    for name in sorted(dates):
        LOG.info("column %s looks like a date; not used as a feature", name)
    # Names are checked before anything else is measured, so a bad header never reaches the fit.
    problems = column_name_problems(list(frame.columns), skip | dates)
    features = _measure(frame, {k: v for k, v in kinds.items() if v is not None}, set(forced), problems)
    if not features:
        raise DataError(f"no feature columns: the data has only {list(frame.columns)}")
    return tuple(features)


def refresh_features(specs: Sequence[FeatureSpec], frame: pd.DataFrame) -> tuple[FeatureSpec, ...]:
    """The champion's features (names and dtypes kept) re-measured on new data, for a refit."""
    frame_columns(frame, specs)  # raises DataError naming any missing/mistyped column
    return tuple(describe(s.name, s.dtype, frame[s.name]) for s in specs)


__all__ = ["describe", "frame_columns", "infer_features", "model_columns", "refresh_features"]
