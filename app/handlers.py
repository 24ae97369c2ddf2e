"""The SageMaker inference toolkit's four handlers, a shim over the app core (:mod:`app.core`).

``model_fn(model_dir)`` loads and verifies the package, ``input_fn(body, content_type)`` parses JSON or
CSV into records, ``predict_fn(data, model)`` validates and scores (never raising for bad records: their
violations are returned), ``output_fn(prediction, accept)`` renders the answer. The same package therefore
runs under SageMaker (point its ``SAGEMAKER_PROGRAM`` at this module) and in this app's image. SageMaker
has no settings refresher: ``predict_fn`` scores under ``model.settings()`` (the defaults unless set).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from app.core import LoadedModel, Prediction, load_model, parse_records, render, score

__all__ = ["input_fn", "model_fn", "output_fn", "predict_fn"]


def model_fn(
    model_dir: str | os.PathLike[str], runtime: str | None = None, allow_pickle: bool | None = None
) -> LoadedModel:
    """Load a package directory (or ``model.zip``), verified (:func:`app.core.load_model`)."""
    return load_model(model_dir, runtime=runtime, allow_pickle=allow_pickle)


def input_fn(
    body: bytes | str, content_type: str | None, model: LoadedModel | None = None, max_records: int | None = None
) -> list[dict[str, Any]]:
    """Records from a JSON object, a JSON list of objects, or CSV with a header row."""
    return parse_records(body, content_type, model, max_records)


def predict_fn(data: Sequence[Mapping[str, Any]], model: LoadedModel) -> Prediction:
    """Validate and score under the model's settings source (:attr:`app.core.LoadedModel.settings`)."""
    return score(data, model, model.settings())


def output_fn(prediction: Prediction, accept: str | None) -> tuple[bytes, str]:
    """The answer body and its content type (:func:`app.core.render`)."""
    return render(prediction, accept)
