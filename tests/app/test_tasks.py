"""Issue #14 item 1 (serving side): every task type served in the user's labels, ids passed through.

Packages are trained with the repo's own training code (``retrain``) for binary, multiclass and
regression, each with an id column; the handlers are exercised exactly as the HTTP app and SageMaker
call them, and one real app process per task checks the HTTP answer, CSV, ``/model`` and capture.
"""

from __future__ import annotations

import csv
import io
import json
import math

import httpx
import numpy as np
import pytest

from app.handlers import input_fn, model_fn, output_fn, predict_fn
from app.json_codec import loads
from retrain.synthetic import ID_COLUMN
from tests.app.conftest import TaskPackage, captured_by_the_app, post_json
from tests.support.servers import wait_until


def _check_answer(task_package: TaskPackage, item: dict, record: dict) -> None:
    manifest = task_package.manifest
    assert item["uid"] and item[ID_COLUMN] == record[ID_COLUMN]
    if manifest.task.type == "binary":
        assert set(item) == {"uid", ID_COLUMN, "label", "probability", "prediction"}
        assert item["label"] in manifest.task.labels and 0 <= item["probability"] <= 1
        assert item["label"] == manifest.task.labels[int(item["probability"] >= 0.5)]
    elif manifest.task.type == "multiclass":
        assert set(item) == {"uid", ID_COLUMN, "label", "probabilities"}
        assert list(item["probabilities"]) == [str(c) for c in manifest.task.labels]
        assert math.isclose(sum(item["probabilities"].values()), 1.0, rel_tol=1e-4)
        assert item["label"] == max(item["probabilities"], key=item["probabilities"].get)
    else:
        assert set(item) == {"uid", ID_COLUMN, "value"} and math.isfinite(item["value"])


def test_single_list_and_csv_answers_per_task(task_package: TaskPackage) -> None:
    model = model_fn(task_package.path)
    records = task_package.records[:20]
    # single
    [one] = input_fn(json.dumps(records[0]), "application/json", model)
    body = loads(output_fn(predict_fn([one], model), "application/json")[0])
    _check_answer(task_package, body["predictions"][0], records[0])
    # list: the id column is passed through, never an extra feature
    prediction = predict_fn(input_fn(json.dumps(records), "application/json", model), model)
    assert prediction.status == 200, prediction.errors
    body = loads(output_fn(prediction, "application/json")[0])
    for item, record in zip(body["predictions"], records, strict=True):
        _check_answer(task_package, item, record)
    # CSV in, CSV out
    header = list(records[0])
    lines = [",".join(header)] + [",".join("" if r[k] is None else str(r[k]) for k in header) for r in records]
    parsed = input_fn("\n".join(lines) + "\n", "text/csv", model)
    payload, kind = output_fn(predict_fn(parsed, model), "text/csv")
    rows = list(csv.DictReader(io.StringIO(payload.decode())))
    assert kind == "text/csv" and len(rows) == len(records)
    assert [r[ID_COLUMN] for r in rows] == [r[ID_COLUMN] for r in records]
    task = task_package.manifest.task
    if task.type == "regression":
        assert all(math.isfinite(float(r["value"])) for r in rows)
    else:
        assert {r["label"] for r in rows} <= {str(c) for c in task.labels}
    if task.type == "multiclass":
        assert {f"p_{c}" for c in task.labels} <= set(rows[0])


def test_capture_record_carries_the_task_output_and_the_ids(task_package: TaskPackage) -> None:
    records = task_package.records[:5]
    captured = captured_by_the_app(task_package, 5, "local")
    assert [c["ids"] for c in captured] == [{ID_COLUMN: r[ID_COLUMN]} for r in records]
    expected = {"binary": {"label", "probability", "prediction"}, "multiclass": {"label", "probabilities"}}
    assert set(captured[0]["output"]) == expected.get(task_package.task, {"value"})


def test_labels_follow_the_probabilities_of_the_estimator(task_package: TaskPackage) -> None:
    """The ONNX answer and the skops estimator agree on labels and probabilities (the user's labels)."""
    onnx = predict_fn(task_package.records[:50], model_fn(task_package.path))
    skops = predict_fn(task_package.records[:50], model_fn(task_package.path, runtime="skops"))
    for a, b in zip(onnx.outputs, skops.outputs, strict=True):
        assert a is not None and b is not None
        if "value" in a:
            assert a["value"] == pytest.approx(b["value"], rel=1e-4, abs=1e-3)
        elif "probabilities" in a:
            assert a["label"] == b["label"]
            assert np.allclose(list(a["probabilities"].values()), list(b["probabilities"].values()), atol=1e-4)
        else:  # binary
            assert a["label"] == b["label"]
            assert a["probability"] == pytest.approx(b["probability"], abs=1e-4)


def test_http_answer_model_endpoint_and_capture_per_task(task_package: TaskPackage, app_process, tmp_path) -> None:
    db = tmp_path / "capture.db"
    app = app_process(task_package.path, env={"CAPTURE_DB_URL": f"sqlite:///{db}", "CAPTURE_FLUSH_SECONDS": "0.05"})
    records = task_package.records[:10]
    status, _, body = post_json(app.url, records)
    assert status == 200, body
    for item, record in zip(body["predictions"], records, strict=True):
        _check_answer(task_package, item, record)
    info = httpx.get(f"{app.url}/model").json()
    assert info["task"]["type"] == task_package.task and info["columns"]["id_columns"] == [ID_COLUMN]
    schema = httpx.get(f"{app.url}/openapi.json").json()
    answer = json.dumps(schema["components"]["schemas"])
    assert {"binary": "probability", "multiclass": "probabilities", "regression": "value"}[task_package.task] in answer
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{db}")

    def stored() -> int:
        try:
            with engine.connect() as connection:
                return connection.execute(sa.text("select count(*) from prediction_capture")).scalar_one()
        except sa.exc.OperationalError:
            return 0

    wait_until(lambda: stored() == len(records), 30, "capture rows")
    with engine.connect() as connection:
        rows = connection.execute(sa.text("select input, output, prediction, probability from prediction_capture"))
        first = rows.first()
    engine.dispose()
    output = json.loads(first.output)
    assert (
        set(output)
        == {
            "binary": {"label", "probability", "prediction"},
            "multiclass": {"label", "probabilities"},
            "regression": {"value"},
        }[task_package.task]
    )
    assert (first.probability is None) == (task_package.task != "binary")
