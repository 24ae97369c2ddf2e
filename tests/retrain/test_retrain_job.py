"""The Batch retrain job end to end against a real moto server: gate, uploads, versions, reports, alerts."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest

from contracts.bucket_layout import DEFAULT_MODEL_KEY, MODELS_PREFIX, versioned_model_key
from contracts.exit_codes import ExitCode
from jobs_common.errors import UploadError
from jobs_common.store import RETRAIN_REPORTS_PREFIX, ModelStore
from model_package.archive import open_package
from retrain.job import Decision, RetrainJob, RunResult
from retrain.settings import Settings
from retrain.synthetic import generate_churn
from retrain.verify import verify_package


@pytest.fixture
def run(s3: Any, moto_server: Any, tmp_path: Path) -> Callable[..., RunResult]:
    """Write ``frame`` as the training data (a local file or s3://) and run the job once."""
    sns = boto3.client("sns", endpoint_url=moto_server.endpoint_url, region_name="us-east-1")

    def _run(
        bucket: str,
        frame: pd.DataFrame | bytes,
        *,
        topic: str | None = None,
        where: str = "local",
        name: str = "train.parquet",
        **settings: Any,
    ) -> RunResult:
        data = (
            frame
            if isinstance(frame, bytes)
            else (frame.to_parquet(index=False) if name.endswith(".parquet") else frame.to_csv(index=False).encode())
        )
        if where == "s3":
            s3.put_object(Bucket=bucket, Key=f"data/{name}", Body=data)
            uri = f"s3://{bucket}/data/{name}"
        else:
            path = tmp_path / uuid.uuid4().hex / name
            path.parent.mkdir()
            path.write_bytes(data)
            uri = str(path)
        values = {"data_uri": uri, "model_bucket": bucket, "alerts_topic_arn": topic, "git_sha": "test-sha", **settings}
        return RetrainJob(Settings(**values).validated(), s3, sns).run()

    return _run


def _keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []))


def _stored(s3: Any, bucket: str) -> list[str]:
    """Every object but the alert de-duplication markers."""
    return [k for k in _keys(s3, bucket, "") if not k.startswith("alerts/sent/")]


def _model_versions(s3: Any, bucket: str) -> list[dict[str, Any]]:
    listing = s3.list_object_versions(Bucket=bucket, Prefix=DEFAULT_MODEL_KEY).get("Versions", [])
    return [v for v in listing if v["Key"] == DEFAULT_MODEL_KEY]


def _report(s3: Any, bucket: str, key: str | None) -> dict[str, Any]:
    assert key is not None and key.startswith(RETRAIN_REPORTS_PREFIX)
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def test_first_model_is_uploaded_reported_and_notified(s3, bucket, alerts, run) -> None:
    topic, read_alerts = alerts
    result = run(bucket, generate_churn(2000, seed=3), topic=topic, where="s3")

    assert result.decision == Decision.ACCEPTED and result.exit_code == 0
    assert "first model" in result.reason
    assert _keys(s3, bucket, MODELS_PREFIX) == [versioned_model_key(1)]
    versioned = s3.get_object(Bucket=bucket, Key=versioned_model_key(1))["Body"].read()
    assert s3.get_object(Bucket=bucket, Key=DEFAULT_MODEL_KEY)["Body"].read() == versioned
    verified = verify_package(versioned)
    package = open_package(versioned)
    assert package.manifest.version == 1 and package.manifest.training_data.uri.startswith(f"s3://{bucket}/data/")
    assert package.manifest.lineage is not None
    assert package.manifest.lineage.fingerprint == result.report["fingerprint"]

    report = _report(s3, bucket, result.report_key)
    assert report["decision"] == "accepted" and report["champion"] is None
    assert report["candidate"]["model_sha256"] == verified.sha256
    assert 0.6 < report["candidate"]["metrics"]["roc_auc"] <= 1
    assert report["uploaded"]["model_key"] == DEFAULT_MODEL_KEY and report["uploaded"]["model_version_id"]

    (message,) = read_alerts()
    assert message["Subject"].startswith("[INFO] retrain:")
    assert message["MessageAttributes"]["severity"]["Value"] == "INFO"
    assert f"s3://{bucket}/{result.report_key}" in message["Message"]


def test_rerun_on_same_data_and_champion_makes_no_new_release(s3, bucket, alerts, run, promote) -> None:
    topic, read_alerts = alerts
    frame = generate_churn(1500, seed=4)
    assert run(bucket, frame, topic=topic).decision == Decision.ACCEPTED
    again = run(bucket, frame, topic=topic)
    assert again.decision == Decision.UNCHANGED and again.exit_code == 0
    assert _keys(s3, bucket, MODELS_PREFIX) == [versioned_model_key(1)]
    assert len(_model_versions(s3, bucket)) == 1
    # After a release the champion is part of the inputs: a refit is a new candidate once, then unchanged.
    promote(bucket, 1)
    refit = run(bucket, frame, topic=topic, gate_floor=0.0, gate_tolerance=1.0)
    assert refit.decision == Decision.ACCEPTED
    assert run(bucket, frame, topic=topic, gate_floor=0.0, gate_tolerance=1.0).decision == Decision.UNCHANGED
    assert _keys(s3, bucket, MODELS_PREFIX) == [versioned_model_key(1), versioned_model_key(2)]
    assert len(_keys(s3, bucket, RETRAIN_REPORTS_PREFIX)) == 4
    subjects = [m["Subject"] for m in read_alerts()]
    assert sum("new churn model" in k for k in subjects) == 2
    assert sum("same data and champion" in k for k in subjects) == 2


def _noisy_history_good_holdout() -> pd.DataFrame:
    """Training period without signal, holdout period with it: the refit must be worse than the champion."""
    early = generate_churn(2400, seed=5, start=date(2026, 1, 1), days=72, concept=0.0)
    late = generate_churn(600, seed=6, start=date(2026, 3, 14), days=18)
    return pd.concat([early, late], ignore_index=True)


def test_worse_candidate_is_not_uploaded(s3, bucket, alerts, run, promote) -> None:
    topic, read_alerts = alerts
    assert run(bucket, generate_churn(2500, seed=7)).decision == Decision.ACCEPTED
    promote(bucket, 1)
    read_alerts()
    before = _model_versions(s3, bucket)

    result = run(bucket, _noisy_history_good_holdout(), topic=topic, gate_floor=0.0)
    assert result.decision == Decision.REJECTED and result.exit_code == 0
    assert "worse than the tolerance" in result.reason
    report = _report(s3, bucket, result.report_key)
    assert report["candidate"]["metrics"]["roc_auc"] < report["champion"]["metrics"]["roc_auc"] - 0.005
    assert report["candidate"]["metrics"]["holdout_rows"] == report["champion"]["metrics"]["holdout_rows"]
    assert report["uploaded"] is None
    assert _keys(s3, bucket, MODELS_PREFIX) == [versioned_model_key(1)]
    assert _model_versions(s3, bucket) == before
    (message,) = read_alerts()
    assert message["Subject"].startswith("[WARNING] retrain:") and "rejected" in message["Subject"]


def test_candidate_below_the_floor_is_not_uploaded_even_without_champion(s3, bucket, run) -> None:
    result = run(bucket, generate_churn(1500, seed=8, concept=0.0), gate_floor=0.75)
    assert result.decision == Decision.REJECTED and "below the floor" in result.reason
    assert _stored(s3, bucket) == [result.report_key]


def test_better_candidate_is_uploaded_and_the_old_version_is_kept(s3, bucket, run, promote) -> None:
    weak = run(bucket, generate_churn(600, seed=9, concept=0.2), gate_floor=0.0, min_rows=100)
    assert weak.decision == Decision.ACCEPTED
    old_bytes = s3.get_object(Bucket=bucket, Key=DEFAULT_MODEL_KEY)["Body"].read()
    promote(bucket, 1)

    better = run(bucket, generate_churn(3000, seed=10))
    assert better.decision == Decision.ACCEPTED, better.reason
    report = _report(s3, bucket, better.report_key)
    assert report["candidate"]["metrics"]["roc_auc"] > report["champion"]["metrics"]["roc_auc"]
    assert report["candidate"]["pipeline"] == "refit"
    new = open_package(s3.get_object(Bucket=bucket, Key=DEFAULT_MODEL_KEY)["Body"].read())
    assert new.manifest.version == 2
    assert new.manifest.lineage is not None and new.manifest.lineage.parent_version == 1
    # Bucket versioning keeps the old model under the model key, and the immutable copy stays too.
    versions = _model_versions(s3, bucket)
    assert len(versions) == 2
    oldest = min(versions, key=lambda v: v["LastModified"])
    body = s3.get_object(Bucket=bucket, Key=DEFAULT_MODEL_KEY, VersionId=oldest["VersionId"])["Body"].read()
    assert body == old_bytes == s3.get_object(Bucket=bucket, Key=versioned_model_key(1))["Body"].read()


def _truncated_parquet() -> bytes:
    return generate_churn(800, seed=11).to_parquet(index=False)[:-200]


@pytest.mark.parametrize(
    "case",
    [
        ("corrupt parquet", _truncated_parquet(), "train.parquet", "cannot be read as parquet"),
        ("unknown format", b"a,b\n1,2\n", "train.xlsx", "unknown data format"),
        ("too few rows", generate_churn(100, seed=12), "train.csv", "at least 500 are required"),
        ("target missing", generate_churn(800, seed=12).drop(columns="churn"), "train.csv", "target column 'churn'"),
        ("single-class target", generate_churn(800, seed=12).assign(churn=2), "train.csv", "has a single class (2)"),
        ("one day of history", generate_churn(800, seed=12, days=1), "train.csv", "one day of history"),
    ],
)
def test_bad_data_uploads_nothing(s3, bucket, alerts, run, case) -> None:
    what, data, name, expected = case
    topic, read_alerts = alerts
    result = run(bucket, data, topic=topic, name=name)
    assert result.decision == Decision.BAD_DATA and result.exit_code == ExitCode.BAD_DATA, what
    assert expected in result.reason
    assert _stored(s3, bucket) == [result.report_key]  # the report only: no model, no model key
    assert _report(s3, bucket, result.report_key)["decision"] == "bad-data"
    (message,) = read_alerts()
    assert message["Subject"].startswith("[CRITICAL] retrain:")


def test_missing_data_and_missing_features_upload_nothing(s3, bucket, run, promote, tmp_path) -> None:
    missing = RetrainJob(Settings(data_uri=str(tmp_path / "absent.csv"), model_bucket=bucket).validated(), s3).run()
    assert missing.decision == Decision.BAD_DATA and "cannot read" in missing.reason
    missing_s3 = run(bucket, b"", where="s3", data_uri=f"s3://{bucket}/data/nothing-here.csv")
    assert missing_s3.decision == Decision.BAD_DATA and "NoSuchKey" in missing_s3.reason

    assert run(bucket, generate_churn(1000, seed=13)).decision == Decision.ACCEPTED
    promote(bucket, 1)
    result = run(bucket, generate_churn(1000, seed=14).drop(columns=["campaign_id"]))
    assert result.decision == Decision.BAD_DATA and "campaign_id" in result.reason
    assert _keys(s3, bucket, MODELS_PREFIX) == [versioned_model_key(1)]
    assert len(_model_versions(s3, bucket)) == 1


def test_versioned_copy_is_immutable(s3, bucket, package_zip) -> None:
    store = ModelStore(s3, bucket, DEFAULT_MODEL_KEY)
    store.upload(1, package_zip, {})
    with pytest.raises(UploadError, match="already exists"):
        store.upload(1, b"something else", {})
    assert s3.get_object(Bucket=bucket, Key=versioned_model_key(1))["Body"].read() == package_zip
    assert store.next_version() == 2


def test_settings_from_env_and_flags() -> None:
    env = {"DATA_URI": "s3://b/k.csv", "MODEL_BUCKET": "b", "GATE_METRIC": "log_loss", "MIN_ROWS": "42"}
    settings = Settings.from_env(env, min_rows=7)
    assert settings.gate_metric == "log_loss" and settings.min_rows == 7 and settings.model_key == "model.zip"
    from jobs_common.errors import ConfigError

    with pytest.raises(ConfigError, match="GATE_METRIC"):
        Settings.from_env({"GATE_METRIC": "accuracy"})
    with pytest.raises(ConfigError, match="MIN_ROWS"):
        Settings.from_env({"MIN_ROWS": "many"})
    with pytest.raises(ConfigError, match="exactly one of DATA_URI"):
        Settings.from_env({"MODEL_BUCKET": "b"}).for_run()


def test_batch_entry_point_reads_env_and_logs_json(s3, bucket, alerts, moto_server, tmp_path) -> None:
    import os
    import subprocess
    import sys

    topic, read_alerts = alerts
    data = tmp_path / "train.csv"
    data.write_bytes(generate_churn(900, seed=15).to_csv(index=False).encode())
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": moto_server.endpoint_url,
        "DATA_URI": str(data),
        "MODEL_BUCKET": bucket,
        "ALERTS_TOPIC_ARN": topic,
        "GIT_SHA": "0123456789abcdef",
        "MIN_ROWS": "800",
    }
    root = Path(__file__).parents[2]
    done = subprocess.run(
        [sys.executable, "-m", "retrain", "run"], env=env, cwd=root, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["decision"] == "accepted"
    logs = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert [e["step"] for e in logs if "step" in e] == [1, 2, 3, 4, 5, 6]
    assert open_package(s3.get_object(Bucket=bucket, Key="model.zip")["Body"].read()).manifest.git_sha == (
        "0123456789abcdef"
    )
    assert len(read_alerts()) == 1

    env["GATE_METRIC"] = "accuracy"
    bad = subprocess.run(
        [sys.executable, "-m", "retrain", "run"], env=env, cwd=root, capture_output=True, text=True, check=False
    )
    assert bad.returncode == 8 and "GATE_METRIC" in bad.stderr
