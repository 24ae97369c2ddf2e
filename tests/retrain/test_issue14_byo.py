"""Issue 14: bring your own model. ONNX through skl2onnx / onnxmltools with the parity check, skops for a
custom transformer (trusted types recorded and shown by verify), hyperparameters from a file, refit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from contracts.exit_codes import ExitCode
from jobs_common.errors import DataError, UsageError
from jobs_common.reference import read_reference
from model_package.archive import ONNX_NAME, open_package
from model_package.errors import PackageError
from model_package.runtime import load_predictor, load_skops_estimator
from retrain import examples
from retrain.__main__ import main
from retrain.api import load_factory, package_model
from retrain.synthetic import ID_COLUMN, MULTICLASS_TARGET, REGRESSION_TARGET, TARGET, generate_task_frame
from retrain.training import fit_candidate
from retrain.verify import PARITY_TOLERANCE, verify_package


@pytest.fixture(scope="module")
def binary_frame() -> Any:
    return generate_task_frame("binary", 800, seed=21, with_id=True)


@pytest.mark.parametrize(
    ("factory", "estimator", "converter"),
    [
        ("logistic_regression", "LogisticRegression", "skl2onnx"),
        ("hist_gradient_boosting", "HistGradientBoostingClassifier", "skl2onnx"),
        ("lightgbm", "LGBMClassifier", "onnxmltools (lightgbm)"),
        ("xgboost", "XGBClassifier", "onnxmltools (xgboost)"),
    ],
)
def test_byo_estimators_convert_to_onnx_with_parity(
    binary_frame: Any, factory: str, estimator: str, converter: str
) -> None:
    result = package_model(
        getattr(examples, factory)(), binary_frame, target=TARGET, name=f"byo-{factory.replace('_', '-')}",
        id_columns=[ID_COLUMN], time_column="acquisition_date",
    )  # fmt: skip
    manifest = result.manifest
    assert manifest.runtime.format == "onnx" and manifest.runtime.converter == converter
    assert manifest.hyperparameters["pipeline"] == "custom" and manifest.hyperparameters["estimator"] == estimator
    assert ONNX_NAME in manifest.files
    checked = verify_package(result.data)
    assert checked.parity_rows > 100 and checked.max_abs_diff <= PARITY_TOLERANCE
    assert manifest.metrics.roc_auc is not None and manifest.metrics.roc_auc > 0.65


@pytest.mark.parametrize(
    ("task", "factory"),
    [("regression", "lightgbm_regressor"), ("regression", "xgboost_regressor"), ("multiclass", "lightgbm")],
)
def test_byo_boosters_for_other_tasks(task: str, factory: str) -> None:
    target = {"multiclass": MULTICLASS_TARGET, "regression": REGRESSION_TARGET}[task]
    frame = generate_task_frame(task, 800, seed=22)
    result = package_model(
        getattr(examples, factory)(), frame, target=target, name="byo", time_column="acquisition_date"
    )
    assert result.manifest.task.type == task and result.manifest.runtime.format == "onnx"
    assert verify_package(result.data).max_abs_diff <= PARITY_TOLERANCE


def test_custom_transformer_falls_back_to_skops(binary_frame: Any, capsys: Any) -> None:
    result = package_model(
        examples.ratio_pipeline(), binary_frame, target=TARGET, name="ratios", id_columns=[ID_COLUMN],
        time_column="acquisition_date",
    )  # fmt: skip
    manifest = result.manifest
    assert manifest.runtime.format == "skops" and manifest.runtime.converter.startswith("none: ")
    assert "retrain.examples.NumericRatios" in manifest.runtime.trusted_types
    assert ONNX_NAME not in manifest.files
    package = open_package(result.data)
    with pytest.raises(PackageError, match=r"is a skops package.*\(requirements/jobs\.txt\)"):
        load_predictor(package, runtime="onnx")
    columns, _ = read_reference(package)
    assert len(load_predictor(package, runtime="skops").predict(columns)) == len(columns[manifest.feature_names[0]])
    assert main(["verify", _write(result.data)]) == ExitCode.OK
    assert "trusted types: retrain.examples.NumericRatios" in capsys.readouterr().out


def _write(data: bytes, path: Path | None = None) -> str:
    import tempfile

    target = path or Path(tempfile.mkdtemp()) / "model.zip"
    target.write_bytes(data)
    return str(target)


def test_untrusted_type_not_in_manifest_is_refused(binary_frame: Any) -> None:
    """The trusted list is the manifest's: a skops file needing a type the manifest does not list is refused."""
    result = package_model(
        examples.ratio_pipeline(), binary_frame, target=TARGET, name="ratios", id_columns=[ID_COLUMN]
    )
    package = open_package(result.data)
    bare = package.manifest.model_copy(
        update={"runtime": package.manifest.runtime.model_copy(update={"trusted_types": ()})}
    )
    tampered = type(package)(manifest=bare, files=package.files, source="tampered")
    with pytest.raises(PackageError, match="not trusted"):
        load_skops_estimator(tampered)


def test_format_onnx_refuses_without_converter(binary_frame: Any) -> None:
    with pytest.raises(DataError, match="--format onnx: the pipeline cannot be converted"):
        package_model(
            examples.ratio_pipeline(),
            binary_frame,
            target=TARGET,
            name="r",
            id_columns=[ID_COLUMN],
            model_format="onnx",
        )


def test_cli_estimator_and_params_file(tmp_path: Path, binary_frame: Any, capsys: Any) -> None:
    data = tmp_path / "train.csv"
    binary_frame.to_csv(data, index=False)
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"n_estimators": 37, "num_leaves": 7}))
    out = tmp_path / "model.zip"
    argv = ["--log-level", "WARNING", "train", "--data", str(data), "--target", TARGET, "--out", str(out),
            "--id-columns", ID_COLUMN, "--time-column", "acquisition_date", "--name", "lgbm"]  # fmt: skip
    assert main([*argv, "--estimator", "retrain.examples:lightgbm", "--params", str(params)]) == ExitCode.OK
    manifest = open_package(out).manifest
    assert manifest.hyperparameters["params"]["n_estimators"] == 37
    assert manifest.hyperparameters["params"]["num_leaves"] == 7
    assert "onnx (onnxmltools (lightgbm))" in capsys.readouterr().out
    assert main([*argv, "--estimator", "retrain.examples:nothing_here"]) == ExitCode.USAGE
    assert "has no callable 'nothing_here'" in capsys.readouterr().err
    params.write_text(json.dumps({"no_such_param": 1}))
    assert main([*argv, "--estimator", "retrain.examples:lightgbm", "--params", str(params)]) == ExitCode.USAGE
    assert "no_such_param" in capsys.readouterr().err
    with pytest.raises(UsageError, match="MODULE:FACTORY"):
        load_factory("retrain.examples")


def test_refit_keeps_the_brought_pipeline(binary_frame: Any) -> None:
    """The retrain job refits the champion's pipeline (here an XGBoost one) with its hyperparameters."""
    first = package_model(
        examples.xgboost(), binary_frame, target=TARGET, name="xgb", id_columns=[ID_COLUMN], params={"max_depth": 3}
    )
    champion = open_package(first.data)
    refit = fit_candidate(
        generate_task_frame("binary", 800, seed=23, with_id=True), TARGET, name="xgb", version=2,
        champion_estimator=load_skops_estimator(champion), champion=champion.manifest,
    )  # fmt: skip
    assert refit.manifest.hyperparameters["pipeline"] == "refit"
    assert refit.manifest.hyperparameters["estimator"] == "XGBClassifier"
    assert refit.manifest.hyperparameters["params"]["max_depth"] == 3
    assert refit.manifest.columns.id_columns == (ID_COLUMN,) and refit.manifest.runtime.format == "onnx"
