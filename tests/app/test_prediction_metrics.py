"""Issue #16: the app's prediction-distribution metric (contracts/prediction_metrics.py).

The real app (create_app, driven over ASGI) scores known records of each task type; the EMF line its
periodic task writes on stdout is checked against the contract, and its ScoreShift is recomputed by hand
from the answers the app gave and the package's baseline.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import AppConfig
from app.factory import create_app
from app.handlers import model_fn
from app.prediction_metrics import ScoreShift
from contracts import prediction_metrics as contract
from tests.app.conftest import TaskPackage, post_json


def _app(task_package: TaskPackage, tmp_path: Path, service: str | None = "prod-service") -> Any:
    config = AppConfig(model_dir=str(task_package.path), spool_dir=str(tmp_path / "spool"),
                       prediction_metrics_service=service)  # fmt: skip
    return create_app(config)


async def _post(app: Any, records: list[dict[str, Any]]) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        return await client.post("/predict", json=records)


def _emf_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith('{"_aws"')]


def _check_structure(line: dict[str, Any], version: int) -> None:
    (directive,) = line["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == contract.NAMESPACE
    assert directive["Dimensions"] == [[contract.SERVICE_DIMENSION]]
    assert [m["Name"] for m in directive["Metrics"]] == list(contract.METRICS)
    assert {m["Name"]: m.get("Unit") for m in directive["Metrics"]}[contract.SCORED_METRIC] == "Count"
    assert isinstance(line["_aws"]["Timestamp"], int) and line["_aws"]["Timestamp"] > 1_600_000_000_000
    # Every metric named in the directive is a top-level member (else CloudWatch extracts nothing).
    assert set(contract.METRICS) | {contract.SERVICE_DIMENSION, contract.MODEL_VERSION_PROPERTY} <= set(line)
    assert line[contract.SERVICE_DIMENSION] == "prod-service"
    assert line[contract.MODEL_VERSION_PROPERTY] == version


def _expected_shift(task_package: TaskPackage, answers: list[dict[str, Any]]) -> float:
    baseline = task_package.manifest.prediction_baseline
    assert baseline is not None
    if task_package.task == "binary":
        assert baseline.mean is not None
        return abs(sum(a["probability"] for a in answers) / len(answers) - baseline.mean)
    if task_package.task == "regression":
        assert baseline.mean is not None and baseline.std
        return abs(sum(a["value"] for a in answers) / len(answers) - baseline.mean) / baseline.std
    shares: dict[str, float] = {}
    for answer in answers:
        shares[str(answer["label"])] = shares.get(str(answer["label"]), 0.0) + 1 / len(answers)
    labels = set(shares) | set(baseline.category_fractions)
    return 0.5 * sum(abs(shares.get(k, 0.0) - baseline.category_fractions.get(k, 0.0)) for k in labels)


def test_one_line_per_period_with_the_shift_of_the_answers(task_package: TaskPackage, tmp_path: Path, capsys) -> None:
    app = _app(task_package, tmp_path)
    shift = app.service.score_shift
    assert isinstance(shift, ScoreShift)
    first, second = task_package.records[:7], task_package.records[7:20]

    async def scenario() -> list[dict[str, Any]]:
        answers: list[dict[str, Any]] = []
        for records in (first, second):  # two requests, two merged batches, one period
            response = await _post(app, records)
            assert response.status_code == 200, response.text
            answers += response.json()["predictions"]
        periodic = asyncio.create_task(shift.run(period=0.01))  # the task the app starts, with a short period
        try:
            for _ in range(1000):  # until the periodic task has emitted (and reset) the period
                if shift.count == 0:
                    break
                await asyncio.sleep(0.01)
        finally:
            periodic.cancel()
        return answers

    answers = asyncio.run(scenario())
    (line,) = _emf_lines(capsys.readouterr().out)
    _check_structure(line, task_package.manifest.version)
    assert line[contract.SCORED_METRIC] == len(first) + len(second)
    assert line[contract.SCORE_SHIFT_METRIC] == pytest.approx(_expected_shift(task_package, answers), abs=1e-6)
    # The next period starts empty: nothing scored, no line.
    assert shift.emit() is None and _emf_lines(capsys.readouterr().out) == []


def test_a_period_of_rejected_records_only_writes_no_line(task_package: TaskPackage, tmp_path: Path, capsys) -> None:
    app = _app(task_package, tmp_path)
    bad = [{"not_a_feature": 1}]
    response = asyncio.run(_post(app, bad))
    assert response.status_code == 422
    assert app.service.score_shift.emit() is None
    assert _emf_lines(capsys.readouterr().out) == []


def test_metric_off_without_the_service_name_or_without_a_baseline(
    task_package: TaskPackage, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.prediction_metrics")
    app = _app(task_package, tmp_path, service=None)
    assert app.service.score_shift is None and app.service.batcher.observe is None

    # Only this module's records: other loggers (the model load line) propagate here when an earlier test in
    # the same worker raised their level.
    def messages() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "app.prediction_metrics"]

    assert messages() == [f"prediction-distribution metric off: {contract.SERVICE_NAME_ENV} is not set"]
    caplog.clear()
    manifest = model_fn(str(task_package.path)).manifest.model_copy(update={"prediction_baseline": None})
    assert ScoreShift.from_manifest(manifest, "prod-service") is None
    (message,) = messages()
    assert "has no prediction baseline" in message


def test_service_name_comes_from_the_contract_env_var() -> None:
    assert AppConfig.from_env({contract.SERVICE_NAME_ENV: "svc-prod"}).prediction_metrics_service == "svc-prod"
    assert AppConfig.from_env({}).prediction_metrics_service is None


def test_regression_baseline_std_zero_divides_by_one() -> None:
    lines: list[str] = []
    shift = ScoreShift("regression", "s", 1, baseline_mean=10.0, baseline_std=0.0, write=lines.append)
    shift.observe([{"value": 12.0}, None, {"value": 15.0}])
    shift.emit()
    (line,) = [json.loads(x) for x in lines]
    assert line[contract.SCORE_SHIFT_METRIC] == pytest.approx(3.5) and line[contract.SCORED_METRIC] == 2


def test_the_running_app_writes_the_last_period_on_stop(trained, app_process) -> None:
    """``python -m app`` as the image runs it: the lifespan starts the periodic task and a graceful stop writes
    the period's line (nothing scored is lost between the last line and the stop)."""
    app = app_process(trained.path, env={contract.SERVICE_NAME_ENV: "prod-service"})
    status, _, body = post_json(app.url, trained.records[:5])
    assert status == 200, body
    assert app.terminate()
    (line,) = _emf_lines(app.log())
    _check_structure(line, trained.manifest.version)
    assert line[contract.SCORED_METRIC] == 5
    baseline = trained.manifest.prediction_baseline
    assert baseline is not None and baseline.mean is not None
    mean = sum(p["probability"] for p in body["predictions"]) / 5
    assert line[contract.SCORE_SHIFT_METRIC] == pytest.approx(abs(mean - baseline.mean), abs=1e-6)
