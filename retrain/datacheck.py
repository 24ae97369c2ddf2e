"""Checks on training data before anything is fitted: bad data stops the job with every problem named."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from jobs_common.errors import DataError
from jobs_common.holdout import parse_times
from model_package.manifest import FeatureSpec, TaskSpec
from retrain.schema import duplicate_header_problems, numeric_values

# A feature mostly missing is an upstream failure, not a property of the customers.
MAX_NULL_RATE = 0.5
MIN_HISTORY = pd.Timedelta(days=1)


@dataclass(frozen=True)
class DataRequirements:
    target: str
    min_rows: int = 500
    time_column: str | None = None
    require_time: bool = False  # the Batch job insists on history; local `train` does not
    features: Sequence[FeatureSpec] = ()  # the champion's features, when refitting
    task: TaskSpec | None = None  # known task (the champion's): its labels are the only ones allowed
    task_type: str | None = None  # --task / TASK override on a first model
    positive: object | None = None
    drop_null_target: bool = False
    ignore: Sequence[str] = ()  # id / excluded columns: not features, so their null rate does not matter


def _target_problems(frame: pd.DataFrame, req: DataRequirements) -> list[str]:
    from retrain.tasks import prepare_target

    if not len(frame):
        return []
    try:
        prepare_target(
            frame,
            req.target,
            task=req.task_type,
            positive=req.positive,
            drop_null_target=req.drop_null_target,
            known=req.task,
        )
    except DataError as exc:
        return [str(exc)]
    return []


def _feature_problems(frame: pd.DataFrame, req: DataRequirements) -> list[str]:
    problems = []
    missing = [f.name for f in req.features if f.name not in frame.columns]
    if missing:
        problems.append(f"features the model needs are missing: {missing}")
    for spec in req.features:
        if spec.is_numeric and spec.name in frame.columns:
            try:
                numeric_values(frame[spec.name], spec.name)
            except DataError as exc:
                problems.append(str(exc))
    for name in frame.columns:
        rate = float(frame[name].isna().mean()) if len(frame) else 0.0
        if name != req.target and name not in req.ignore and rate > MAX_NULL_RATE:
            problems.append(f"column {name!r} is {rate:.0%} null; at most {MAX_NULL_RATE:.0%} is allowed")
    return problems


def _time_problems(frame: pd.DataFrame, req: DataRequirements) -> list[str]:
    if not req.time_column or req.time_column not in frame.columns:
        if req.require_time:
            return [f"time column {req.time_column!r} is missing; it is needed for the holdout and history checks"]
        return []
    try:
        times = parse_times(frame[req.time_column], req.time_column)
    except DataError as exc:
        return [str(exc)]
    if times.isna().any():
        return [f"time column {req.time_column!r} has {int(times.isna().sum())} null values"]
    if len(times) and times.max() - times.min() < MIN_HISTORY:
        span = times.max() - times.min()
        return [f"time column {req.time_column!r} spans {span}; at least one day of history is required"]
    return []


def check_training_frame(frame: pd.DataFrame, req: DataRequirements) -> None:
    """Raise one :class:`DataError` listing every problem, so one failed run tells the whole story."""
    if duplicated := duplicate_header_problems(frame.columns):  # every other check would read two as one
        raise DataError("the training data is not usable:\n  - " + "\n  - ".join(duplicated))
    problems: list[str] = []
    if len(frame) < req.min_rows:
        problems.append(f"{len(frame)} rows; at least {req.min_rows} are required (MIN_ROWS)")
    problems += _target_problems(frame, req) + _feature_problems(frame, req) + _time_problems(frame, req)
    if problems:
        raise DataError("the training data is not usable:\n  - " + "\n  - ".join(problems))
