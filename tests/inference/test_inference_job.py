"""The InferenceJob end to end: chunks, validation, rejected rows, atomic outputs, notification."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import boto3
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from contracts.bucket_layout import CHAMPION_KEY, versioned_model_key
from contracts.exit_codes import ExitCode
from inference.__main__ import main
from inference.job import InferenceJob
from inference.readers import CsvChunkReader
from jobs_common.columns import feature_columns
from model_package.registry import ChampionPointer
from model_package.runtime import load_predictor
from model_package.validation import SchemaValidator
from retrain.synthetic import generate_churn

BAD_ROWS = {3: "data_type", 1100: "unknown_category", 2500: "null_value"}


def input_frame(rows: int = 3000, seed: int = 61) -> pd.DataFrame:
    frame = generate_churn(rows, seed=seed).drop(columns=["churn"])
    frame.insert(0, "customer_id", [f"{i:07d}" for i in range(rows)])  # leading zeros must survive
    frame = frame.astype({"monthly_spend": object})
    frame.loc[3, "monthly_spend"] = "lots"
    frame.loc[1100, "campaign_id"] = "C99"
    frame.loc[2500, "tenure_months"] = None
    return frame


def expected_scores(trained, frame: pd.DataFrame) -> np.ndarray:
    """Raw in-process predict on preloaded arrays: what the job's output must equal."""
    good = frame.drop(index=list(BAD_ROWS))
    columns = (
        SchemaValidator(trained.manifest.features)
        .validate_columns(feature_columns(good, trained.manifest.features))
        .columns
    )
    return load_predictor(trained.package).predict_proba(columns)


def test_local_csv_to_parquet_with_rejected_rows(trained, tmp_path: Path) -> None:
    frame = input_frame()
    source = tmp_path / "in.csv"
    frame.to_csv(source, index=False)
    output = tmp_path / "out" / "scores.parquet"
    job = InferenceJob(trained.package, load_predictor(trained.package), chunk_rows=700)
    result = job.run(str(source), str(output))

    assert result.rows_in == 3000 and result.rows_rejected == 3 and result.rows_out == 2997
    assert result.shape == (2997, frame.shape[1] + 3)
    scored = pq.read_table(output).to_pandas()
    assert list(scored.columns) == [*frame.columns, "label", "probability", "prediction"]
    assert (scored["label"] == scored["prediction"]).all()  # binary 0/1 labels: label is the class
    assert scored["customer_id"].iloc[0] == "0000000"
    assert set(scored["customer_id"]) == {f"{i:07d}" for i in range(3000)} - {f"{i:07d}" for i in BAD_ROWS}
    np.testing.assert_allclose(scored["probability"].to_numpy(), expected_scores(trained, frame), rtol=1e-6)
    assert ((scored["probability"] >= 0.5).astype(int) == scored["prediction"]).all()

    rejected = pq.read_table(tmp_path / "out" / "scores.rejected.parquet").to_pandas()
    assert rejected["_row"].tolist() == sorted(BAD_ROWS)
    for row, kind in BAD_ROWS.items():
        reasons = rejected.loc[rejected["_row"] == row, "_errors"].item()
        assert reasons.startswith(kind)
    assert rejected.loc[rejected["_row"] == 3, "monthly_spend"].item() == "lots"
    assert sorted(p.name for p in output.parent.iterdir()) == ["scores.parquet", "scores.rejected.parquet"]


def test_csv_reader_yields_bounded_chunks(trained, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    input_frame().iloc[:2500].to_csv(source, index=False)
    sizes = [len(c) for c in CsvChunkReader(source, trained.manifest, 1000).chunks()]
    assert sizes == [1000, 1000, 500]


class FailingPredictor:
    """Scores normally, then dies on the given call: an interruption in the middle of the stream."""

    name = "failing"

    def __init__(self, inner, fail_on_call: int) -> None:
        self.inner, self.fail_on_call, self.calls = inner, fail_on_call, 0

    def predict(self, columns):
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise RuntimeError("worker lost in the middle of the job")
        return self.inner.predict(columns)


@pytest.fixture
def s3(moto_server, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint_url)
    return boto3.client("s3", endpoint_url=moto_server.endpoint_url)


def test_interrupted_job_leaves_no_partial_output(trained, s3, tmp_path: Path) -> None:
    bucket = f"batch-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    source = tmp_path / "in.parquet"
    # A typed file cannot hold "lots" in a float column: the whole column arrives as text.
    input_frame().astype({"monthly_spend": str}).to_parquet(source)
    s3.upload_file(str(source), bucket, "in/data.parquet")
    s3.put_object(Bucket=bucket, Key="out/scores.parquet", Body=b"yesterday's complete output")

    predictor = FailingPredictor(load_predictor(trained.package), fail_on_call=3)
    job = InferenceJob(trained.package, predictor, chunk_rows=500, s3_client=s3)
    with pytest.raises(RuntimeError, match="worker lost"):
        job.run(f"s3://{bucket}/in/data.parquet", f"s3://{bucket}/out/scores.parquet")

    assert predictor.calls == 3  # it failed mid-stream, after two chunks had been written
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == ["in/data.parquet", "out/scores.parquet"]  # no rejected file, no new output
    assert s3.get_object(Bucket=bucket, Key="out/scores.parquet")["Body"].read() == b"yesterday's complete output"
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []

    local_out = tmp_path / "local"
    local_out.mkdir()
    job = InferenceJob(trained.package, FailingPredictor(load_predictor(trained.package), 2), chunk_rows=500)
    with pytest.raises(RuntimeError):
        job.run(str(source), str(local_out / "scores.csv"))
    assert list(local_out.iterdir()) == []  # staging files removed, nothing half-written


def test_s3_end_to_end_by_champion_with_notification(trained, s3, moto_server, monkeypatch, capsys) -> None:
    suffix = uuid.uuid4().hex[:10]
    bucket = f"models-{suffix}"
    s3.create_bucket(Bucket=bucket)
    key = versioned_model_key(trained.manifest.version)
    s3.put_object(Bucket=bucket, Key=key, Body=trained.path.read_bytes())
    pointer = ChampionPointer(
        model_name="churn",
        model_version=trained.manifest.version,
        package_key=key,
        model_sha256=trained.package.sha256,
        release_key="releases/r.json",
        updated_at=datetime.now(UTC),
    )
    s3.put_object(Bucket=bucket, Key=CHAMPION_KEY, Body=pointer.model_dump_json().encode())
    frame = input_frame()
    s3.put_object(Bucket=bucket, Key="batch/in.csv", Body=frame.to_csv(index=False).encode())

    sns = boto3.client("sns", endpoint_url=moto_server.endpoint_url)
    sqs = boto3.client("sqs", endpoint_url=moto_server.endpoint_url)
    topic = sns.create_topic(Name=f"alerts-{suffix}")["TopicArn"]
    queue = sqs.create_queue(QueueName=f"alerts-{suffix}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    env = {
        "MODEL_BUCKET": bucket,
        "MODEL_REF": "champion",
        "INPUT_URI": f"s3://{bucket}/batch/in.csv",
        "OUTPUT_URI": f"s3://{bucket}/batch/out/scores.csv",
        "CHUNK_ROWS": "1000",
        "ALERTS_TOPIC_ARN": topic,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    assert main(["run"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert (
        printed["shape"] == [2997, frame.shape[1] + 3] and printed["rows_rejected"] == 3
    )  # label, probability, prediction
    body = s3.get_object(Bucket=bucket, Key="batch/out/scores.csv")["Body"]
    scored = pd.read_csv(body, dtype={"customer_id": str})
    np.testing.assert_allclose(scored["probability"].to_numpy(), expected_scores(trained, frame), rtol=1e-6)
    rejected = pd.read_csv(s3.get_object(Bucket=bucket, Key="batch/out/scores.rejected.csv")["Body"])
    assert rejected["_row"].tolist() == sorted(BAD_ROWS)

    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    assert len(messages) == 1
    text = json.loads(messages[0]["Body"])["Message"]
    assert "scored 2997 rows, rejected 3" in text and "s3://" in text and '"seconds"' in text

    monkeypatch.setenv("MODEL_REF", "2")  # a version that was never uploaded
    assert main(["run"]) == ExitCode.PACKAGE_UNUSABLE
    assert "models/2/model.zip: no such model package" in capsys.readouterr().err


def test_missing_feature_column_is_refused_before_anything_is_written(
    trained, tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("ALERT_STATE_DIR", str(tmp_path / "alerts"))
    source = tmp_path / "in.csv"
    input_frame().iloc[:100].drop(columns=["campaign_id"]).to_csv(source, index=False)
    code = main(["run", "--model", str(trained.path), "--input", str(source), "--output", str(tmp_path / "o.parquet")])
    assert code == ExitCode.BAD_DATA
    assert "feature columns ['campaign_id'] are missing" in capsys.readouterr().err
    assert not (tmp_path / "o.parquet").exists()


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_infinite_cells_reject_their_rows_only(trained, tmp_path: Path, fmt: str) -> None:
    """``inf`` is documented as a ``data_type`` violation of its row (never a training value), not a crash."""
    frame = generate_churn(200, seed=66).drop(columns=["churn"])
    frame.loc[[5, 9], "monthly_spend"] = [np.inf, -np.inf]
    source = tmp_path / f"in.{fmt}"
    frame.to_csv(source, index=False) if fmt == "csv" else frame.to_parquet(source, index=False)
    output = tmp_path / "scores.parquet"
    result = InferenceJob(trained.package, load_predictor(trained.package)).run(str(source), str(output))
    assert (result.rows_in, result.rows_out, result.rows_rejected) == (200, 198, 2)
    rejected = pq.read_table(tmp_path / "scores.rejected.parquet").to_pandas()
    assert rejected["_row"].tolist() == [5, 9]
    assert all("data_type:monthly_spend" in e for e in rejected["_errors"])
