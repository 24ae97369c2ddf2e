"""The shared predictor: one way to turn a verified package plus columns into a prediction per task.

Prediction contract (format 2, see ``docs/model-package.md``), :class:`Predictions`:

- binary: ``labels`` (user labels) + ``probabilities[:, 1]`` = P(positive label); label = argmax
  (i.e. P(positive) > 0.5, ties to the negative label);
- multiclass: ``labels`` + ``probabilities`` (n, K), column ``i`` is ``manifest.task.labels[i]``;
- regression: ``values`` (float64).

Labels are always the user's labels (``manifest.task.labels``), never the class index the estimator was
fitted on. How runtime outputs map onto this: the estimator is fitted on the class index 0..K-1, so its
``predict_proba`` columns and the ONNX ``probabilities`` output (skl2onnx with ``zipmap=False``, and
onnxmltools' LightGBM/XGBoost converters registered through skl2onnx, which name their outputs
``label``/``probabilities`` the same way) are in label order. The ONNX ``label`` output is ignored: the
label is the argmax of the probabilities on every runtime, so ONNX and the estimator cannot disagree on
a label while agreeing on probabilities. A regressor's ONNX output is ``variable`` (n, 1) (skl2onnx and
onnxmltools alike). A format 1 graph with a single (n,) / (n, 1) output is P(positive).

The app, the monitor and the batch inference job all score through :func:`load_predictor`, so the
conversion from "a column per manifest feature" to what the model needs lives here once. Only numpy
and onnxruntime are imported at module level because the serving image has neither scikit-learn nor
pandas; the ``skops`` path imports them lazily and the ``pickle`` path exists only behind an explicit
opt-in, because unpickling runs arbitrary code from the file.

Column contract (see ``docs/model-package.md``): ``columns[name]`` is a 1-D array per manifest
feature; numeric features are float64 with NaN for null, ``string`` features are object arrays of
``str`` with ``None`` for null. Null strings reach the model as :data:`MISSING_CATEGORY` on every
path, so the ONNX graph (whose string tensors cannot hold ``None``) and the fitted estimator see the
same value and stay in parity.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
import onnxruntime as ort

from contracts.environment import OnnxRuntimeEnvironment
from model_package.archive import ONNX_NAME, SKOPS_NAME, ModelPackage
from model_package.errors import PackageError, SchemaError

if TYPE_CHECKING:
    from model_package.manifest import FeatureSpec, Label, Manifest, TaskSpec, TaskType

RuntimeName = Literal["onnx", "skops", "pickle"]
RUNTIMES: tuple[RuntimeName, ...] = ("onnx", "skops", "pickle")
# What a null categorical value becomes before it reaches any model (training included).
MISSING_CATEGORY = ""
# Pickle files a package may carry for the opt-in legacy path, tried in this order.
PICKLE_NAMES = ("model.joblib", "model.pkl")
# Types a package's model.skops may contain beyond skops' built-in trusted set. Each is a plain data
# container of scikit-learn/numpy (no code runs on load); anything else makes loading fail loudly.
SKOPS_TRUSTED_TYPES = (
    "numpy.dtype",
    "sklearn.tree._tree.Tree",
    "sklearn._loss.link.Interval",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.link.IdentityLink",
    "sklearn._loss.link.MultinomialLogit",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn._loss.loss.HalfMultinomialLoss",
    "sklearn._loss._loss.CyHalfBinomialLoss",
    "sklearn._loss._loss.CyHalfMultinomialLoss",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "collections.OrderedDict",
    "builtins.slice",
)


class Predictions:
    """What a model answers for n rows, in the user's labels (see the module docstring)."""

    def __init__(self, task: TaskSpec, *, probabilities: np.ndarray | None = None, values: np.ndarray | None = None):
        self.task_spec = task
        if task.is_classification:
            if probabilities is None or probabilities.ndim != 2 or probabilities.shape[1] != len(task.labels):
                shape = None if probabilities is None else probabilities.shape
                raise PackageError(
                    f"a {task.type} model must give (n, {len(task.labels)}) probabilities; got shape {shape}"
                )
            self.probabilities: np.ndarray | None = probabilities.astype(np.float64)
            index = np.argmax(self.probabilities, axis=1) if len(probabilities) else np.empty(0, dtype=np.int64)
            self.label_index: np.ndarray | None = index
            self.values: np.ndarray | None = None
        else:
            if values is None:
                raise PackageError("a regression model must give one value per row")
            self.values = np.asarray(values, dtype=np.float64).reshape(-1)
            self.probabilities = None
            self.label_index = None

    @property
    def task(self) -> TaskType:
        return self.task_spec.type

    def __len__(self) -> int:
        return len(self.values) if self.values is not None else len(self.label_index)  # type: ignore[arg-type]

    @property
    def labels(self) -> list[Label]:
        """The predicted user label per row (classification only)."""
        if self.label_index is None:
            raise PackageError("a regression model has no labels; read .values")
        classes = self.task_spec.labels
        return [classes[i] for i in self.label_index]

    @property
    def positive_probability(self) -> np.ndarray:
        """P(positive label) per row (binary only)."""
        if self.task != "binary" or self.probabilities is None:
            raise PackageError(f"positive_probability is for binary models; this one is {self.task}")
        return self.probabilities[:, 1]

    @property
    def score(self) -> np.ndarray:
        """One number per row, the prediction-drift signal: binary P(positive), multiclass the probability
        of the predicted label, regression the value."""
        if self.values is not None:
            return self.values
        assert self.probabilities is not None
        if self.task == "binary":
            return self.probabilities[:, 1]
        return self.probabilities.max(axis=1) if len(self.probabilities) else np.empty(0)

    def record(self, i: int) -> dict[str, Any]:
        """Row ``i`` as a JSON-ready answer: binary ``{"label", "probability"}``, multiclass ``{"label",
        "probabilities": {str(label): p}}``, regression ``{"value"}``."""
        if self.values is not None:
            return {"value": float(self.values[i])}
        assert self.probabilities is not None and self.label_index is not None
        label = self.task_spec.labels[int(self.label_index[i])]
        if self.task == "binary":
            return {"label": label, "probability": float(self.probabilities[i, 1])}
        return {
            "label": label,
            "probabilities": {
                str(c): float(p) for c, p in zip(self.task_spec.labels, self.probabilities[i], strict=True)
            },
        }

    def records(self) -> list[dict[str, Any]]:
        """Every row as :meth:`record` gives it, converted from numpy once per batch instead of per cell.

        Why: the app answers a merged batch with this; per-row numpy indexing and ``float`` per class cost
        ~3.5 us a multiclass row, the multiclass app's largest extra over the binary one.
        """
        if self.values is not None:
            return [{"value": value} for value in self.values.astype(float).tolist()]
        assert self.probabilities is not None and self.label_index is not None
        labels = self.task_spec.labels
        predicted = [labels[i] for i in self.label_index.tolist()]
        rows = self.probabilities.astype(float).tolist()
        if self.task == "binary":
            return [{"label": label, "probability": row[1]} for label, row in zip(predicted, rows, strict=True)]
        names = [str(label) for label in labels]
        return [
            {"label": label, "probabilities": dict(zip(names, row, strict=True))}
            for label, row in zip(predicted, rows, strict=True)
        ]

    def comparable(self) -> np.ndarray:
        """What the parity check compares: the probability matrix, or the values."""
        return self.probabilities if self.probabilities is not None else self.values  # type: ignore[return-value]


class Predictor(Protocol):
    """Anything that scores columns; ``name`` says which runtime answers (for logs and metrics).

    ``predict`` is the contract for every task. ``predict_proba`` is kept for binary callers written
    against format 1: P(positive) per row; it refuses multiclass and regression models.
    """

    name: str
    manifest: Manifest

    def predict(self, columns: Mapping[str, np.ndarray]) -> Predictions: ...

    def predict_proba(self, columns: Mapping[str, np.ndarray]) -> np.ndarray: ...


def _binary_only(manifest: Manifest, predictions: Predictions) -> np.ndarray:
    if manifest.task.type != "binary":
        raise PackageError(
            f"predict_proba gives P(positive) for binary models; {manifest.name} is {manifest.task.type}: use predict()"
        )
    return predictions.positive_probability


def _empty_predictions(task: TaskSpec) -> Predictions:
    if task.is_classification:
        return Predictions(task, probabilities=np.empty((0, len(task.labels))))
    return Predictions(task, values=np.empty(0))


def _column(columns: Mapping[str, np.ndarray], name: str, n_rows: int | None) -> np.ndarray:
    try:
        values = np.asarray(columns[name])
    except KeyError:
        raise PackageError(
            f"feature {name!r} is missing from the input columns; every manifest feature is required"
        ) from None
    if values.ndim != 1:
        raise PackageError(f"feature {name!r}: expected a 1-D array, got shape {values.shape}")
    if n_rows is not None and len(values) != n_rows:
        raise PackageError(f"feature {name!r}: has {len(values)} rows, other features have {n_rows}")
    return values


def numeric_column(values: np.ndarray, name: str) -> np.ndarray:
    """float64 with NaN for null; ``None`` in an object array is accepted as null."""
    if values.dtype == object:
        values = np.array([np.nan if v is None else v for v in values], dtype=object)
    try:
        # copy=False: the app's validator already hands over float64 columns; converting them again cost a
        # copy per column per batch (issue #15 item 5: columns converted once before ONNX).
        return values.astype(np.float64, copy=False)
    except (TypeError, ValueError) as exc:
        raise PackageError(f"feature {name!r} is numeric; its values must be numbers or null ({exc})") from exc


def string_column(values: np.ndarray) -> np.ndarray:
    """object array of str with null (``None``/NaN) as :data:`MISSING_CATEGORY`."""
    out = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        if value is None or (isinstance(value, float) and np.isnan(value)):
            out[i] = MISSING_CATEGORY
        else:
            out[i] = str(value)
    return out


def model_columns(
    manifest: Manifest | Sequence[FeatureSpec], columns: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The manifest's features in the model's representation (float64 / str with nulls mapped).

    Training calls this too, so the estimator is fitted on exactly what it will later be fed.
    """
    features = manifest if isinstance(manifest, Sequence) else manifest.features
    n_rows: int | None = None
    out: dict[str, np.ndarray] = {}
    for spec in features:
        values = _column(columns, spec.name, n_rows)
        n_rows = len(values)
        out[spec.name] = numeric_column(values, spec.name) if spec.is_numeric else string_column(values)
    return out


_ONNX_NUMERIC = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
}


class OnnxPredictor:
    """Scores with onnxruntime; the graph has one ``[None, 1]`` input per feature, named as the feature."""

    name = "onnx"

    def __init__(self, package: ModelPackage, threads: int | None = None) -> None:
        self.manifest = package.manifest
        options = ort.SessionOptions()
        # Default: one intra-op thread, because servers run several workers and the batch job several
        # chunks; oversubscription costs more than it gains. ORT_THREADS (OnnxRuntimeEnvironment) overrides.
        if threads is None:
            threads = OnnxRuntimeEnvironment.from_env(error=PackageError).ort_threads
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(
                package.read(ONNX_NAME), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors for a malformed graph
            raise PackageError(f"{package.source}: {ONNX_NAME} cannot be loaded by onnxruntime: {exc}") from exc
        features = set(self.manifest.feature_names)
        self._inputs = [(i.name, i.type) for i in self.session.get_inputs()]
        unknown = sorted(n for n, _ in self._inputs if n not in features)
        if unknown:
            raise SchemaError(
                f"{package.source}: {ONNX_NAME} has inputs {unknown} that are not manifest features {sorted(features)}"
            )
        outputs = [o.name for o in self.session.get_outputs()]
        if self.manifest.task.is_classification:
            self._output = "probabilities" if "probabilities" in outputs else outputs[-1]
        else:
            self._output = "variable" if "variable" in outputs else outputs[0]

    def _feed(self, values: np.ndarray, onnx_type: str) -> np.ndarray:
        if onnx_type == "tensor(string)":
            return values.astype(object).reshape(-1, 1)
        dtype = _ONNX_NUMERIC.get(onnx_type)
        if dtype is None:
            raise PackageError(f"{ONNX_NAME}: input type {onnx_type} is not supported; allowed: float, double, string")
        return values.astype(dtype, copy=False).reshape(-1, 1)  # no second copy when already the graph's type

    def predict(self, columns: Mapping[str, np.ndarray]) -> Predictions:
        prepared = model_columns(self.manifest, columns)
        feed = {name: self._feed(prepared[name], onnx_type) for name, onnx_type in self._inputs}
        if not feed or len(next(iter(feed.values()))) == 0:
            return _empty_predictions(self.manifest.task)
        (scores,) = self.session.run([self._output], feed)
        return to_predictions(self.manifest.task, np.asarray(scores))

    def predict_proba(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        return _binary_only(self.manifest, self.predict(columns))


def to_predictions(task: TaskSpec, scores: np.ndarray) -> Predictions:
    """Raw runtime output (probabilities or values) as :class:`Predictions`."""
    if not task.is_classification:
        if scores.ndim == 2 and scores.shape[1] != 1:
            raise PackageError(f"model output has shape {scores.shape}; a regressor must give (n,) or (n, 1)")
        return Predictions(task, values=scores.reshape(-1))
    if task.type == "binary" and (scores.ndim == 1 or (scores.ndim == 2 and scores.shape[1] == 1)):
        positive = scores.reshape(-1).astype(np.float64)  # format 1 graphs: one P(positive) column
        return Predictions(task, probabilities=np.column_stack([1 - positive, positive]))
    return Predictions(task, probabilities=scores)


class EstimatorPredictor:
    """Scores with the fitted scikit-learn estimator (skops or, opted in, pickle): the parity reference."""

    def __init__(self, estimator: Any, manifest: Manifest, name: str) -> None:
        self.estimator, self.manifest, self.name = estimator, manifest, name

    def predict(self, columns: Mapping[str, np.ndarray]) -> Predictions:
        prepared = model_columns(self.manifest, columns)
        if len(next(iter(prepared.values()))) == 0:
            return _empty_predictions(self.manifest.task)
        frame = estimator_frame(prepared)
        if self.manifest.task.is_classification:
            return to_predictions(self.manifest.task, np.asarray(self.estimator.predict_proba(frame)))
        return to_predictions(self.manifest.task, np.asarray(self.estimator.predict(frame)))

    def predict_proba(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        return _binary_only(self.manifest, self.predict(columns))


def estimator_frame(prepared: Mapping[str, np.ndarray]) -> Any:
    """The pandas frame a fitted estimator is fed: training and scoring build it the same way.

    Strings stay ``object`` (not pandas' inferred string dtype) so the encoder sees plain ``str``.
    """
    import pandas as pd

    return pd.DataFrame(
        {
            name: pd.Series(values, dtype=object if values.dtype == object else np.float64)
            for name, values in prepared.items()
        }
    )


def load_skops_estimator(package: ModelPackage) -> Any:
    """The fitted estimator from ``model.skops``, refusing any type outside the trusted set."""
    try:
        import skops.io as sio
    except ImportError as exc:
        raise PackageError("runtime 'skops' needs skops and scikit-learn installed (the jobs image has them)") from exc
    data = package.read(SKOPS_NAME)
    try:
        allowed = set(SKOPS_TRUSTED_TYPES) | set(package.manifest.runtime.trusted_types)
        untrusted = set(sio.get_untrusted_types(data=data)) - allowed
    except Exception as exc:  # skops raises assorted errors for a malformed file
        raise PackageError(f"{package.source}: {SKOPS_NAME} is not a readable skops file: {exc}") from exc
    if untrusted:
        raise PackageError(
            f"{package.source}: {SKOPS_NAME} contains types that are not trusted: {sorted(untrusted)}; "
            "only scikit-learn/numpy data types and the manifest's runtime.trusted_types are loaded"
        )
    try:
        return sio.loads(data, trusted=[*sio.get_untrusted_types(data=data)])
    except Exception as exc:
        raise PackageError(f"{package.source}: {SKOPS_NAME} cannot be loaded: {exc}") from exc


def _load_pickle(package: ModelPackage) -> Any:
    name = next((n for n in PICKLE_NAMES if n in package.files), None)
    if name is None:
        raise PackageError(f"{package.source}: runtime 'pickle' needs one of {list(PICKLE_NAMES)} in the package")
    import io

    import joblib  # joblib ships with scikit-learn; this path is only for packages made outside retrain

    return joblib.load(io.BytesIO(package.read(name)))


def load_predictor(package: ModelPackage, *, runtime: RuntimeName = "onnx", allow_pickle: bool = False) -> Predictor:
    """A predictor for a verified package.

    ``onnx`` is the serving path; ``skops`` loads the fitted estimator (jobs image only); ``pickle``
    is refused unless ``allow_pickle`` is true, because a pickle runs code when it is loaded.
    """
    if runtime == "onnx":
        if package.manifest.runtime.format != "onnx" or ONNX_NAME not in package.files:
            raise PackageError(
                f"{package.source}: {package.manifest.name} v{package.manifest.version} is a "
                f"{package.manifest.runtime.format} package (no {ONNX_NAME}: "
                f"{package.manifest.runtime.converter or 'no ONNX converter for its pipeline'}); it needs "
                "scikit-learn to load. Serve it with runtime 'skops' from an image that has the jobs "
                "requirements (requirements/jobs.txt), or retrain with a pipeline that converts to ONNX."
            )
        return OnnxPredictor(package)
    if runtime == "skops":
        return EstimatorPredictor(load_skops_estimator(package), package.manifest, "skops")
    if runtime == "pickle":
        if not allow_pickle:
            raise PackageError(
                "runtime 'pickle' loads code from the model file; it is refused unless ALLOW_PICKLE=1 is set "
                "(allow_pickle=True). Use runtime 'onnx' or 'skops' instead."
            )
        return EstimatorPredictor(_load_pickle(package), package.manifest, "pickle")
    raise PackageError(f"runtime {runtime!r} is not known; allowed: {list(RUNTIMES)}")


_NUMERIC_ONNX = {"tensor(float)", "tensor(double)", "tensor(int64)", "tensor(int32)"}


def check_schema(package: ModelPackage, onnx: OnnxPredictor) -> None:
    """The ONNX graph takes exactly the manifest's features, each with a matching tensor type.

    One implementation for ``verify`` and the app's start-up: a package the pipeline refuses must not be
    served either (a manifest that disagrees with the graph scored with wrong probabilities).
    """
    inputs = {i.name: i.type for i in onnx.session.get_inputs()}
    features = {f.name: f for f in package.manifest.features}
    if set(inputs) != set(features):
        raise SchemaError(
            f"{package.source}: {ONNX_NAME} inputs {sorted(inputs)} differ from manifest features {sorted(features)}"
        )
    for name, onnx_type in inputs.items():
        numeric = features[name].is_numeric
        if numeric != (onnx_type in _NUMERIC_ONNX) or (not numeric and onnx_type != "tensor(string)"):
            raise SchemaError(
                f"{package.source}: feature {name!r} is {features[name].dtype} in the manifest "
                f"but {onnx_type} in {ONNX_NAME}"
            )
