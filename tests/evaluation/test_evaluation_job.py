"""The Evaluate stage against moto and a real stage app on loopback: a better, an equal and a worse candidate,
replay of captured payloads, the smoke test catching a stage that serves the wrong model, and the CLI."""

from __future__ import annotations

import json
from typing import Any

import pytest

from evaluation.__main__ import main
from evaluation.job import EvaluationJob
from evaluation.settings import EXIT_CONFIG, EXIT_PASSED, EXIT_REJECTED, ConfigError, EvaluationSettings
from model_package.archive import open_package
from tests.evaluation.conftest import Models, as_version, make_champion, put_capture, put_labelled, recent

# The comparisons' bounds for these models (thresholds are stack configuration; these are looser on
# agreement than the defaults because the "better" model is measurably different from its champion).
BOUNDS = {"min_agreement": 0.8, "max_score_psi": 0.25, "max_segment_shift": 0.15, "max_p99_latency_ms": 5000.0}


def _settings(buckets: tuple[str, str], stage_url: str, **changes: Any) -> EvaluationSettings:
    return EvaluationSettings(
        model_bucket=buckets[0], capture_bucket=buckets[1], stage_url=stage_url, git_sha="0123456789abcdef",
        pipeline_execution_id="exec-1", smoke_requests=10, **{**BOUNDS, **changes},
    ).validated()  # fmt: skip


def _run(s3: Any, settings: EvaluationSettings, candidate: bytes, tmp_path: Any) -> Any:
    path = tmp_path / "candidate.zip"
    path.write_bytes(candidate)
    return EvaluationJob(settings, s3, str(path)).run()


def _report(s3: Any, bucket: str, key: str) -> dict[str, Any]:
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def _check(result: Any, name: str) -> Any:
    return next(c for c in result.checks if c.name == name)


def _scenario(s3: Any, buckets: tuple[str, str], champion: bytes, candidate: bytes) -> None:
    make_champion(s3, buckets[0], champion)
    put_labelled(s3, buckets[0])
    put_capture(s3, buckets[1], open_package(champion), recent(2), rows=600, seed=21)


def test_better_candidate_passes(
    s3: Any, buckets: tuple[str, str], models: Models, stage_app: Any, tmp_path: Any
) -> None:
    champion, candidate = as_version(models.noisy, 1), as_version(models.clean, 2)
    _scenario(s3, buckets, champion, candidate)
    stage = stage_app(candidate)
    result = _run(s3, _settings(buckets, stage.url), candidate, tmp_path)
    assert result.verdict == "pass", result.summary
    assert result.exit_code == EXIT_PASSED
    gate = _check(result, "labelled.gate")
    assert gate.status == "pass" and gate.value > gate.threshold  # candidate AUC above the champion's
    assert _check(result, "smoke.model_version").status == "pass"
    assert _check(result, "smoke.answers").value <= 1e-4
    report = _report(s3, buckets[0], result.json_key)
    assert report["verdict"] == "pass"
    assert report["candidate"]["version"] == 2 and report["champion"]["version"] == 1
    assert report["sections"]["labelled"]["rows"] > 0
    html = s3.get_object(Bucket=buckets[0], Key=result.html_key)["Body"].read().decode()
    assert "Verdict: PASS" in html and "labelled.gate" in html


def test_equal_candidate_passes_with_full_agreement(
    s3: Any, buckets: tuple[str, str], models: Models, stage_app: Any, tmp_path: Any
) -> None:
    champion, candidate = as_version(models.clean, 1), as_version(models.clean, 2)
    _scenario(s3, buckets, champion, candidate)
    stage = stage_app(candidate)
    result = _run(s3, _settings(buckets, stage.url), candidate, tmp_path)
    assert result.verdict == "pass", result.summary
    replay = result.report["sections"]["replay"]
    assert replay["agreement"] == 1.0
    assert replay["score_psi"] == pytest.approx(0.0, abs=1e-12)
    gate = _check(result, "labelled.gate")
    assert gate.value == pytest.approx(gate.threshold)  # same model, same rows: the same AUC


def test_worse_candidate_fails_and_the_report_says_why(
    s3: Any, buckets: tuple[str, str], models: Models, stage_app: Any, tmp_path: Any
) -> None:
    champion, candidate = as_version(models.clean, 1), as_version(models.bad, 2)
    _scenario(s3, buckets, champion, candidate)
    stage = stage_app(candidate)
    result = _run(s3, _settings(buckets, stage.url), candidate, tmp_path)
    assert result.verdict == "fail"
    assert result.exit_code == EXIT_REJECTED
    assert _check(result, "labelled.gate").status == "fail"
    assert _check(result, "replay.agreement").status == "fail"
    report = _report(s3, buckets[0], result.json_key)
    assert report["verdict"] == "fail"
    assert any("candidate roc_auc" in reason for reason in report["reasons"]), report["reasons"]
    assert any("same decision" in reason for reason in report["reasons"]), report["reasons"]
    assert result.summary.startswith("FAIL: churn v2 vs champion v1")
    assert "labelled.gate" in result.summary or "replay" in result.summary
    html = s3.get_object(Bucket=buckets[0], Key=result.html_key)["Body"].read().decode()
    assert "Verdict: FAIL" in html


def test_replay_reads_only_captured_payloads_in_the_window(
    s3: Any, buckets: tuple[str, str], models: Models, stage_app: Any, tmp_path: Any
) -> None:
    champion, candidate = as_version(models.clean, 1), as_version(models.clean, 2)
    make_champion(s3, buckets[0], champion)
    put_capture(s3, buckets[1], open_package(champion), recent(3), rows=120, seed=31)
    put_capture(s3, buckets[1], open_package(champion), recent(30), rows=80, seed=32)  # outside a 24 h window
    stage = stage_app(candidate)
    result = _run(s3, _settings(buckets, stage.url, replay_window_hours=24, min_segment_rows=10), candidate, tmp_path)
    replay = result.report["sections"]["replay"]
    assert replay["rows"] == 120
    assert {s["segment"].split("=")[0] for s in replay["segments"]} == {"campaign_id"}
    assert sum(s["rows"] for s in replay["segments"]) <= 120
    # No labelled data in this bucket: that comparison is skipped, not failed, and the report says so.
    assert _check(result, "labelled.gate").status == "skipped"
    assert result.verdict == "pass", result.summary


def test_smoke_fails_when_the_stage_serves_another_model(
    s3: Any, buckets: tuple[str, str], models: Models, stage_app: Any, tmp_path: Any
) -> None:
    """The stage deploy did not take (it still serves the champion): the approver must not see a PASS."""
    champion, candidate = as_version(models.clean, 1), as_version(models.noisy, 2)
    make_champion(s3, buckets[0], champion)
    stage = stage_app(champion)
    result = _run(s3, _settings(buckets, stage.url), candidate, tmp_path)
    assert _check(result, "smoke.model_version").status == "fail"
    assert _check(result, "smoke.answers").status == "fail"
    assert result.verdict == "fail"


def test_first_model_without_champion_capture_or_labels_is_smoke_tested_on_its_reference_rows(
    s3: Any, buckets: tuple[str, str], models: Models, stage_app: Any, tmp_path: Any
) -> None:
    candidate = as_version(models.clean, 1)
    stage = stage_app(candidate)
    result = _run(s3, _settings(buckets, stage.url), candidate, tmp_path)
    assert result.verdict == "pass", result.summary
    assert result.report["champion"] is None
    assert _check(result, "replay").status == "skipped"
    assert result.report["sections"]["smoke"]["rows"] > 0


def test_cli_writes_the_pipeline_variables(  # noqa: PLR0917 (pytest fixtures)
    s3: Any, buckets: tuple[str, str], models: Models, stage_app: Any, tmp_path: Any, moto_server: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    champion, candidate = as_version(models.clean, 1), as_version(models.bad, 2)
    _scenario(s3, buckets, champion, candidate)
    stage = stage_app(candidate)
    path = tmp_path / "candidate.zip"
    path.write_bytes(candidate)
    env_out = tmp_path / "evaluation.env"
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint_url)
    for key, value in {"MODEL_BUCKET": buckets[0], "CAPTURE_BUCKET": buckets[1], "STAGE_URL": stage.url,
                       "EVALUATION_SMOKE_REQUESTS": "5", "EVALUATION_MIN_AGREEMENT": "0.8",
                       "PIPELINE_EXECUTION_ID": "0f1e2d3c-aaaa-bbbb-cccc-000011112222"}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    code = main(["run", "--candidate", str(path), "--env-out", str(env_out)])
    assert code == EXIT_REJECTED
    exported = env_out.read_text()
    assert "export EVAL_VERDICT=fail" in exported
    key = "reports/evaluation/0f1e2d3c-aaaa-bbbb-cccc-000011112222/report.html"
    assert f"export EVAL_REPORT_URI=s3://{buckets[0]}/{key}" in exported
    url = f"https://us-east-1.console.aws.amazon.com/s3/object/{buckets[0]}?region=us-east-1&prefix={key}"
    assert f"export EVAL_REPORT_URL='{url}'" in exported
    assert "Verdict: FAIL" in s3.get_object(Bucket=buckets[0], Key=key)["Body"].read().decode()


def test_bad_settings_name_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"STAGE_URL='ftp://x'.*http"):
        EvaluationSettings.from_env({"MODEL_BUCKET": "b", "STAGE_URL": "ftp://x"})
    with pytest.raises(ConfigError, match=r"EVALUATION_MIN_AGREEMENT=1\.5 must be between 0 and 1"):
        EvaluationSettings.from_env({"MODEL_BUCKET": "b", "STAGE_URL": "http://x", "EVALUATION_MIN_AGREEMENT": "1.5"})
    assert main(["run", "--candidate", "x", "--stage-url", "not-a-url"]) == EXIT_CONFIG


def test_labelled_rows_of_one_class_are_reported_as_skipped_not_a_crash(models: Models) -> None:
    from evaluation.checks import labelled_comparison
    from jobs_common.gate import GatePolicy
    from model_package.runtime import load_predictor
    from retrain.synthetic import generate_churn

    frame = generate_churn(300, seed=9)
    frame["churn"] = 0
    candidate = (models.clean, load_predictor(models.clean))
    section = labelled_comparison(GatePolicy(), candidate, candidate, frame, "s3://b/training-data/")
    (check,) = section.checks
    assert check.status == "skipped" and "only one target class" in check.reason
