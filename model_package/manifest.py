"""The manifest: what a model is, what it expects, where it came from, how to check it.

``manifest.json`` is the contract between training, the build, the app and every job. Its
format is documented in ``docs/model-package.md``; bump ``FORMAT_VERSION`` on any change that
an older reader could misread.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from model_package.errors import ManifestError, SchemaError

FORMAT_VERSION = 1

Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
FeatureDtype = Literal["int", "float", "string"]


MAX_MANIFEST_BYTES = 4 << 20  # a manifest is a few KB; its features and baselines grow it linearly
MAX_JSON_DEPTH = 32  # the schema itself nests 4 levels; hyperparameters may nest a few more


def _refuse_constant(name: str) -> float:
    """NaN/Infinity are not JSON (RFC 8259) and a NaN bound broke /openapi.json: refused at the parse."""
    raise ManifestError(f"manifest.json contains {name}; only finite numbers are allowed")


def _depth(value: object) -> int:
    """Nesting depth, iteratively (a recursive walk is what a deep document would crash)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if level > MAX_JSON_DEPTH:
            return level
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return deepest


class _Frozen(BaseModel):
    # extra="forbid": a misspelt field in a hand-edited manifest is an error, not silently dropped.
    model_config = ConfigDict(frozen=True, extra="forbid")


class FeatureSpec(_Frozen):
    """One input column. ``int``/``float`` are numeric; ``string`` is categorical."""

    name: Annotated[str, Field(min_length=1)]
    dtype: FeatureDtype
    nullable: bool
    categories: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None

    @property
    def is_numeric(self) -> bool:
        return self.dtype in ("int", "float")

    @model_validator(mode="after")
    def _consistent(self) -> FeatureSpec:
        if self.is_numeric and self.categories is not None:
            raise ValueError(f"feature {self.name!r}: categories are only allowed for dtype 'string'")
        if not self.is_numeric and (self.minimum is not None or self.maximum is not None):
            raise ValueError(f"feature {self.name!r}: minimum/maximum are only allowed for numeric dtypes")
        for bound, value in (("minimum", self.minimum), ("maximum", self.maximum)):
            if value is not None and not math.isfinite(value):
                raise ValueError(f"feature {self.name!r}: {bound} {value} is not a finite number")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError(f"feature {self.name!r}: minimum {self.minimum} > maximum {self.maximum}")
        return self


class TrainingData(_Frozen):
    """Lineage of the rows the model was fitted on."""

    uri: str
    sha256: Sha256
    rows: Annotated[int, Field(gt=0)]
    time_column: str | None = None
    time_min: datetime | None = None
    time_max: datetime | None = None


class Metrics(_Frozen):
    """Holdout metrics. ``lift`` is the positive rate in the top decile over the base rate."""

    roc_auc: Annotated[float, Field(ge=0, le=1)]
    log_loss: Annotated[float, Field(ge=0)]
    lift: Annotated[float, Field(ge=0)]
    holdout_rows: Annotated[int, Field(gt=0)]


class FeatureBaseline(_Frozen):
    """Training distribution of one feature, the reference for drift tests.

    Numeric: ``quantiles`` are the values at the evenly spaced probabilities 0, 1/(n-1), ..., 1
    (n = len(quantiles), 101 by default), enough for PSI bins and a KS statistic against the
    training CDF. Categorical: ``category_fractions`` over non-null values.
    """

    name: str
    kind: Literal["numeric", "categorical"]
    count: Annotated[int, Field(ge=0)]
    null_rate: Annotated[float, Field(ge=0, le=1)]
    mean: float | None = None
    std: float | None = None
    quantiles: tuple[float, ...] = ()
    category_fractions: dict[str, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> FeatureBaseline:
        if self.kind == "numeric" and self.count > 0 and len(self.quantiles) < 2:
            raise ValueError(f"baseline {self.name!r}: numeric baselines need at least 2 quantiles")
        if any(b < a for a, b in zip(self.quantiles, self.quantiles[1:], strict=False)):
            raise ValueError(f"baseline {self.name!r}: quantiles must be non-decreasing")
        if any(not math.isfinite(q) for q in self.quantiles):
            raise ValueError(f"baseline {self.name!r}: quantiles must be finite")
        return self


class Lineage(_Frozen):
    """Where this model came from: the champion it was refit from and the fingerprint of its inputs.

    The fingerprint (training data sha256, champion sha256, hyperparameters, code git sha, ...) lets the
    retrain job recognise a re-run on the same inputs and release nothing new.
    """

    parent_version: int | None = None
    parent_sha256: Sha256 | None = None
    fingerprint: Annotated[str, Field(min_length=1)]


class Manifest(_Frozen):
    """The whole ``manifest.json``. ``files`` maps every other file in the package to its sha256."""

    format_version: Literal[1] = FORMAT_VERSION
    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
    version: Annotated[int, Field(ge=1)]
    created_at: datetime
    git_sha: str
    target: str
    training_data: TrainingData
    features: tuple[FeatureSpec, ...]
    hyperparameters: dict[str, object] = Field(default_factory=dict)
    metrics: Metrics
    baseline: tuple[FeatureBaseline, ...]
    prediction_baseline: FeatureBaseline | None = None
    lineage: Lineage | None = None
    libraries: dict[str, str]
    files: dict[str, Sha256]

    @model_validator(mode="after")
    def _schema_consistent(self) -> Manifest:
        names = [f.name for f in self.features]
        if not names:
            raise ValueError("features: the feature schema is empty; at least one feature is required")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"features: duplicate feature names {duplicates}")
        if self.target in names:
            raise ValueError(f"target {self.target!r} is also listed as a feature")
        unknown = sorted({b.name for b in self.baseline} - set(names))
        if unknown:
            raise ValueError(f"baseline: entries for features not in the schema: {unknown}")
        if "manifest.json" in self.files:
            raise ValueError("files: manifest.json cannot list its own sha256")
        return self

    def feature(self, name: str) -> FeatureSpec:
        for spec in self.features:
            if spec.name == name:
                return spec
        raise KeyError(name)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    def baseline_for(self, name: str) -> FeatureBaseline | None:
        return next((b for b in self.baseline if b.name == name), None)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        """Parse and validate; every problem becomes a ``ManifestError``/``SchemaError`` naming the field."""
        if len(text) > MAX_MANIFEST_BYTES:
            raise ManifestError(f"manifest.json is {len(text)} bytes; at most {MAX_MANIFEST_BYTES} are allowed")
        try:
            raw = json.loads(text, parse_constant=_refuse_constant)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ManifestError(f"manifest.json is not valid JSON: {exc}") from exc
        except RecursionError:
            raise ManifestError(f"manifest.json nests deeper than {MAX_JSON_DEPTH} levels") from None
        depth = _depth(raw)
        if depth > MAX_JSON_DEPTH:
            raise ManifestError(f"manifest.json nests {depth} levels deep; at most {MAX_JSON_DEPTH} are allowed")
        if not isinstance(raw, dict):
            raise ManifestError("manifest.json must be a JSON object")
        if not raw.get("features"):
            raise SchemaError("manifest.json: the feature schema ('features') is absent or empty")
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
            )
            error_type = SchemaError if any(err["loc"][:1] == ("features",) for err in exc.errors()) else ManifestError
            raise error_type(f"manifest.json is invalid: {problems}") from exc
