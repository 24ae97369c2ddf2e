"""Issue #14 item 1 (batch side): output columns per task, id and pass-through columns carried through."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from inference.job import InferenceJob
from jobs_common.columns import feature_columns
from model_package import open_package, write_atomically
from model_package.runtime import load_predictor
from model_package.validation import SchemaValidator
from retrain.synthetic import ID_COLUMN, MULTICLASS_TARGET, REGRESSION_TARGET, TARGET, generate_task_frame
from retrain.training import train_package

TARGETS = {"binary": TARGET, "multiclass": MULTICLASS_TARGET, "regression": REGRESSION_TARGET}
APPENDED = {
    "binary": ["label", "probability", "prediction"],
    "multiclass": ["label", "probability_basic", "probability_plus", "probability_premium"],
    "regression": ["value"],
}


@pytest.fixture(scope="module", params=["binary", "multiclass", "regression"])
def task_package(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    task = request.param
    frame = generate_task_frame(task, 2000, seed=0, with_id=True)
    _, data = train_package(
        frame, TARGETS[task], name=f"{task}-b", id_columns=[ID_COLUMN], created_at=datetime(2026, 5, 1, tzinfo=UTC)
    )
    path = tmp_path_factory.mktemp(task) / "model.zip"
    write_atomically(path, data)
    return task, open_package(path)


def test_output_columns_per_task_with_ids_passed_through(task_package, tmp_path: Path) -> None:
    task, package = task_package
    frame = generate_task_frame(task, 500, seed=31, with_id=True).drop(columns=[TARGETS[task]])
    frame["region"] = "north"  # a pass-through column the model never saw
    source = tmp_path / "in.csv"
    frame.to_csv(source, index=False)
    output = tmp_path / "scores.parquet"
    result = InferenceJob(package, load_predictor(package), chunk_rows=128).run(str(source), str(output))
    scored = pq.read_table(output).to_pandas()
    assert list(scored.columns) == [*frame.columns, *APPENDED[task]]
    assert result.rows_out + result.rows_rejected == 500
    kept = frame[frame[ID_COLUMN].isin(scored[ID_COLUMN])]
    assert scored[ID_COLUMN].tolist() == kept[ID_COLUMN].tolist() and (scored["region"] == "north").all()
    columns = (
        SchemaValidator(package.manifest.features)
        .validate_columns(feature_columns(kept, package.manifest.features))
        .columns
    )
    expected = load_predictor(package).predict(columns)
    if task == "regression":
        np.testing.assert_allclose(scored["value"].to_numpy(), expected.values, rtol=1e-6)
    else:
        assert scored["label"].tolist() == [str(v) if task == "multiclass" else v for v in expected.labels]
    if task == "multiclass":
        probabilities = scored[APPENDED[task][1:]].to_numpy()
        np.testing.assert_allclose(probabilities, expected.probabilities, rtol=1e-6)
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
