"""Issue #14 item 1 (monitoring side): drift, concept drift and summary for every task type.

Packages trained with the repo's own training code; production samples drawn from the same generator
(no drift expected), with a covariate shift (prediction drift expected) and with the signal removed
(``concept=0``: concept drift expected once labels arrive).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from model_package import open_package, write_atomically
from monitor.__main__ import main
from retrain.synthetic import ID_COLUMN, MULTICLASS_TARGET, REGRESSION_TARGET, TARGET, generate_task_frame
from retrain.training import train_package

TARGETS = {"binary": TARGET, "multiclass": MULTICLASS_TARGET, "regression": REGRESSION_TARGET}


@pytest.fixture(scope="module", params=["binary", "multiclass", "regression"])
def task_model(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    task = request.param
    frame = generate_task_frame(task, 3000, seed=0, with_id=True)
    _, data = train_package(
        frame, TARGETS[task], name=f"{task}-m", id_columns=[ID_COLUMN], created_at=datetime(2026, 5, 1, tzinfo=UTC)
    )
    path = tmp_path_factory.mktemp(task) / "model.zip"
    write_atomically(path, data)
    return task, path


def _drift(model: Path, frame, tmp_path: Path, name: str, capsys) -> dict:
    data = tmp_path / f"{name}.csv"
    frame.to_csv(data, index=False)
    out = tmp_path / name
    assert main(["drift", "--model", str(model), "--data", str(data), "--out", str(out), "--no-adversarial"]) == 0
    capsys.readouterr()
    return json.loads((out / "report.json").read_text())


def test_fresh_sample_no_drift_and_concept_judged_with_the_task_metrics(task_model, tmp_path: Path, capsys) -> None:
    task, model = task_model
    report = _drift(model, generate_task_frame(task, 1500, seed=21, with_id=True), tmp_path, "fresh", capsys)
    assert report["prediction"] is not None and report["prediction"]["drift"] is False, report["prediction"]
    expected_test = {"binary": "probability", "multiclass": "label", "regression": "value"}[task]
    assert report["prediction"]["name"] == expected_test
    concept = report["concept"]
    assert concept["evaluated"] is True and concept["drift"] is False, concept
    metrics = {"binary": "roc_auc", "multiclass": "macro_f1", "regression": "rmse"}[task]
    assert concept["live"][metrics] is not None and concept["holdout"][metrics] is not None


def test_removed_signal_is_concept_drift_for_every_task(task_model, tmp_path: Path, capsys) -> None:
    task, model = task_model
    frame = generate_task_frame(task, 1500, seed=22, with_id=True, concept=0.0)
    report = _drift(model, frame, tmp_path, "concept", capsys)
    assert report["concept"]["drift"] is True, report["concept"]


def test_shifted_inputs_move_the_prediction_distribution(task_model, tmp_path: Path, capsys) -> None:
    task, model = task_model
    frame = generate_task_frame(task, 1500, seed=23, with_id=True, monthly_spend=60.0, tenure_months=30.0)
    report = _drift(model, frame, tmp_path, "shift", capsys)
    assert report["prediction"]["drift"] is True, report["prediction"]


def test_labels_file_in_the_users_labels_joins_capture(task_model, tmp_path: Path, capsys) -> None:
    """Capture as the app writes it (per-task output) plus a labels table in the user's labels."""
    from app.handlers import model_fn, predict_fn
    from tests.app.conftest import _records

    task, model = task_model
    package = open_package(model)
    frame = generate_task_frame(task, 400, seed=24, with_id=True)
    loaded = model_fn(model)
    records = [{ID_COLUMN: c, **r} for c, r in zip(frame[ID_COLUMN], _records(frame, package.manifest), strict=True)]
    prediction = predict_fn(records, loaded)
    capture = tmp_path / "capture.jsonl"
    labels = tmp_path / "labels.csv"
    with capture.open("w") as handle:
        for i, (uid, output) in enumerate(zip(prediction.uids, prediction.outputs, strict=True)):
            if output is None:
                continue
            line = {
                "uid": uid,
                "time": f"2026-06-01T00:{i // 60:02d}:{i % 60:02d}+00:00",
                "model_name": package.manifest.name,
                "model_version": package.manifest.version,
                "input": records[i],
                "output": output,
                "latency_ms": 1.0,
                "ids": {ID_COLUMN: records[i][ID_COLUMN]},
            }
            handle.write(json.dumps(line) + "\n")
    ok = [i for i, o in enumerate(prediction.outputs) if o is not None]
    target = frame[TARGETS[task]].tolist()
    labels.write_text("uid,label\n" + "".join(f"{prediction.uids[i]},{target[i]}\n" for i in ok))
    out = tmp_path / "out"
    argv = ["drift", "--model", str(model), "--data", str(capture), "--labels", str(labels), "--out", str(out)]
    assert main([*argv, "--no-adversarial"]) == 0
    capsys.readouterr()
    report = json.loads((out / "report.json").read_text())
    assert report["concept"]["evaluated"] is True and report["concept"]["drift"] is False, report["concept"]
    assert report["prediction"]["drift"] is False
    assert ID_COLUMN not in json.dumps(report["violations"])  # an id column is a role, not an extra feature

    assert (
        main(
            [
                "summary",
                "--data",
                str(capture),
                "--out",
                str(tmp_path / "s"),
                "--now",
                "2026-06-01T00:10:00Z",
                "--window-minutes",
                "20",
            ]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["count"] == len(ok) and summary["task"] == task
    if task == "multiclass":
        assert abs(sum(summary["label_share"].values()) - 1) < 1e-9
        assert set(summary["label_share"]) <= {str(c) for c in package.manifest.task.labels}
    elif task == "regression":
        assert summary["mean_value"] is not None
    else:
        assert summary["mean_probability"] is not None


def test_sensitivity_runs_for_every_task_with_its_loss(task_model, tmp_path: Path, capsys) -> None:
    """Labels in the user's own labels (text plans for multiclass); the table ranks harm by the task's loss."""
    task, model = task_model
    data = tmp_path / "holdout.csv"
    generate_task_frame(task, 600, seed=25, with_id=True).to_csv(data, index=False)
    out = tmp_path / "sens"
    assert main(["sensitivity", "--model", str(model), "--data", str(data), "--out", str(out)]) == 0
    capsys.readouterr()
    rows = json.loads((out / "sensitivity.json").read_text())["rows"]
    loss = "rmse" if task == "regression" else "log_loss"
    assert rows[0]["scenario"] == "as is" and rows[0][f"{loss}_change_pct"] == 0.0
    assert len(rows) > 5 and all(r[loss] > 0 for r in rows)
    # a 10 % shift of the most harmful feature changes the loss: the study measures something
    assert max(abs(r[f"{loss}_change_pct"]) for r in rows[1:]) > 0.1
