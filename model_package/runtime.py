"""The shared predictor: one way to turn a verified package plus columns into P(target == 1).

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

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
import onnxruntime as ort

from model_package.archive import ONNX_NAME, SKOPS_NAME, ModelPackage
from model_package.errors import PackageError, SchemaError

if TYPE_CHECKING:
    from model_package.manifest import FeatureSpec, Manifest

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


class Predictor(Protocol):
    """Anything that scores columns; ``name`` says which runtime answers (for logs and metrics)."""

    name: str

    def predict_proba(self, columns: Mapping[str, np.ndarray]) -> np.ndarray: ...


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
        return values.astype(np.float64)
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
        # chunks; oversubscription costs more than it gains. ORT_THREADS overrides.
        options.intra_op_num_threads = threads or int(os.environ.get("ORT_THREADS", "1"))
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
        self._output = "probabilities" if "probabilities" in outputs else outputs[-1]

    def _feed(self, values: np.ndarray, onnx_type: str) -> np.ndarray:
        if onnx_type == "tensor(string)":
            return values.astype(object).reshape(-1, 1)
        dtype = _ONNX_NUMERIC.get(onnx_type)
        if dtype is None:
            raise PackageError(f"{ONNX_NAME}: input type {onnx_type} is not supported; allowed: float, double, string")
        return values.astype(dtype).reshape(-1, 1)

    def predict_proba(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        prepared = model_columns(self.manifest, columns)
        feed = {name: self._feed(prepared[name], onnx_type) for name, onnx_type in self._inputs}
        if not feed or len(next(iter(feed.values()))) == 0:
            return np.empty(0, dtype=np.float64)
        (scores,) = self.session.run([self._output], feed)
        return _positive_column(np.asarray(scores))


def _positive_column(scores: np.ndarray) -> np.ndarray:
    if scores.ndim == 2 and scores.shape[1] == 2:
        return scores[:, 1].astype(np.float64)
    if scores.ndim == 1 or (scores.ndim == 2 and scores.shape[1] == 1):
        return scores.reshape(-1).astype(np.float64)
    raise PackageError(f"model output has shape {scores.shape}; a binary classifier must give (n, 2) or (n,)")


class EstimatorPredictor:
    """Scores with the fitted scikit-learn estimator (skops or, opted in, pickle): the parity reference."""

    def __init__(self, estimator: Any, manifest: Manifest, name: str) -> None:
        self.estimator, self.manifest, self.name = estimator, manifest, name

    def predict_proba(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        prepared = model_columns(self.manifest, columns)
        if len(next(iter(prepared.values()))) == 0:
            return np.empty(0, dtype=np.float64)
        return _positive_column(np.asarray(self.estimator.predict_proba(estimator_frame(prepared))))


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
        untrusted = set(sio.get_untrusted_types(data=data)) - set(SKOPS_TRUSTED_TYPES)
    except Exception as exc:  # skops raises assorted errors for a malformed file
        raise PackageError(f"{package.source}: {SKOPS_NAME} is not a readable skops file: {exc}") from exc
    if untrusted:
        raise PackageError(
            f"{package.source}: {SKOPS_NAME} contains types that are not trusted: {sorted(untrusted)}; "
            "only scikit-learn/numpy data types are loaded"
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
