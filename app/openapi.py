"""The OpenAPI description of ``POST /predict``, built from the manifest's feature schema.

Why by hand: the lean ASGI path reads the body itself, so FastAPI cannot infer the schema; building it
from the manifest keeps the published document exact (types, nullability, categories, ranges).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from model_package import FeatureSpec, Manifest
from model_package.validation import KINDS


class PredictionItem(BaseModel):
    uid: str
    prediction: int
    probability: float


class ViolationItem(BaseModel):
    feature: str
    kind: str
    value: Any = None
    expected: str
    row: int | None = None


class PredictResponse(BaseModel):
    """One entry per record, in request order; ``uid`` is also the capture record's key."""

    predictions: list[PredictionItem]
    model_version: int
    model_name: str
    warnings: list[ViolationItem] = []


class ViolationsResponse(BaseModel):
    error: str
    violations: list[ViolationItem]
    model_name: str
    model_version: int


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
        "properties": {spec.name: _feature_schema(spec) for spec in manifest.features},
        "required": list(manifest.feature_names),
        "additionalProperties": False,
    }


def predict_openapi(manifest: Manifest) -> dict[str, Any]:
    """Keyword arguments for ``FastAPI.post``: request body, responses and their models."""
    record = record_schema(manifest)
    body = {"anyOf": [record, {"type": "array", "items": record, "minItems": 1}]}
    kinds = ", ".join(KINDS)
    return {
        "response_model": PredictResponse,
        "responses": {
            400: {"model": ErrorResponse, "description": "not JSON/CSV, or not an object / list of objects"},
            406: {"model": ErrorResponse, "description": "Accept is neither application/json nor text/csv"},
            413: {"model": ErrorResponse, "description": "body larger than MAX_BODY_BYTES"},
            415: {"model": ErrorResponse, "description": "Content-Type is neither application/json nor text/csv"},
            422: {"model": ViolationsResponse, "description": f"schema violations; kinds: {kinds}"},
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
            "manifest feature must be present (null where nullable). Out-of-range values are warnings or "
            "violations according to the runtime setting `out_of_range`. The `X-Request-Id` header carries "
            "the first record's uid."
        ),
    }
