"""Readers and data checks: what counts as usable training data, and what each rejection says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jobs_common.errors import DataError
from jobs_common.gate import GatePolicy, decide
from jobs_common.metrics import lift
from jobs_common.readers import LocalFileReader
from model_package.manifest import Metrics
from retrain.datacheck import DataRequirements, check_training_frame
from retrain.schema import infer_features
from retrain.synthetic import generate_churn


def test_generator_is_deterministic_and_has_signal() -> None:
    a, b = generate_churn(3000, seed=3), generate_churn(3000, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(generate_churn(3000, seed=4))
    assert set(a["churn"].unique()) == {0, 1} and 0.2 < a["churn"].mean() < 0.7
    assert a["star_rating"].dropna().between(1, 5).all() and a["campaign_id"].isna().any()
    # Real signal: unhappy customers churn more.
    low = a["satisfaction_score"] < a["satisfaction_score"].median()
    assert a.loc[low, "churn"].mean() > a.loc[~low, "churn"].mean() + 0.1
    shifted = generate_churn(3000, seed=3, monthly_spend=30.0)
    assert shifted["monthly_spend"].mean() > a["monthly_spend"].mean() + 25
    with pytest.raises(ValueError, match="unknown shift"):
        generate_churn(10, colour=1.0)


def test_csv_and_parquet_read_the_same_features(tmp_path: Path) -> None:
    frame = generate_churn(300, seed=1)
    frame.to_csv(tmp_path / "d.csv", index=False)
    frame.to_parquet(tmp_path / "d.parquet", index=False)
    from_csv = LocalFileReader(tmp_path / "d.csv").read()
    from_parquet = LocalFileReader(tmp_path / "d.parquet").read()
    exclude = ["acquisition_date"]
    assert infer_features(from_csv.frame, "churn", exclude=exclude) == infer_features(
        from_parquet.frame, "churn", exclude=exclude
    )
    assert from_csv.sha256 != from_parquet.sha256  # the file's identity, for lineage


def test_inference_respects_flags() -> None:
    frame = pd.DataFrame({"zip": [1010, 2020, np.nan, 1010], "x": [0.5, 1.5, 2.5, 3.5], "y": [0, 1, 0, 1]})
    inferred = {f.name: f for f in infer_features(frame, "y")}
    assert inferred["zip"].dtype == "int" and inferred["x"].dtype == "float"
    forced = {f.name: f for f in infer_features(frame, "y", categorical=["zip"])}
    assert forced["zip"].dtype == "string" and forced["zip"].categories == ("1010", "2020")
    with pytest.raises(DataError, match="not in the data"):
        infer_features(frame, "y", categorical=["nope"])


def test_every_problem_is_named_at_once() -> None:
    frame = generate_churn(600, seed=2, days=1).drop(columns=["campaign_id"])
    frame["monthly_spend"] = frame["monthly_spend"].astype(object)
    frame.loc[3, "monthly_spend"] = "lots"
    champion_features = infer_features(generate_churn(300), "churn", exclude=["acquisition_date"])
    with pytest.raises(DataError) as info:
        check_training_frame(
            frame,
            DataRequirements("churn", min_rows=1000, time_column="acquisition_date", features=champion_features),
        )
    message = str(info.value)
    assert "600 rows; at least 1000" in message
    assert "missing: ['campaign_id']" in message
    assert "'monthly_spend' must be numeric" in message and "lots" in message
    assert "one day of history" in message


def test_null_heavy_and_single_class_data_are_rejected() -> None:
    frame = generate_churn(600, seed=2)
    frame.loc[: len(frame) * 0.6, "engagement_score"] = np.nan
    frame["churn"] = 1
    with pytest.raises(DataError) as info:
        check_training_frame(frame, DataRequirements("churn", min_rows=10, time_column="acquisition_date"))
    assert "'engagement_score' is 60% null" in str(info.value)
    assert "has a single class (1)" in str(info.value)


def _metrics(roc_auc: float, log_loss: float = 0.5, lift_value: float = 2.0) -> Metrics:
    return Metrics(roc_auc=roc_auc, log_loss=log_loss, lift=lift_value, holdout_rows=100)


def test_gate_directions_tolerance_and_floor() -> None:
    auc = GatePolicy("roc_auc", tolerance=0.01, floor=0.6)
    assert decide(auc, _metrics(0.75), None).accepted
    assert not decide(auc, _metrics(0.55), None).accepted
    assert decide(auc, _metrics(0.745), _metrics(0.75)).accepted  # within tolerance
    assert not decide(auc, _metrics(0.73), _metrics(0.75)).accepted
    loss = GatePolicy("log_loss", tolerance=0.01, floor=0.6)
    assert decide(loss, _metrics(0.7, log_loss=0.505), _metrics(0.7, log_loss=0.5)).accepted
    assert not decide(loss, _metrics(0.7, log_loss=0.52), _metrics(0.7, log_loss=0.5)).accepted
    assert not decide(loss, _metrics(0.7, log_loss=0.65), None).accepted  # the floor bounds loss from above
    with pytest.raises(ValueError, match="accuracy"):
        GatePolicy("accuracy")


def test_lift_is_top_decile_rate_over_base_rate() -> None:
    y = np.array([1] * 10 + [0] * 90)
    perfect = np.linspace(1, 0, 100)
    assert lift(y, perfect) == pytest.approx(10.0)
    assert lift(y, np.zeros(100)) == pytest.approx(lift(y, np.zeros(100)))  # deterministic under ties


def test_train_cli_on_any_csv_with_text_labels(tmp_path: Path) -> None:
    from retrain.__main__ import main

    frame = generate_churn(400, seed=5)
    frame["churn"] = frame["churn"].map({1: "yes", 0: "no"})
    frame["region"] = np.where(frame["tenure_months"] > 20, "north", "south")
    frame.drop(columns=["acquisition_date"]).to_csv(tmp_path / "any.csv", index=False)
    out = tmp_path / "m.zip"
    assert main(["train", "--data", str(tmp_path / "any.csv"), "--target", "churn", "--out", str(out)]) == 7
    assert not out.exists()
    args = ["train", "--data", str(tmp_path / "any.csv"), "--target", "churn", "--positive", "yes", "--out", str(out)]
    assert main([*args, "--categorical", "star_rating", "--name", "any-model"]) == 0
    from model_package.archive import open_package

    manifest = open_package(out).manifest
    assert manifest.name == "any-model" and manifest.training_data.time_column is None
    assert manifest.feature("region").dtype == "string" and manifest.feature("star_rating").dtype == "string"
    assert "stratified" in manifest.hyperparameters["holdout"]
