"""A trained churn package shared by the monitor tests (trained once per worker, a few seconds)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pandas as pd
import pytest

from model_package import Manifest, ModelPackage, open_package, write_atomically
from retrain.synthetic import generate_churn
from retrain.training import train_package

TRAIN_ROWS = 6000


@dataclass(frozen=True)
class Trained:
    package: ModelPackage
    path: Path

    @property
    def manifest(self) -> Manifest:
        return self.package.manifest


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    # Trained "in the past" so capture written now counts as after training (the monitor's window).
    _, data = train_package(generate_churn(TRAIN_ROWS, seed=0), created_at=datetime(2026, 5, 1, tzinfo=UTC))
    path = tmp_path_factory.mktemp("model") / "model.zip"
    write_atomically(path, data)
    return Trained(open_package(path), path)


def fresh(rows: int, seed: int) -> pd.DataFrame:
    """A new sample from the training distribution (different seed, same generator)."""
    return generate_churn(rows, seed=seed)


def capture_records(
    frame: pd.DataFrame,
    package: ModelPackage,
    start: str = "2026-06-01T00:00:00+00:00",
    seconds_apart: float = 30.0,
    service: str = "prod",
) -> list[dict]:
    """Capture records (contract 3) as the app writes them, scored by the real predictor."""
    import uuid

    import numpy as np

    from jobs_common.columns import feature_columns
    from model_package.runtime import load_predictor
    from model_package.validation import SchemaValidator

    manifest = package.manifest
    features = frame[list(manifest.feature_names)]
    columns = SchemaValidator(manifest.features).validate_columns(feature_columns(features, manifest.features)).columns
    probability = load_predictor(package).predict_proba(columns)
    t0 = pd.Timestamp(start)
    rng = np.random.default_rng(0)
    records = []
    for i, row in enumerate(features.to_dict(orient="records")):
        clean = {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
        records.append(
            {
                "uid": uuid.UUID(int=int(rng.integers(0, 2**63)) * 2**64 + i, version=4).hex,
                "time": (t0 + pd.Timedelta(seconds=seconds_apart * i)).isoformat(),
                "service": service,
                "model_name": manifest.name,
                "model_version": manifest.version,
                "input": clean,
                "output": {"prediction": int(probability[i] >= 0.5), "probability": float(probability[i])},
                "latency_ms": float(2 + i % 7),
            }
        )
    return records


def write_jsonl(path: Path, records: list[dict]) -> Path:
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture
def aws(moto_server, monkeypatch: pytest.MonkeyPatch):
    """Model and capture buckets, an SNS topic with an SQS subscriber; boto3 pointed at the moto server."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint_url)
    suffix = uuid.uuid4().hex[:10]
    s3 = boto3.client("s3", endpoint_url=moto_server.endpoint_url)
    sns = boto3.client("sns", endpoint_url=moto_server.endpoint_url)
    sqs = boto3.client("sqs", endpoint_url=moto_server.endpoint_url)
    buckets = {"model": f"models-{suffix}", "capture": f"capture-{suffix}"}
    for bucket in buckets.values():
        s3.create_bucket(Bucket=bucket)
    topic = sns.create_topic(Name=f"alerts-{suffix}")["TopicArn"]
    queue = sqs.create_queue(QueueName=f"alerts-{suffix}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    return {"s3": s3, "sqs": sqs, "queue": queue, "topic": topic, **buckets, "endpoint": moto_server.endpoint_url}
