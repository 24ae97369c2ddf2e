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

from jobs_common.errors import DataError, UsageError
from jobs_common.holdout import Split, parse_times, split_holdout
from jobs_common.metrics import task_metrics
from jobs_common.readers import frame_sha256
from jobs_common.reference import reference_csv
from model_package.archive import ONNX_NAME, REFERENCE_NAME, REQUIREMENTS_NAME, SKOPS_NAME, package_bytes
from model_package.manifest import (
    ColumnRoles,
    FeatureBaseline,
    FeatureSpec,
    Lineage,
    Manifest,
    RuntimeSpec,
    TaskSpec,
    TrainingData,
    check_name,
)
from model_package.runtime import MISSING_CATEGORY, Predictions, estimator_frame, model_columns, to_predictions
from retrain.baseline import categorical_baseline, feature_baselines, numeric_baseline
from retrain.convert import NoConverterError, check_format, converter_name, final_estimator, skops_file, to_onnx_bytes
from retrain.datacheck import DataRequirements, check_training_frame
from retrain.schema import frame_columns, infer_features, refresh_features
from retrain.tasks import prepare_target
from retrain.verify import PARITY_TOLERANCE, verify_package

LOG = logging.getLogger(__name__)
REFERENCE_ROWS = 2000
DEFAULT_HYPERPARAMETERS: dict[str, Any] = {
    "n_estimators": 150,
    "max_depth": 3,
    "learning_rate": 0.1,
    "subsample": 1.0,
    "min_samples_leaf": 20,
}
# What a consumer must install to load model.skops / model.onnx exactly as trained.
PINNED_LIBRARIES = (
    "scikit-learn",
    "skl2onnx",
    "onnx",
    "onnxruntime",
    "skops",
    "numpy",
    "scipy",
    "pandas",
    "lightgbm",
    "onnxmltools",
    "xgboost-cpu",
    "xgboost",
)


@dataclass(frozen=True)
class TrainingResult:
    manifest: Manifest
    data: bytes
    split: Split
    holdout_columns: dict[str, np.ndarray]
    holdout_y: np.ndarray  # class index (classification) or value (regression)
    dropped_null_target: int = 0


def preprocessor(features: Sequence[FeatureSpec], *, dense: bool = False) -> Any:
    """Median-impute numeric columns, one-hot categorical ones (unseen categories are all zeros).

    ``dense``: a dense matrix for estimators that treat a sparse zero as missing (XGBoost) or want arrays.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder

    numeric = [f.name for f in features if f.is_numeric]
    categorical = [f.name for f in features if not f.is_numeric]
    transformers = []
    if numeric:
        transformers.append(("numeric", SimpleImputer(strategy="median"), numeric))
    if categorical:
        # Null categories arrive as MISSING_CATEGORY and become their own column; unseen ones are all zeros.
        encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=not dense)
        transformers.append(("categorical", encoder, categorical))
    return ColumnTransformer(transformers, remainder="drop")


def default_pipeline(
    features: Sequence[FeatureSpec], params: Mapping[str, Any], seed: int, task: TaskSpec | None = None
) -> Any:
    """Gradient boosting (classifier, or regressor for regression) behind :func:`preprocessor`."""
    from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor
    from sklearn.pipeline import Pipeline

    model = GradientBoostingRegressor if task is not None and task.type == "regression" else GradientBoostingClassifier
    step = "regressor" if model is GradientBoostingRegressor else "classifier"
    return Pipeline([("features", preprocessor(features)), (step, model(random_state=seed, **params))])


def byo_pipeline(estimator: Any, features: Sequence[FeatureSpec], params: Mapping[str, Any], seed: int) -> Any:
    """A brought estimator, unfitted: a ``Pipeline`` is used as is (it takes the feature frame); a bare
    estimator gets :func:`preprocessor` (dense) in front. ``params`` go through ``set_params``."""
    from sklearn.base import clone
    from sklearn.pipeline import Pipeline

    estimator = clone(estimator)
    if params:
        known = estimator.get_params(deep=True)
        unknown = sorted(set(params) - set(known))
        if unknown:
            # Some estimators (LightGBM) accept any keyword and ignore it at fit: refuse a typo here.
            raise UsageError(
                f"--params: {unknown} are not parameters of {type(estimator).__name__}; allowed: {sorted(known)[:40]}"
            )
        estimator.set_params(**params)
    seeds = {k: seed for k, v in estimator.get_params().items() if k.endswith("random_state") and v is None}
    estimator.set_params(**seeds)
    if isinstance(estimator, Pipeline):
        return estimator
    return Pipeline([("features", preprocessor(features, dense=True)), ("model", estimator)])


def refit_pipeline(champion_estimator: Any, seed: int) -> Any:
    """An unfitted copy of the champion's pipeline with its hyperparameters and a fixed seed."""
    from sklearn.base import clone

    estimator = clone(champion_estimator)
    seeds = {k: seed for k in estimator.get_params() if k.endswith("random_state")}
    return estimator.set_params(**seeds)


def _json_params(estimator: Any) -> dict[str, Any]:
    final = final_estimator(estimator)
    simple = (int, float, str, bool, type(None))
    return {
        k: v
        for k, v in sorted(final.get_params().items())
        if isinstance(v, simple) and not (isinstance(v, float) and not np.isfinite(v))
    }


def _renumber(node: Any, ids: dict[int, int]) -> Any:
    """Replace skops' ``__id__`` values (memory addresses) and ``<id>.npy`` file names by first-seen order."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
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


@dataclass(frozen=True)
class Roles:
    """Columns that are not features, checked against the frame before anything is measured."""

    id_columns: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()
    time_column: str | None = None

    def non_features(self) -> list[str]:
        return [*self.id_columns, *self.excluded, *([self.time_column] if self.time_column else [])]


def _roles(
    frame: pd.DataFrame, target: str, id_columns: Sequence[str], exclude: Sequence[str], time: str | None
) -> Roles:
    problems = []
    for flag, cols in (("--id-columns", id_columns), ("--exclude", exclude)):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            problems.append(f"{flag} {missing}: not in the data, which has {list(frame.columns)}")
        if target in cols:
            problems.append(f"{flag}: {target!r} is the target")
    both = sorted(set(id_columns) & set(exclude))
    if both:
        problems.append(f"columns {both} are given both as --id-columns and --exclude; pick one")
    if problems:
        raise DataError("column roles are not usable:\n  - " + "\n  - ".join(problems))
    return Roles(tuple(id_columns), tuple(exclude), time)


def id_like_problems(frame: pd.DataFrame, specs: Sequence[FeatureSpec], forced: Sequence[str]) -> list[str]:
    """Features that look like identifiers: as a feature every new row is an unknown category (or an
    extrapolated number), so training passes and serving refuses (issue 14: 900 of 900 new rows).

    A text column whose non-null values are all distinct, or an integer column named like an id (``id``,
    ``*_id``, ``*Id``, ``uuid``, ``key``) whose values are all distinct. ``--categorical``/``--numeric``
    naming the column keeps it as a feature on purpose.
    """
    import re

    problems = []
    for spec in specs:
        if spec.name in forced:
            continue
        present = frame[spec.name].dropna()
        if len(present) < 20 or present.nunique() != len(present):
            continue
        named_like_id = re.search(r"(^|_|-)(id|uuid|key)$|[a-z]Id$", spec.name, flags=re.IGNORECASE) is not None
        if not spec.is_numeric or (spec.dtype == "int" and named_like_id):
            problems.append(
                f"column {spec.name!r} looks like an identifier (all {len(present)} values distinct): as a feature "
                f"every new row would be unknown. Pass --id-columns {spec.name} (passed through batch inference "
                f"and capture, never a feature) or --exclude {spec.name}; to keep it as a feature anyway, name it "
                f"in --{'numeric' if spec.is_numeric else 'categorical'}"
            )
    return problems


def _fit_ready(estimator: Any, x: pd.DataFrame, y: np.ndarray, split: Split, task: TaskSpec) -> None:
    if task.is_classification:
        missing = sorted(set(range(len(task.labels))) - set(np.unique(y[split.train]).tolist()))
        if missing:
            raise DataError(
                f"classes {[task.labels[i] for i in missing]} have no rows in the training part ({split.how}); "
                "every class needs rows to be learnt (more data, or merge rare classes)"
            )
    estimator.fit(x.iloc[split.train], y[split.train])


def _model_files(
    estimator: Any, specs: Sequence[FeatureSpec], task: TaskSpec, model_format: str
) -> tuple[dict[str, bytes], RuntimeSpec]:
    """``model.onnx`` (if wanted and convertible) and ``model.skops``, and the runtime spec saying which."""
    skops = skops_file(estimator, skops_bytes)
    files = {SKOPS_NAME: skops.data}
    fmt = check_format(model_format)
    if fmt == "skops":
        return files, RuntimeSpec(format="skops", trusted_types=skops.trusted_types, converter="--format skops")
    try:
        files[ONNX_NAME] = to_onnx_bytes(estimator, specs, task)
    except NoConverterError as exc:
        if fmt == "onnx":
            raise DataError(f"--format onnx: the pipeline cannot be converted to ONNX: {exc}") from exc
        LOG.warning("no ONNX converter (%s); packaging model.skops only (serving needs scikit-learn)", exc)
        return files, RuntimeSpec(format="skops", trusted_types=skops.trusted_types, converter=f"none: {exc}")
    return files, RuntimeSpec(format="onnx", trusted_types=skops.trusted_types, converter=converter_name(estimator))


def _prediction_baseline(task: TaskSpec, predictions: Predictions) -> FeatureBaseline:
    if task.type == "binary":
        return numeric_baseline("probability", predictions.positive_probability)
    if task.type == "multiclass":
        labels = np.array([str(v) for v in predictions.labels], dtype=object)
        return categorical_baseline("label", labels, MISSING_CATEGORY)
    assert predictions.values is not None
    return numeric_baseline("value", predictions.values)


def _choose_model(
    *,
    champion_estimator: Any,
    estimator: Any,
    specs: Sequence[FeatureSpec],
    params: dict[str, Any],
    seed: int,
    task: TaskSpec,
) -> tuple[Any, str]:
    """The unfitted model and how it was chosen: the champion's refit, a brought one, or the default."""
    if champion_estimator is not None:
        return refit_pipeline(champion_estimator, seed), "refit"
    if estimator is not None:
        return byo_pipeline(estimator, specs, params, seed), "custom"
    try:
        return default_pipeline(specs, {**DEFAULT_HYPERPARAMETERS, **params}, seed, task), "default"
    except TypeError as exc:
        raise UsageError(f"--params: {exc} (the default pipeline is gradient boosting)") from exc


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
    champion: Manifest | None = None,
    hyperparameters: Mapping[str, Any] | None = None,
    lineage: Mapping[str, Any] | None = None,
    min_rows: int = 50,
    created_at: datetime | None = None,
    task: str | None = None,
    positive: object | None = None,
    id_columns: Sequence[str] = (),
    exclude: Sequence[str] = (),
    drop_null_target: bool = False,
    estimator: Any = None,
    model_format: str = "auto",
) -> TrainingResult:
    """Validate, split, fit, convert, measure and seal; the returned bytes already passed ``verify``.

    ``features`` (the champion's) fixes the schema; otherwise it is inferred (``categorical``/``numeric``
    force a column's kind). ``champion_estimator`` makes this a refit of that pipeline, and ``champion``
    (its manifest) supplies the task, labels and column roles, so nothing is given twice. ``estimator``
    is a brought, unfitted estimator or Pipeline (see :func:`byo_pipeline`); otherwise the default
    gradient boosting. ``model_format``: ``auto`` (ONNX where a converter exists, else skops), ``onnx``
    (refuse without a converter) or ``skops``.
    """
    check_name(name)  # before anything is read or fitted: the name is in S3 keys and tags
    if champion is not None:
        id_columns, exclude = champion.columns.id_columns, champion.columns.excluded
        time_column = champion.columns.time_column if champion.format_version >= 2 else time_column
    if time_column and time_column not in frame.columns:
        time_column = None
    roles = _roles(frame, target, id_columns, exclude, time_column)
    prepared = prepare_target(
        frame,
        target,
        task=task,
        positive=positive,
        drop_null_target=drop_null_target,
        known=champion.task if champion is not None else None,
    )
    if prepared.dropped_null:
        frame = frame.loc[prepared.keep].reset_index(drop=True)
    spec_task, y = prepared.task, prepared.y
    check_training_frame(
        frame,
        DataRequirements(
            target=target,
            min_rows=min_rows,
            time_column=time_column,
            features=features or (),
            task=spec_task,
            ignore=tuple(roles.id_columns + roles.excluded),
        ),
    )
    if features:
        specs = refresh_features(features, frame)
    else:
        specs = infer_features(frame, target, exclude=roles.non_features(), categorical=categorical, numeric=numeric)
        if problems := id_like_problems(frame, specs, [*(categorical or ()), *(numeric or ())]):
            raise DataError("the training data is not usable:\n  - " + "\n  - ".join(problems))
    split = split_holdout(frame, y, time_column, seed, stratify=spec_task.is_classification)
    columns = model_columns(specs, frame_columns(frame, specs))
    x = estimator_frame(columns)

    model, pipeline_kind = _choose_model(
        champion_estimator=champion_estimator,
        estimator=estimator,
        specs=specs,
        params=dict(hyperparameters or {}),
        seed=seed,
        task=spec_task,
    )
    LOG.info(
        "fitting %s %s pipeline on %d rows (holdout %d: %s)",
        pipeline_kind,
        spec_task.type,
        len(split.train),
        len(split.holdout),
        split.how,
    )
    _fit_ready(model, x, y, split, spec_task)
    holdout_x = x.iloc[split.holdout]
    raw = model.predict_proba(holdout_x) if spec_task.is_classification else model.predict(holdout_x)
    holdout_predictions = to_predictions(spec_task, np.asarray(raw))
    metrics = task_metrics(spec_task, y[split.holdout], holdout_predictions)
    train_columns = {k: v[split.train] for k, v in columns.items()}
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(split.train, size=min(REFERENCE_ROWS, len(split.train)), replace=False))

    files, runtime = _model_files(model, specs, spec_task, model_format)
    files[REQUIREMENTS_NAME] = requirements_txt(libraries := library_versions())
    files[REFERENCE_NAME] = reference_csv(
        specs, target, {k: v[sample] for k, v in columns.items()}, y[sample], spec_task
    )
    times = parse_times(frame[time_column], time_column) if time_column else None
    manifest = Manifest(
        name=name,
        version=version,
        created_at=created_at or datetime.now(UTC),
        git_sha=git_sha,
        target=target,
        task=spec_task,
        columns=ColumnRoles(id_columns=roles.id_columns, excluded=roles.excluded, time_column=time_column),
        runtime=runtime,
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
            "estimator": type(final_estimator(model)).__name__,
            "params": _json_params(model),
            "seed": seed,
            "holdout": split.how,
            **({"dropped_null_target": prepared.dropped_null} if prepared.dropped_null else {}),
        },
        lineage=Lineage(**lineage) if lineage else None,
        metrics=metrics,
        baseline=feature_baselines(specs, train_columns, MISSING_CATEGORY),
        prediction_baseline=_prediction_baseline(spec_task, holdout_predictions),
        libraries=libraries,
        files={},
    )
    sealed, data = package_bytes(manifest, files)
    result = verify_package(data, PARITY_TOLERANCE)  # raises ParityError/SchemaError: never hand out a bad package
    LOG.info("candidate sealed: %s", result.summary())
    holdout_columns = {k: v[split.holdout] for k, v in columns.items()}
    return TrainingResult(sealed, data, split, holdout_columns, y[split.holdout], prepared.dropped_null)


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
