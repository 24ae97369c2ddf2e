"""evaluation/buildspec.yml's build phase run the way CodeBuild runs it (tests/pipeline/test_buildspec_run.py's
harness), against moto and a real stage app: a failing candidate fails the action with the report's summary,
a passing one exports the variables the Approval action shows."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import yaml

from jobs_common import evaluation_contract as contract
from model_package import extract_package, open_package
from tests.evaluation.conftest import Models, as_version, make_champion, put_capture, put_labelled, recent
from tests.pipeline.test_buildspec_run import run_buildspec

ROOT = Path(__file__).resolve().parents[2]
SPEC = yaml.safe_load((ROOT / "evaluation" / "buildspec.yml").read_text())
EXECUTION = "6a7b8c9d-0000-1111-2222-333344445555"


def _run(tmp_path: Path, endpoint: str, buckets: tuple[str, str], candidate: bytes, stage_url: str) -> Any:
    src = tmp_path / "src"
    src.mkdir()
    for package in ("contracts", "evaluation", "jobs_common", "model_package", "alerting", "app"):
        (src / package).symlink_to(ROOT / package)
    work = tmp_path / "work"
    work.mkdir()
    (work / "calls.log").touch()
    model_dir = extract_package(open_package(candidate), work / "ModelSource")
    keep = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_CONFIG_FILE")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    env.update(
        {
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "HOME": str(tmp_path),
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_ENDPOINT_URL": endpoint,
            "CODEBUILD_SRC_DIR": str(src),
            "CODEBUILD_SRC_DIR_ModelSource": str(model_dir),
            "MODEL_BUCKET": buckets[0],
            "CAPTURE_BUCKET": buckets[1],
            "STAGE_URL": stage_url,
            "GIT_SHA": "89abcdef0123456789abcdef0123456789abcdef",
            "PIPELINE_EXECUTION_ID": EXECUTION,
            "EVALUATION_SMOKE_REQUESTS": "5",
            "EVALUATION_MIN_AGREEMENT": "0.8",
        }
    )
    return run_buildspec(SPEC, env, work, phases=("build",))


def test_failing_candidate_fails_the_action_and_says_why(
    tmp_path: Path, s3: Any, buckets: tuple[str, str], models: Models, stage_app: Any
) -> None:
    champion, candidate = as_version(models.clean, 1), as_version(models.bad, 2)
    make_champion(s3, buckets[0], champion)
    put_labelled(s3, buckets[0])
    put_capture(s3, buckets[1], open_package(champion), recent(1), rows=300, seed=41)
    result = _run(tmp_path, s3.meta.endpoint_url, buckets, candidate, stage_app(candidate).url)
    assert result.returncode != 0
    assert result.failed_at == f"build:{len(SPEC['phases']['build']['commands']) - 1}"
    assert "Evaluate failed (exit 17): FAIL: churn v2 vs champion v1" in result.output
    assert f"s3://{buckets[0]}/reports/evaluation/{EXECUTION}/report.html" in result.output


def test_passing_candidate_exports_the_approval_variables(
    tmp_path: Path, s3: Any, buckets: tuple[str, str], models: Models, stage_app: Any
) -> None:
    champion, candidate = as_version(models.clean, 1), as_version(models.clean, 2)
    make_champion(s3, buckets[0], champion)
    result = _run(tmp_path, s3.meta.endpoint_url, buckets, candidate, stage_app(candidate).url)
    assert result.returncode == 0, result.output
    exported = {name: result.env.get(name) for name in SPEC["env"]["exported-variables"]}
    assert exported["EVAL_VERDICT"] == "pass"
    assert exported["EVAL_SUMMARY"].startswith("PASS: churn v2 vs champion v1")
    assert exported["EVAL_REPORT_URI"] == f"s3://{buckets[0]}/reports/evaluation/{EXECUTION}/report.html"
    assert exported["EVAL_REPORT_URL"].endswith(f"prefix=reports/evaluation/{EXECUTION}/report.html")


def test_buildspec_exports_exactly_the_contract_variables() -> None:
    """The Approval (infra) and the ledger (release) read these names from jobs_common.evaluation_contract."""
    assert tuple(SPEC["env"]["exported-variables"]) == contract.EXPORTED
