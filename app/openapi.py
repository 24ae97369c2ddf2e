"""The OpenAPI description of ``POST /predict``, built from the manifest's feature schema.

Why by hand: the lean ASGI path reads the body itself, so FastAPI cannot infer the schema; building it
from the manifest keeps the published document exact (types, nullability, categories, ranges).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, create_model

from model_package import FeatureSpec, Manifest
from model_package.validation import KINDS


class ViolationItem(BaseModel):
    feature: str
    kind: str
    value: Any = None
    expected: str
    row: int | None = None


class ViolationsResponse(BaseModel):
    error: str
    violations: list[ViolationItem]
    model_name: str
    model_version: int


# The answer fields per task (app.core.Prediction; the capture record's ``output`` has the same shape).
_TASK_FIELDS: dict[str, dict[str, Any]] = {
    "binary": {
        "label": (str | int | None, Field(None, description="the predicted label, in the training labels")),
        "probability": (float | None, Field(None, description="P(positive label)")),
        "prediction": (int | None, Field(None, description="1 when label is the positive label (format 1)")),
    },
    "multiclass": {
        "label": (str | int | None, Field(None, description="the most probable label")),
        "probabilities": (dict[str, float] | None, Field(None, description="probability per label")),
    },
    "regression": {"value": (float | None, Field(None, description="the predicted value"))},
}


def response_models(manifest: Manifest) -> tuple[type[BaseModel], type[BaseModel]]:
    """(200 answer, 207 answer) for this model's task; id columns are echoed when sent."""
    ids = {name: (Any, Field(None, description="id column, passed through")) for name in manifest.columns.id_columns}
    item = create_model(  # type: ignore[call-overload]
        f"{manifest.task.type.capitalize()}Prediction",
        uid=(str | None, Field(description="capture key; null for a rejected record")),
        errors=(list[ViolationItem] | None, Field(None, description="why this record was rejected (207 only)")),
        **ids,
        **_TASK_FIELDS[manifest.task.type],
    )
    ok = create_model(
        "PredictResponse",
        __doc__="One entry per record, in request order; ``uid`` is also the capture record's key.",
        predictions=(list[item], ...),
        model_version=(int, ...),
        model_name=(str, ...),
        warnings=(list[ViolationItem], []),
    )
    partial = create_model(
        "PartialPredictResponse",
        __base__=ok,
        __doc__="Some records rejected: their entries have ``uid: null`` and ``errors``; the others are scored.",
        error=(str, ...),
        violations=(list[ViolationItem], ...),
    )
    return ok, partial


class ErrorResponse(BaseModel):
    error: str


def _feature_schema(spec: FeatureSpec) -> dict[str, Any]:
    schema: dict[str, Any]
    if spec.dtype == "string":
        schema = {"type": "string"}
        if spec.categories is not None:
            schema["enum"] = list(spec.categories)
    else:
        schema = {"type": "integer" if spec.dtype == "int" else "number"}
        if spec.minimum is not None:
            schema["minimum"] = spec.minimum
        if spec.maximum is not None:
            schema["maximum"] = spec.maximum
    if spec.nullable:
        schema = {"anyOf": [schema, {"type": "null"}]}
    return schema


def record_schema(manifest: Manifest) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            **{spec.name: _feature_schema(spec) for spec in manifest.features},
            # Id columns are never features: passed through to the answer and the capture record.
            **{name: {"description": "id column, passed through"} for name in manifest.columns.id_columns},
        },
        "required": list(manifest.feature_names),
        "additionalProperties": False,
    }


def predict_openapi(manifest: Manifest) -> dict[str, Any]:
    """Keyword arguments for ``FastAPI.post``: request body, responses and their models."""
    record = record_schema(manifest)
    body = {"anyOf": [record, {"type": "array", "items": record, "minItems": 1}]}
    kinds = ", ".join(KINDS)
    ok, partial = response_models(manifest)
    return {
        "response_model": ok,
        "responses": {
            207: {"model": partial, "description": "some records rejected (their violations inline), others scored"},
            400: {"model": ErrorResponse, "description": "not JSON/CSV, or not an object / list of objects"},
            406: {"model": ErrorResponse, "description": "Accept is neither application/json nor text/csv"},
            413: {"model": ErrorResponse, "description": "body larger than MAX_BODY_BYTES"},
            415: {"model": ErrorResponse, "description": "Content-Type is neither application/json nor text/csv"},
            422: {"model": ViolationsResponse, "description": f"no record could be scored; kinds: {kinds}"},
        },
        "openapi_extra": {
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": body},
                    "text/csv": {"schema": {"type": "string", "description": "a header row of feature names"}},
                },
            }
        },
        "description": (
            "Send one JSON object (feature -> value), a JSON list of them, or CSV with a header row. Every "
            "manifest feature must be present (null where nullable); id columns are passed through. "
            "Out-of-range values, unknown categories, extra keys and unexpected nulls are warnings or "
            "violations according to the runtime settings (docs/app.md, Serving policies). The "
            "`X-Request-Id` header carries the first scored record's uid."
        ),
    }
