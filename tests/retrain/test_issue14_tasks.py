"""Issue 14: binary, multiclass and regression end to end on the training side; labels, roles, names.

Everything runs on the repo's own generated data (``retrain.synthetic.generate_task_frame``).
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from contracts.exit_codes import ExitCode
from jobs_common.errors import ConfigError, DataError
from jobs_common.gate import GatePolicy, decide
from jobs_common.metrics import task_metrics
from jobs_common.reference import read_reference
from model_package.archive import MANIFEST_NAME, open_package
from model_package.errors import ManifestError, PackageError
from model_package.manifest import Manifest, TaskSpec
from model_package.runtime import Predictions, load_predictor
from retrain.__main__ import main
from retrain.settings import Settings
from retrain.synthetic import ID_COLUMN, MULTICLASS_TARGET, PLANS, REGRESSION_TARGET, TARGET, generate_task_frame
from retrain.training import TrainingResult, fit_candidate
from retrain.verify import verify_package

TARGETS = {"binary": TARGET, "multiclass": MULTICLASS_TARGET, "regression": REGRESSION_TARGET}
SMALL = {"n_estimators": 40}


def _fit(frame: pd.DataFrame, task: str, **options: Any) -> TrainingResult:
    options.setdefault("hyperparameters", SMALL)
    return fit_candidate(frame, TARGETS[task], name=f"{task}-model", **options)


@pytest.fixture(scope="module")
def packages() -> dict[str, TrainingResult]:
    return {task: _fit(generate_task_frame(task, 900, seed=3), task) for task in TARGETS}


def _write(tmp_path: Path, frame: pd.DataFrame, name: str = "train.csv") -> str:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize("task", list(TARGETS))
def test_cli_train_then_verify_each_task(tmp_path: Path, capsys: Any, task: str) -> None:
    """train -> verify through the CLI; the task is inferred from the target alone."""
    data = _write(tmp_path, generate_task_frame(task, 700, seed=5))
    out = str(tmp_path / "model.zip")
    rc = main(["--log-level", "WARNING", "train", "--data", data, "--target", TARGETS[task], "--out", out])
    assert rc == ExitCode.OK
    printed = capsys.readouterr().out
    assert f"{task}" in printed
    assert main(["--log-level", "WARNING", "verify", out]) == ExitCode.OK
    assert "integrity, schema and parity" in capsys.readouterr().out
    manifest = open_package(out).manifest
    assert manifest.format_version == 2
    assert manifest.task.type == task
    expected_primary = {"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmse"}[task]
    assert manifest.metrics.primary_metric == expected_primary
    assert manifest.metrics.higher_is_better is (task == "binary")


def test_each_task_has_its_metrics_labels_and_answers(packages: dict[str, TrainingResult]) -> None:
    binary, multi, regression = packages["binary"], packages["multiclass"], packages["regression"]
    m = binary.manifest.metrics
    assert m.roc_auc is not None and m.roc_auc > 0.65 and m.log_loss is not None and m.lift is not None
    assert binary.manifest.task.labels == (0, 1) and binary.manifest.task.positive_label == 1

    mm = multi.manifest.metrics
    assert multi.manifest.task.labels == PLANS  # the user's text labels, in model-output order
    assert mm.log_loss is not None and mm.log_loss < np.log(3)  # better than a uniform guess
    assert mm.macro_f1 is not None and set(mm.per_class_recall or {}) == set(PLANS)
    assert mm.roc_auc is None

    rm = regression.manifest.metrics
    assert rm.rmse is not None and rm.mae is not None and rm.r2 is not None and rm.r2 > 0.5
    assert regression.manifest.task.labels == ()

    for task, result in packages.items():
        package = open_package(result.data)
        onnx = load_predictor(package, runtime="onnx").predict(result.holdout_columns)
        skops = load_predictor(package, runtime="skops").predict(result.holdout_columns)
        np.testing.assert_allclose(onnx.comparable(), skops.comparable(), rtol=1e-4, atol=1e-4)
        record = onnx.record(0)
        if task == "binary":
            assert set(record) == {"label", "probability"} and record["label"] in (0, 1)
            np.testing.assert_allclose(
                load_predictor(package).predict_proba(result.holdout_columns), onnx.positive_probability
            )
        elif task == "multiclass":
            assert set(record) == {"label", "probabilities"} and record["label"] in PLANS
            assert set(record["probabilities"]) == set(PLANS)
            assert abs(sum(record["probabilities"].values()) - 1) < 1e-5
            with pytest.raises(PackageError, match="use predict"):
                load_predictor(package).predict_proba(result.holdout_columns)
        else:
            assert set(record) == {"value"} and isinstance(record["value"], float)
        # The manifest's holdout metrics are what the serving runtime gives on the same rows.
        recomputed = task_metrics(result.manifest.task, result.holdout_y, onnx)
        primary = result.manifest.metrics.primary_metric
        assert recomputed.value(primary) == pytest.approx(result.manifest.metrics.value(primary), rel=1e-3, abs=1e-4)


@pytest.mark.parametrize("task", list(TARGETS))
def test_gate_accepts_better_and_refuses_worse_per_task(packages: dict[str, TrainingResult], task: str) -> None:
    """A weak model (one shallow tree) vs the real one, both scored on the same holdout rows."""
    good = packages[task]
    weak = _fit(generate_task_frame(task, 900, seed=3), task, hyperparameters={"n_estimators": 1, "max_depth": 1})
    columns = good.holdout_columns

    def score(result: TrainingResult) -> Any:
        predictions = load_predictor(open_package(result.data)).predict(columns)
        return task_metrics(good.manifest.task, good.holdout_y, predictions)

    good_metrics, weak_metrics = score(good), score(weak)
    # Floors out of the way (both clear them): this is about the champion comparison and its direction.
    policy = GatePolicy(tolerance=0.005, floor={"binary": 0.5, "multiclass": 5.0, "regression": 1e9}[task])
    better = decide(policy, good_metrics, weak_metrics)
    worse = decide(policy, weak_metrics, good_metrics)
    assert better.accepted, better.reason
    assert not worse.accepted, worse.reason
    direction = "higher is better" if task == "binary" else "lower is better"
    assert direction in worse.reason and good_metrics.primary_metric in worse.reason


def test_gate_default_floors_per_task(packages: dict[str, TrainingResult]) -> None:
    multi = packages["multiclass"].manifest.metrics
    uniform = multi.model_copy(update={"log_loss": float(np.log(3)) + 0.01})
    decision = decide(GatePolicy(), uniform, None)
    assert not decision.accepted and "ln(3)" in decision.reason
    regression = packages["regression"].manifest.metrics
    useless = regression.model_copy(update={"r2": -0.1})
    decision = decide(GatePolicy(), useless, None)
    assert not decision.accepted and "predicting the holdout mean" in decision.reason
    assert decide(GatePolicy(), regression, None).accepted
    with pytest.raises(ConfigError, match="GATE_METRIC=roc_auc"):
        decide(GatePolicy("roc_auc"), regression, None)


def test_positive_text_label_is_recorded_and_answers_use_it(tmp_path: Path) -> None:
    frame = generate_task_frame("binary", 800, seed=4)
    frame[TARGET] = np.where(frame[TARGET] == 1, "bad", "good")
    result = fit_candidate(frame, TARGET, name="credit", positive="bad", hyperparameters=SMALL)
    task = result.manifest.task
    assert task.labels == ("good", "bad") and task.positive_label == "bad"
    predictions = load_predictor(open_package(result.data)).predict(result.holdout_columns)
    assert set(predictions.labels) <= {"good", "bad"}
    is_bad = result.holdout_y == 1
    # P(positive) is P("bad"): it is higher where the truth is "bad".
    assert predictions.positive_probability[is_bad].mean() > predictions.positive_probability[~is_bad].mean()
    _, reference_y = read_reference(open_package(result.data))
    text = zipfile.ZipFile(io.BytesIO(result.data)).read("reference.csv").decode()
    assert ",bad\n" in text and ",good\n" in text and set(np.unique(reference_y)) == {0, 1}
    # The refit reads the label from the package: nothing needs --positive twice.
    refit = fit_candidate(frame, TARGET, name="credit", champion=result.manifest, hyperparameters=SMALL)
    assert refit.manifest.task == task


def test_id_and_excluded_columns_are_roles_not_features(tmp_path: Path) -> None:
    frame = generate_task_frame("multiclass", 800, seed=6, with_id=True).assign(note="free text")
    result = fit_candidate(
        frame, MULTICLASS_TARGET, name="plans", id_columns=[ID_COLUMN], exclude=["note"], hyperparameters=SMALL
    )
    manifest = result.manifest
    assert manifest.columns.id_columns == (ID_COLUMN,) and manifest.columns.excluded == ("note",)
    assert manifest.columns.time_column == "acquisition_date"
    assert not {ID_COLUMN, "note", "acquisition_date"} & set(manifest.feature_names)
    refit = fit_candidate(frame, MULTICLASS_TARGET, name="plans", champion=manifest, hyperparameters=SMALL)
    assert refit.manifest.columns == manifest.columns


def test_id_like_column_fails_with_the_fix_named(tmp_path: Path, capsys: Any) -> None:
    """Defect (issue 14): an id column became a feature, and 900 of 900 new rows were refused at serving."""
    data = _write(tmp_path, generate_task_frame("binary", 700, seed=7, with_id=True))
    out = str(tmp_path / "model.zip")
    rc = main(["--log-level", "WARNING", "train", "--data", data, "--target", TARGET, "--out", out])
    assert rc == ExitCode.BAD_DATA
    err = capsys.readouterr().err
    assert f"column {ID_COLUMN!r} looks like an identifier" in err and f"--id-columns {ID_COLUMN}" in err
    assert not Path(out).exists()
    rc = main(["--log-level", "WARNING", "train", "--data", data, "--target", TARGET, "--out", out,
               "--id-columns", ID_COLUMN])  # fmt: skip
    assert rc == ExitCode.OK
    assert open_package(out).manifest.columns.id_columns == (ID_COLUMN,)


def test_null_target_refused_with_count_or_dropped_with_flag(tmp_path: Path, capsys: Any) -> None:
    """Defect (issue 14): with --positive, 11 rows with a null target were trained as the negative class."""
    frame = generate_task_frame("binary", 700, seed=8)
    frame[TARGET] = np.where(frame[TARGET] == 1, "bad", "good").astype(object)
    frame.loc[frame.index[:11], TARGET] = None
    data = _write(tmp_path, frame)
    out = str(tmp_path / "model.zip")
    args = ["--log-level", "WARNING", "train", "--data", data, "--target", TARGET, "--out", out, "--positive", "bad"]
    assert main(args) == ExitCode.BAD_DATA
    assert "11 null values" in capsys.readouterr().err and not Path(out).exists()
    assert main([*args, "--drop-null-target"]) == ExitCode.OK
    assert "dropped 11 rows with a null target" in capsys.readouterr().out
    manifest = open_package(out).manifest
    assert manifest.hyperparameters["dropped_null_target"] == 11
    assert manifest.training_data.rows == 700 - 11
    assert manifest.task.positive_label == "bad"


def test_single_class_target_refused(tmp_path: Path, capsys: Any) -> None:
    data = _write(tmp_path, generate_task_frame("binary", 300, seed=9).assign(churn="yes"))
    rc = main(["--log-level", "WARNING", "train", "--data", data, "--target", TARGET, "--out", str(tmp_path / "m")])
    assert rc == ExitCode.BAD_DATA
    assert "single class ('yes')" in capsys.readouterr().err


def test_bad_model_name_refused_before_fitting(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    """Defect (issue 14): ``--name Credit_Model`` crashed with a traceback after fitting."""
    import retrain.training

    def no_fit(*_: Any, **__: Any) -> None:
        raise AssertionError("fit_candidate must not run for a bad name")

    monkeypatch.setattr(retrain.training, "fit_candidate", no_fit)
    data = _write(tmp_path, generate_task_frame("binary", 300, seed=9))
    argv = ["--log-level", "WARNING", "train", "--data", data, "--target", TARGET, "--out", str(tmp_path / "m.zip")]
    assert main([*argv, "--name", "Credit_Model"]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "'Credit_Model' is not allowed" in err and "lower-case letters" in err and "Traceback" not in err
    with pytest.raises(ConfigError, match="MODEL_NAME"):
        Settings.from_env({"MODEL_NAME": "Credit_Model"})
    with pytest.raises(ManifestError, match="not allowed"):
        fit_candidate(generate_task_frame("binary", 100), TARGET, name="Credit_Model")


def test_task_override_and_refusals(tmp_path: Path) -> None:
    frame = generate_task_frame("regression", 600, seed=10)
    frame["stars"] = frame["star_rating"].fillna(3).astype(int)  # 1..5 small ints: multiclass by default
    inferred = fit_candidate(frame.drop(columns=[REGRESSION_TARGET]), "stars", name="s", hyperparameters=SMALL)
    assert inferred.manifest.task.type == "multiclass" and inferred.manifest.task.labels[0] == 1
    with pytest.raises(DataError, match="--task regression needs a numeric target"):
        fit_candidate(generate_task_frame("multiclass", 300), MULTICLASS_TARGET, name="p", task="regression")
    text = generate_task_frame("binary", 300).assign(churn=lambda f: np.where(f[TARGET] == 1, "bad", "good"))
    with pytest.raises(DataError, match=r"text labels \['bad', 'good'\]; pass --positive"):
        fit_candidate(text, TARGET, name="p")
    with pytest.raises(DataError, match="--positive 'maybe'"):
        fit_candidate(generate_task_frame("binary", 300), TARGET, name="p", positive="maybe")


def test_format_1_package_still_reads_and_verifies(packages: dict[str, TrainingResult]) -> None:
    """A format 1 manifest (binary 0/1, no task/columns/runtime, metrics without a primary) is read as before."""
    source = zipfile.ZipFile(io.BytesIO(packages["binary"].data))
    raw = json.loads(source.read(MANIFEST_NAME))
    for key in ("task", "columns", "runtime"):
        raw.pop(key)
    raw["format_version"] = 1
    raw["metrics"] = {k: raw["metrics"][k] for k in ("roc_auc", "log_loss", "lift", "holdout_rows")}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as target:
        for name in source.namelist():
            target.writestr(name, json.dumps(raw) if name == MANIFEST_NAME else source.read(name))
    package = open_package(buffer.getvalue())
    assert package.manifest.format_version == 1 and package.manifest.task.type == "binary"
    assert package.manifest.metrics.primary_metric == "roc_auc"
    assert verify_package(buffer.getvalue()).parity_rows > 0
    columns, _ = read_reference(package)
    assert load_predictor(package).predict(columns).labels[0] in (0, 1)
    raw["task"] = {"type": "binary", "labels": ["no", "yes"], "positive_label": "yes"}
    with pytest.raises(ManifestError, match="format_version 1"):
        Manifest.from_json(json.dumps(raw))


def test_manifest_refuses_inconsistent_task_metrics_and_roles(packages: dict[str, TrainingResult]) -> None:
    raw = json.loads(packages["multiclass"].manifest.to_json())
    cases = [
        ({"task": {"type": "multiclass", "labels": ["a", "b"], "positive_label": None}}, "at least 3 labels"),
        ({"task": {"type": "binary", "labels": ["a", "b"], "positive_label": "a"}}, "must be the second label"),
        ({"metrics": {**raw["metrics"], "primary_metric": "rmse", "higher_is_better": False}}, "has no value"),
        ({"metrics": {**raw["metrics"], "higher_is_better": True}}, "lower-is-better"),
        ({"columns": {**raw["columns"], "id_columns": ["monthly_spend"]}}, "cannot also be a feature"),
    ]
    for change, message in cases:
        with pytest.raises(ManifestError, match=message):
            Manifest.from_json(json.dumps({**raw, **change}))


@pytest.mark.parametrize(
    ("task", "probabilities", "values"),
    [
        (TaskSpec(type="binary", labels=("good", "bad"), positive_label="bad"), [[0.9, 0.1], [0.2, 0.8]], None),
        (TaskSpec(type="multiclass", labels=(1, 2, 3), positive_label=None), [[0.2, 0.5, 0.3], [0.7, 0.2, 0.1]], None),
        (TaskSpec(type="regression", labels=(), positive_label=None), None, [1.5, -2.25, 1e9]),
    ],
    ids=["binary", "multiclass", "regression"],
)
def test_all_rows_at_once_are_each_row_as_it_is_answered(task: TaskSpec, probabilities: Any, values: Any) -> None:
    """``Predictions.records`` (what the app answers a batch with, converted once per batch) gives exactly what
    ``record(i)`` gives row by row: the user's labels and their types, plain Python floats, the same numbers."""
    predictions = Predictions(
        task,
        probabilities=None if probabilities is None else np.asarray(probabilities, dtype=np.float32),
        values=None if values is None else np.asarray(values, dtype=np.float32),
    )
    expected = [predictions.record(i) for i in range(len(predictions))]
    assert predictions.records() == expected
    for got, want in zip(predictions.records(), expected, strict=True):
        assert [type(v) for v in got.values()] == [type(v) for v in want.values()]
        if "probabilities" in got:
            assert list(got["probabilities"]) == [str(label) for label in task.labels]
            assert all(type(p) is float for p in got["probabilities"].values())
    empty = Predictions(task, probabilities=np.empty((0, len(task.labels))), values=np.empty(0))
    assert empty.records() == []
