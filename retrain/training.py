"""Fit, convert, measure and seal a candidate: a frame in, a verified ``model.zip`` out.

The default pipeline is imputer + one-hot encoder + ``GradientBoostingClassifier``; scikit-learn 1.9 with
skl2onnx 1.20 converts it, and every package is parity-checked before it is returned, so a conversion
regression fails here rather than in production. A refit clones the champion's fitted pipeline (same
steps and hyperparameters) and fits it on the new data.
"""

from __future__ import annotations

import logging
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np
import pandas as pd

from model_package.archive import ONNX_NAME, REFERENCE_NAME, REQUIREMENTS_NAME, SKOPS_NAME, package_bytes
from model_package.manifest import FeatureSpec, Lineage, Manifest, TrainingData
from model_package.runtime import MISSING_CATEGORY, estimator_frame, model_columns
from retrain.baseline import feature_baselines, numeric_baseline
from retrain.datacheck import DataRequirements, check_training_frame, parse_times, target_values
from retrain.metrics import holdout_metrics
from retrain.readers import frame_sha256
from retrain.reference import reference_csv
from retrain.schema import frame_columns, infer_features, refresh_features
from retrain.verify import PARITY_TOLERANCE, verify_package

LOG = logging.getLogger(__name__)
HOLDOUT_FRACTION = 0.2
REFERENCE_ROWS = 2000
DEFAULT_HYPERPARAMETERS: dict[str, Any] = {
    "n_estimators": 150,
    "max_depth": 3,
    "learning_rate": 0.1,
    "subsample": 1.0,
    "min_samples_leaf": 20,
}
# What a consumer must install to load model.skops / model.onnx exactly as trained.
PINNED_LIBRARIES = ("scikit-learn", "skl2onnx", "onnx", "onnxruntime", "skops", "numpy", "scipy", "pandas")


@dataclass(frozen=True)
class Split:
    """Row positions of the fit and holdout parts, and how they were chosen (recorded in the manifest)."""

    train: np.ndarray
    holdout: np.ndarray
    how: str


@dataclass(frozen=True)
class TrainingResult:
    manifest: Manifest
    data: bytes
    split: Split
    holdout_columns: dict[str, np.ndarray]
    holdout_y: np.ndarray


def split_holdout(frame: pd.DataFrame, y: np.ndarray, time_column: str | None, seed: int = 0) -> Split:
    """Latest 20% of time as holdout when there is a time column (tests the model on the future, as it
    will be used); otherwise a seeded stratified split. Both are deterministic."""
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

    train, holdout = train_test_split(np.arange(n), test_size=HOLDOUT_FRACTION, random_state=seed, stratify=y)
    return Split(np.sort(train), np.sort(holdout), f"stratified random {HOLDOUT_FRACTION:.0%}, seed {seed}")


def default_pipeline(features: Sequence[FeatureSpec], params: Mapping[str, Any], seed: int) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    numeric = [f.name for f in features if f.is_numeric]
    categorical = [f.name for f in features if not f.is_numeric]
    transformers = []
    if numeric:
        transformers.append(("numeric", SimpleImputer(strategy="median"), numeric))
    if categorical:
        # Null categories arrive as MISSING_CATEGORY and become their own column; unseen ones are all zeros.
        transformers.append(("categorical", OneHotEncoder(handle_unknown="ignore"), categorical))
    return Pipeline(
        [
            ("features", ColumnTransformer(transformers, remainder="drop")),
            ("classifier", GradientBoostingClassifier(random_state=seed, **params)),
        ]
    )


def refit_pipeline(champion_estimator: Any, seed: int) -> Any:
    """An unfitted copy of the champion's pipeline with its hyperparameters and a fixed seed."""
    from sklearn.base import clone

    estimator = clone(champion_estimator)
    seeds = {k: seed for k in estimator.get_params() if k.endswith("random_state")}
    return estimator.set_params(**seeds)


def _json_params(estimator: Any) -> dict[str, Any]:
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    simple = (int, float, str, bool, type(None))
    return {k: v for k, v in sorted(final.get_params().items()) if isinstance(v, simple)}


def to_onnx_bytes(estimator: Any, features: Sequence[FeatureSpec]) -> bytes:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    initial_types = [
        (f.name, FloatTensorType([None, 1]) if f.is_numeric else StringTensorType([None, 1])) for f in features
    ]
    # zipmap off: a plain (n, 2) probability tensor, which the runtime reads without a dict per row.
    model = to_onnx(estimator, initial_types=initial_types, options={"zipmap": False})
    return model.SerializeToString()


def _renumber(node: Any, ids: dict[int, int]) -> Any:
    """Replace skops' ``__id__`` values (memory addresses) and ``<id>.npy`` file names by first-seen order."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "__id__" and isinstance(value, int):
                out[key] = ids.setdefault(value, len(ids) + 1)
            elif key == "file" and isinstance(value, str) and value.endswith(".npy") and value[:-4].isdigit():
                out[key] = f"{ids.setdefault(int(value[:-4]), len(ids) + 1)}.npy"
            else:
                out[key] = _renumber(value, ids)
        return out
    if isinstance(node, list):
        return [_renumber(v, ids) for v in node]
    return node


def skops_bytes(estimator: Any) -> bytes:
    """``skops.io.dumps`` made reproducible: object ids renumbered and zip timestamps fixed, so the same fit
    gives the same bytes (the package is parity-checked after this, so a bad rewrite cannot ship)."""
    import io
    import json
    import zipfile

    import skops.io as sio

    source = zipfile.ZipFile(io.BytesIO(sio.dumps(estimator)))
    ids: dict[int, int] = {}
    schema = _renumber(json.loads(source.read("schema.json")), ids)
    members = {"schema.json": json.dumps(schema, sort_keys=True).encode()}
    for info in source.infolist():
        name = info.filename
        if name.endswith(".npy") and name[:-4].isdigit():
            members[f"{ids[int(name[:-4])]}.npy"] = source.read(info)
        elif name != "schema.json":
            members[name] = source.read(info)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as target:
        for name in sorted(members):
            fixed = zipfile.ZipInfo(name, date_time=(2000, 1, 1, 0, 0, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(fixed, members[name])
    return buffer.getvalue()


def library_versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PINNED_LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def requirements_txt(libraries: Mapping[str, str]) -> bytes:
    lines = [f"{name}=={v}" for name, v in libraries.items() if name != "python"]
    return ("# Libraries this package was trained and converted with.\n" + "\n".join(lines) + "\n").encode()


def fit_candidate(
    frame: pd.DataFrame,
    target: str = "churn",
    *,
    name: str = "churn",
    version: int = 1,
    data_uri: str = "memory://",
    data_sha256: str | None = None,
    git_sha: str = "unknown",
    time_column: str | None = "acquisition_date",
    seed: int = 0,
    features: Sequence[FeatureSpec] | None = None,
    categorical: Sequence[str] | None = None,
    numeric: Sequence[str] | None = None,
    champion_estimator: Any = None,
    hyperparameters: Mapping[str, Any] | None = None,
    lineage: Mapping[str, Any] | None = None,
    min_rows: int = 50,
    created_at: datetime | None = None,
) -> TrainingResult:
    """Validate, split, fit, convert, measure and seal; the returned bytes already passed ``verify``.

    ``features`` (the champion's) fixes the schema; otherwise it is inferred (``categorical``/``numeric``
    force a column's kind). ``champion_estimator`` makes this a refit of that pipeline.
    """
    if time_column and time_column not in frame.columns:
        time_column = None
    check_training_frame(
        frame,
        DataRequirements(target=target, min_rows=min_rows, time_column=time_column, features=features or ()),
    )
    y = target_values(frame, target)
    if features:
        specs = refresh_features(features, frame)
    else:
        exclude = [time_column] if time_column else []
        specs = infer_features(frame, target, exclude=exclude, categorical=categorical, numeric=numeric)
    split = split_holdout(frame, y, time_column, seed)
    columns = model_columns(specs, frame_columns(frame, specs))
    x = estimator_frame(columns)

    if champion_estimator is not None:
        estimator, pipeline_kind = refit_pipeline(champion_estimator, seed), "refit"
    else:
        params = {**DEFAULT_HYPERPARAMETERS, **(hyperparameters or {})}
        estimator, pipeline_kind = default_pipeline(specs, params, seed), "default"
    LOG.info(
        "fitting %s pipeline on %d rows (holdout %d: %s)",
        pipeline_kind,
        len(split.train),
        len(split.holdout),
        split.how,
    )
    estimator.fit(x.iloc[split.train], y[split.train])

    holdout_scores = estimator.predict_proba(x.iloc[split.holdout])[:, 1]
    metrics = holdout_metrics(y[split.holdout], holdout_scores)
    train_columns = {k: v[split.train] for k, v in columns.items()}
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(split.train, size=min(REFERENCE_ROWS, len(split.train)), replace=False))

    files = {
        ONNX_NAME: to_onnx_bytes(estimator, specs),
        SKOPS_NAME: skops_bytes(estimator),
        REQUIREMENTS_NAME: requirements_txt(libraries := library_versions()),
        REFERENCE_NAME: reference_csv(specs, target, {k: v[sample] for k, v in columns.items()}, y[sample]),
    }
    times = parse_times(frame[time_column], time_column) if time_column else None
    manifest = Manifest(
        name=name,
        version=version,
        created_at=created_at or datetime.now(UTC),
        git_sha=git_sha,
        target=target,
        training_data=TrainingData(
            uri=data_uri,
            sha256=data_sha256 or frame_sha256(frame),
            rows=len(frame),
            time_column=time_column,
            time_min=times.min().to_pydatetime() if times is not None else None,
            time_max=times.max().to_pydatetime() if times is not None else None,
        ),
        features=specs,
        hyperparameters={
            "pipeline": pipeline_kind,
            "estimator": type(estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator).__name__,
            "params": _json_params(estimator),
            "seed": seed,
            "holdout": split.how,
        },
        lineage=Lineage(**lineage) if lineage else None,
        metrics=metrics,
        baseline=feature_baselines(specs, train_columns, MISSING_CATEGORY),
        prediction_baseline=numeric_baseline("probability", holdout_scores),
        libraries=libraries,
        files={},
    )
    sealed, data = package_bytes(manifest, files)
    result = verify_package(data, PARITY_TOLERANCE)  # raises ParityError/SchemaError: never hand out a bad package
    LOG.info("candidate sealed: %s", result.summary())
    holdout_columns = {k: v[split.holdout] for k, v in columns.items()}
    return TrainingResult(sealed, data, split, holdout_columns, y[split.holdout])


def train_package(
    frame: pd.DataFrame,
    target: str = "churn",
    *,
    name: str = "churn",
    version: int = 1,
    data_uri: str = "memory://",
    git_sha: str = "unknown",
    time_column: str | None = "acquisition_date",
    seed: int = 0,
    **options: Any,
) -> tuple[Manifest, bytes]:
    """The shared contract: the sealed manifest and the ``model.zip`` bytes (see :func:`fit_candidate`)."""
    result = fit_candidate(
        frame,
        target,
        name=name,
        version=version,
        data_uri=data_uri,
        git_sha=git_sha,
        time_column=time_column,
        seed=seed,
        **options,
    )
    return result.manifest, result.data
