"""The holdout split every job agrees on: retrain measures a candidate on it, the Evaluate action re-scores it.

One definition, so the pipeline's ``labelled.gate`` check judges the candidate on exactly the rows retrain
held out (the latest 20 % in time when there is a time column).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from jobs_common.errors import DataError

HOLDOUT_FRACTION = 0.2


def parse_times(series: pd.Series, name: str) -> pd.Series:
    """Dates as UTC; a value that is not a date stops the job naming examples (coercing it to NaT would
    silently move rows between the fit and holdout parts)."""
    parsed = pd.to_datetime(series, errors="coerce", utc=True)
    bad = series.notna() & parsed.isna()
    if bad.any():
        examples = [str(v) for v in series[bad].unique()[:3]]
        raise DataError(f"time column {name!r} has values that are not dates, such as {examples}")
    return parsed


@dataclass(frozen=True)
class Split:
    """Row positions of the fit and holdout parts, and how they were chosen (recorded in the manifest)."""

    train: np.ndarray
    holdout: np.ndarray
    how: str


def split_holdout(
    frame: pd.DataFrame, y: np.ndarray, time_column: str | None, seed: int = 0, *, stratify: bool = True
) -> Split:
    """Latest 20% of time as holdout when there is a time column (tests the model on the future, as it
    will be used); otherwise a seeded random split, stratified for classification. Both are deterministic."""
    n = len(frame)
    if time_column and time_column in frame.columns:
        times = parse_times(frame[time_column], time_column).to_numpy()
        order = np.argsort(times, kind="stable")
        cutoff = times[order[int(n * (1 - HOLDOUT_FRACTION))]]
        holdout_mask = times >= cutoff
        share = holdout_mask.mean()
        if 0.05 <= share <= 0.5:
            how = f"time: {time_column} >= {pd.Timestamp(cutoff).isoformat()}"
        else:  # one date dominates: take the last 20% of rows in time order instead
            holdout_mask = np.zeros(n, dtype=bool)
            holdout_mask[order[int(n * (1 - HOLDOUT_FRACTION)) :]] = True
            how = f"time-ordered rows: last {HOLDOUT_FRACTION:.0%} by {time_column}"
        return Split(np.flatnonzero(~holdout_mask), np.flatnonzero(holdout_mask), how)
    from sklearn.model_selection import train_test_split

    if stratify:
        _, counts = np.unique(y, return_counts=True)
        stratify = bool(counts.min() >= 2)
    train, holdout = train_test_split(
        np.arange(n), test_size=HOLDOUT_FRACTION, random_state=seed, stratify=y if stratify else None
    )
    kind = "stratified random" if stratify else "random"
    return Split(np.sort(train), np.sort(holdout), f"{kind} {HOLDOUT_FRACTION:.0%}, seed {seed}")
