"""The public Python API for bringing your own model (docs/retrain.md, "Bring your own model").

Two calls::

    from retrain.api import package_model
    result = package_model(make_pipeline(...), frame, target="plan", name="plan-model", out="model.zip")

``package_model`` validates the data, splits a holdout, fits your *unfitted* estimator or Pipeline on the
feature frame (one column per feature: numbers as float64 with NaN, categories as ``str``), measures the
task's metrics, converts to ONNX where a converter exists (skl2onnx; LightGBM/XGBoost via onnxmltools) or
falls back to skops, and seals a verified ``model.zip`` (format 2). ``load_factory("pkg.mod:make")`` is
what ``python -m retrain train --estimator`` uses.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from jobs_common.errors import UsageError
from model_package.archive import write_atomically
from retrain.training import TrainingResult, fit_candidate, preprocessor


def load_factory(spec: str) -> Any:
    """``MODULE:FACTORY`` -> the unfitted estimator the factory returns (a class is called with no args)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"--estimator {spec!r}: expected MODULE:FACTORY, e.g. mypkg.models:make_pipeline")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"--estimator {spec!r}: cannot import {module_name!r}: {exc}") from exc
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        raise UsageError(f"--estimator {spec!r}: {module_name} has no callable {attr!r}")
    estimator = factory()
    if not hasattr(estimator, "fit") or not hasattr(estimator, "get_params"):
        raise UsageError(
            f"--estimator {spec!r} returned {type(estimator).__name__}; it must return an unfitted "
            "scikit-learn-compatible estimator or Pipeline (with fit and get_params)"
        )
    return estimator


def load_params(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Hyperparameters from a JSON object file: ``set_params`` names (``model__C`` inside a Pipeline)."""
    try:
        params = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"--params {path}: not a readable JSON file: {exc}") from exc
    if not isinstance(params, dict):
        raise UsageError(f"--params {path}: expected a JSON object of hyperparameters, got {type(params).__name__}")
    return params


def package_model(
    estimator: Any,
    frame: pd.DataFrame,
    *,
    target: str,
    name: str = "model",
    version: int = 1,
    task: str | None = None,
    positive: object | None = None,
    id_columns: Sequence[str] = (),
    exclude: Sequence[str] = (),
    time_column: str | None = None,
    categorical: Sequence[str] | None = None,
    numeric: Sequence[str] | None = None,
    params: Mapping[str, Any] | None = None,
    drop_null_target: bool = False,
    model_format: str = "auto",
    out: str | os.PathLike[str] | None = None,
    seed: int = 0,
    min_rows: int = 50,
    data_uri: str = "memory://",
) -> TrainingResult:
    """Fit ``estimator`` (unfitted; a bare estimator gets :func:`preprocessor` in front) and seal a package.

    ``result.data`` is the verified ``model.zip`` (also written to ``out`` if given); ``result.manifest``
    its manifest. Errors are ``jobs_common.errors.DataError`` / ``model_package.errors`` classes naming the
    problem.
    """
    result = fit_candidate(
        frame,
        target,
        name=name,
        version=version,
        data_uri=data_uri,
        time_column=time_column,
        seed=seed,
        categorical=categorical,
        numeric=numeric,
        hyperparameters=params,
        min_rows=min_rows,
        task=task,
        positive=positive,
        id_columns=id_columns,
        exclude=exclude,
        drop_null_target=drop_null_target,
        estimator=estimator,
        model_format=model_format,
    )
    if out is not None:
        write_atomically(out, result.data)
    return result


__all__ = ["TrainingResult", "load_factory", "load_params", "package_model", "preprocessor"]
