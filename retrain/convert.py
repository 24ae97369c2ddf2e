"""The model file formats training writes: ONNX where a converter exists, skops otherwise.

scikit-learn steps convert through skl2onnx; LightGBM and XGBoost estimators through onnxmltools'
converters, registered with skl2onnx (``update_registered_converter``) so they convert inside a Pipeline
as well as alone. A step with no converter (a custom transformer) raises a skl2onnx "missing converter /
shape calculator" error, and ``format="auto"`` then packages ``model.skops`` only, recording the types it
needs trusted. Pickle is never written.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from jobs_common.errors import DataError
from model_package.manifest import FeatureSpec, TaskSpec
from model_package.runtime import SKOPS_TRUSTED_TYPES

LOG = logging.getLogger(__name__)
FormatChoice = Literal["auto", "onnx", "skops"]
FORMAT_CHOICES: tuple[FormatChoice, ...] = ("auto", "onnx", "skops")
# ONNX opsets every converter here supports and onnxruntime 1.31 runs (ai.onnx.ml 3: TreeEnsemble*).
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}


@functools.cache
def register_converters() -> tuple[str, ...]:
    """Register LightGBM/XGBoost converters with skl2onnx once; returns the libraries registered."""
    done: list[str] = []
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    classifier_options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    try:
        from lightgbm import LGBMClassifier, LGBMRegressor
        from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm

        update_registered_converter(
            LGBMClassifier,
            "LightGbmLGBMClassifier",
            calculate_linear_classifier_output_shapes,
            convert_lightgbm,
            options=classifier_options,
        )
        update_registered_converter(
            LGBMRegressor,
            "LightGbmLGBMRegressor",
            calculate_linear_regressor_output_shapes,
            convert_lightgbm,
            options={"split": None},
        )
        done.append("lightgbm")
    except ImportError:
        LOG.debug("lightgbm or onnxmltools not installed: no LightGBM converter")
    try:
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
        from xgboost import XGBClassifier, XGBRegressor

        update_registered_converter(
            XGBClassifier,
            "XGBoostXGBClassifier",
            calculate_linear_classifier_output_shapes,
            convert_xgboost,
            options=classifier_options,
        )
        update_registered_converter(
            XGBRegressor, "XGBoostXGBRegressor", calculate_linear_regressor_output_shapes, convert_xgboost
        )
        done.append("xgboost")
    except ImportError:
        LOG.debug("xgboost or onnxmltools not installed: no XGBoost converter")
    return tuple(done)


def final_estimator(estimator: Any) -> Any:
    while hasattr(estimator, "steps"):
        estimator = estimator.steps[-1][1]
    return estimator


def converter_name(estimator: Any) -> str:
    module = type(final_estimator(estimator)).__module__.split(".")[0]
    return {"lightgbm": "onnxmltools (lightgbm)", "xgboost": "onnxmltools (xgboost)"}.get(module, "skl2onnx")


class NoConverterError(Exception):
    """No ONNX converter for some step of the pipeline (the message names it)."""


def to_onnx_bytes(estimator: Any, features: Sequence[FeatureSpec], task: TaskSpec | None = None) -> bytes:
    """One ``[None, 1]`` input per feature, named as the feature; raises :class:`NoConverterError` when a step
    has no converter."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from skl2onnx.common.exceptions import MissingConverter, MissingShapeCalculator

    register_converters()
    initial_types = [
        (f.name, FloatTensorType([None, 1]) if f.is_numeric else StringTensorType([None, 1])) for f in features
    ]
    classification = task is None or task.is_classification
    # zipmap off: a plain (n, K) probability tensor, read without a dict per row.
    options = {id(final_estimator(estimator)): {"zipmap": False}} if classification else None
    try:
        model = to_onnx(estimator, initial_types=initial_types, options=options, target_opset=TARGET_OPSET)
    except (MissingConverter, MissingShapeCalculator) as exc:
        raise NoConverterError(str(exc).strip().splitlines()[0]) from exc
    except RuntimeError as exc:  # skl2onnx raises a bare RuntimeError for some unknown types
        if "converter" in str(exc).lower() or "shape calculator" in str(exc).lower():
            raise NoConverterError(str(exc).strip().splitlines()[0]) from exc
        raise
    onnx_bytes: bytes = model.SerializeToString()
    return onnx_bytes


@dataclass(frozen=True)
class SkopsFile:
    data: bytes
    trusted_types: tuple[str, ...]


def skops_file(estimator: Any, dumps: Any) -> SkopsFile:
    """``model.skops`` and the types beyond the runtime's built-in trusted set that loading it needs."""
    import skops.io as sio

    data = dumps(estimator)
    needed = sorted(set(sio.get_untrusted_types(data=data)) - set(SKOPS_TRUSTED_TYPES))
    return SkopsFile(data, tuple(needed))


def check_format(choice: str) -> FormatChoice:
    if choice not in FORMAT_CHOICES:
        raise DataError(f"--format {choice!r} is not known; allowed: {list(FORMAT_CHOICES)}")
    return choice
