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

# 2: task type (binary | multiclass | regression) with class labels, column roles, task-specific metrics with
# the primary metric and its direction, the model runtime. Format 1 packages (binary, 0/1 target, ONNX)
# still read: every new field defaults to exactly what format 1 meant.
FORMAT_VERSION: Literal[1, 2] = 2
READABLE_FORMATS = (1, 2)

Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
FeatureDtype = Literal["int", "float", "string"]
TaskType = Literal["binary", "multiclass", "regression"]
TASK_TYPES: tuple[TaskType, ...] = ("binary", "multiclass", "regression")
# A class label as the user wrote it in the target column: text, or an integer (0/1, 1..5). JSON keeps the
# difference, so answers and reports give back exactly the user's value.
Label = str | int
ModelFormat = Literal["onnx", "skops", "pickle"]

# The one table of metric directions; the gate, training and docs read it from here.
HIGHER_IS_BETTER: dict[str, bool] = {
    "roc_auc": True,
    "log_loss": False,
    "lift": True,
    "macro_f1": True,
    "rmse": False,
    "mae": False,
    "r2": True,
}
# Holdout metrics every package of a task carries (scalar ones; multiclass also has per_class_recall).
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("roc_auc", "log_loss", "lift"),
    "multiclass": ("log_loss", "macro_f1"),
    "regression": ("rmse", "mae", "r2"),
}
# The metric the champion gate compares by default, per task.
PRIMARY_METRIC: dict[str, str] = {"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmse"}


# A model name is part of S3 keys, image tags and metric dimensions: lower-case letters, digits, '-'.
NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
NAME_RULE = "1-63 characters: lower-case letters a-z, digits 0-9 and '-', starting with a letter or digit"


def check_name(name: str) -> str:
    """The model name, or a ``ManifestError`` naming the rule (called before any fitting)."""
    import re

    if not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name):
        raise ManifestError(f"model name {name!r} is not allowed: {NAME_RULE}")
    return name


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
    """Holdout metrics of the task (see :data:`TASK_METRICS`), the primary one and its direction.

    binary: ``roc_auc``, ``log_loss``, ``lift`` (positive rate in the top decile over the base rate);
    multiclass: ``log_loss``, ``macro_f1``, ``per_class_recall`` (keyed by ``str(label)``);
    regression: ``rmse``, ``mae``, ``r2`` (in the target's units; ``r2`` may be negative).
    ``primary_metric``/``higher_is_better`` say which number the gate compares and which way is better;
    a format 1 manifest has neither and means ``roc_auc``, higher is better.
    """

    primary_metric: str = "roc_auc"
    higher_is_better: bool = True
    holdout_rows: Annotated[int, Field(gt=0)]
    roc_auc: Annotated[float, Field(ge=0, le=1)] | None = None
    log_loss: Annotated[float, Field(ge=0)] | None = None
    lift: Annotated[float, Field(ge=0)] | None = None
    macro_f1: Annotated[float, Field(ge=0, le=1)] | None = None
    per_class_recall: dict[str, Annotated[float, Field(ge=0, le=1)]] | None = None
    rmse: Annotated[float, Field(ge=0)] | None = None
    mae: Annotated[float, Field(ge=0)] | None = None
    r2: float | None = None

    @model_validator(mode="after")
    def _primary_present(self) -> Metrics:
        if self.primary_metric not in HIGHER_IS_BETTER:
            raise ValueError(
                f"primary_metric {self.primary_metric!r} is not known; allowed: {sorted(HIGHER_IS_BETTER)}"
            )
        if self.higher_is_better != HIGHER_IS_BETTER[self.primary_metric]:
            raise ValueError(
                f"higher_is_better is {self.higher_is_better} but {self.primary_metric} is "
                f"{'higher' if HIGHER_IS_BETTER[self.primary_metric] else 'lower'}-is-better"
            )
        if self.value(self.primary_metric) is None:
            raise ValueError(f"primary_metric {self.primary_metric!r} has no value")
        for name in HIGHER_IS_BETTER:
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ValueError(f"metric {name} {value} is not a finite number")
        return self

    def value(self, name: str) -> float | None:
        """A scalar metric by name (``None`` when this task does not have it)."""
        if name not in HIGHER_IS_BETTER:
            raise ValueError(f"metric {name!r} is not known; allowed: {sorted(HIGHER_IS_BETTER)}")
        value = getattr(self, name)
        return None if value is None else float(value)


class TaskSpec(_Frozen):
    """What the model predicts and the class labels in model-output order, as the user's labels.

    The estimator is always fitted on the class *index* (0..K-1), so probability column ``i`` of every
    runtime is ``labels[i]``. binary: ``labels = (negative, positive)`` and ``positive_label == labels[1]``;
    multiclass: 3 or more labels in sorted order; regression: no labels. Format 1 meant a 0/1 target with
    1 as the positive class, which is the default.
    """

    type: TaskType = "binary"
    labels: tuple[Label, ...] = (0, 1)
    positive_label: Label | None = 1

    @model_validator(mode="after")
    def _consistent(self) -> TaskSpec:
        if len(set(self.labels)) != len(self.labels) or len({str(v) for v in self.labels}) != len(self.labels):
            raise ValueError(f"task.labels {list(self.labels)} has duplicates (compared as text too)")
        if self.type == "binary":
            if len(self.labels) != 2:
                raise ValueError(f"task binary needs exactly 2 labels (negative, positive); got {list(self.labels)}")
            if self.positive_label != self.labels[1]:
                raise ValueError(
                    f"task.positive_label {self.positive_label!r} must be the second label {self.labels[1]!r}"
                )
        elif self.type == "multiclass":
            if len(self.labels) < 3:
                raise ValueError(f"task multiclass needs at least 3 labels; got {list(self.labels)}")
            if self.positive_label is not None:
                raise ValueError("task.positive_label is only for binary tasks")
        elif self.labels or self.positive_label is not None:
            raise ValueError("task regression has no labels and no positive_label")
        return self

    @property
    def is_classification(self) -> bool:
        return self.type != "regression"

    def label_index(self, value: object) -> int | None:
        """Index of a label given as the user's value or its text (CSV and JSON give ``"1"`` for ``1``)."""
        for i, label in enumerate(self.labels):
            if value == label or str(value) == str(label):
                return i
        return None


class ColumnRoles(_Frozen):
    """Columns of the training table that are not features, and what they are for.

    ``id_columns`` pass through batch inference and capture unchanged and are never features;
    ``excluded`` were dropped on purpose (recorded so a later refit drops them too); ``time_column``
    orders the holdout and windows drift. The target is :attr:`Manifest.target`.
    """

    id_columns: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()
    time_column: str | None = None


class RuntimeSpec(_Frozen):
    """How the model is stored and served.

    ``onnx``: ``model.onnx`` (served without scikit-learn) plus ``model.skops`` as the parity reference.
    ``skops``: no converter exists for some step (e.g. a custom transformer); ``model.skops`` only, and
    ``trusted_types`` lists every non-default type the file may load (shown by ``verify``; loading
    refuses anything else). Needs scikit-learn, so the slim serving image refuses it with a message.
    ``pickle``: opt-in only (``ALLOW_PICKLE=1``), never produced by training.
    """

    format: ModelFormat = "onnx"
    trusted_types: tuple[str, ...] = ()
    converter: str | None = None


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
    """The whole ``manifest.json``. ``files`` maps every other file in the package to its sha256.

    ``prediction_baseline`` is the holdout distribution of what the model answers, per task: binary a
    numeric baseline named ``probability`` (of the positive class); multiclass a categorical baseline
    named ``label`` (fractions keyed by ``str(label)``); regression a numeric baseline named ``value``.
    """

    format_version: Literal[1, 2] = FORMAT_VERSION
    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    version: Annotated[int, Field(ge=1)]
    created_at: datetime
    git_sha: str
    target: str
    task: TaskSpec = TaskSpec()
    columns: ColumnRoles = ColumnRoles()
    runtime: RuntimeSpec = RuntimeSpec()
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
        roles = {"id_columns": self.columns.id_columns, "excluded": self.columns.excluded}
        if self.columns.time_column:
            roles["time_column"] = (self.columns.time_column,)
        for role, cols in roles.items():
            clash = sorted(set(cols) & (set(names) | {self.target}))
            if clash:
                raise ValueError(f"columns.{role}: {clash} cannot also be a feature or the target")
        missing = [m for m in TASK_METRICS[self.task.type] if self.metrics.value(m) is None]
        if missing:
            needed = list(TASK_METRICS[self.task.type])
            raise ValueError(f"metrics: a {self.task.type} model needs {needed}; missing {missing}")
        if self.metrics.primary_metric not in TASK_METRICS[self.task.type]:
            raise ValueError(
                f"metrics.primary_metric {self.metrics.primary_metric!r} is not a {self.task.type} metric; "
                f"allowed: {list(TASK_METRICS[self.task.type])}"
            )
        if self.format_version == 1 and (self.task != TaskSpec() or self.runtime != RuntimeSpec()):
            raise ValueError("format_version 1 is binary 0/1 ONNX only; task/runtime need format_version 2")
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
