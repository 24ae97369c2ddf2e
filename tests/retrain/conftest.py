"""Fixtures for the retrain tests: one trained package per worker, S3/SNS clients on the moto server."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import boto3
import pandas as pd
import pytest

from contracts.bucket_layout import CHAMPION_KEY, versioned_model_key
from model_package.archive import open_package
from model_package.registry import ChampionPointer
from retrain.synthetic import generate_churn
from retrain.training import TrainingResult, fit_candidate


@pytest.fixture(scope="session")
def churn_frame() -> pd.DataFrame:
    return generate_churn(2500, seed=1)


@pytest.fixture(scope="session")
def trained(churn_frame: pd.DataFrame) -> TrainingResult:
    return fit_candidate(churn_frame, "churn", name="churn", version=1, git_sha="abc123")


@pytest.fixture(scope="session")
def package_zip(trained: TrainingResult) -> bytes:
    return trained.data


@pytest.fixture
def s3(moto_server: Any) -> Any:
    return boto3.client("s3", endpoint_url=moto_server.endpoint_url, region_name="us-east-1")


@pytest.fixture
def bucket(s3: Any) -> str:
    """A fresh versioned bucket per test, as the model bucket is in every stack."""
    name = f"models-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


@pytest.fixture
def alerts(moto_server: Any) -> tuple[str, Callable[[], list[dict[str, Any]]]]:
    """An SNS topic with an SQS subscription; returns (topic arn, read the messages published so far)."""
    sns = boto3.client("sns", endpoint_url=moto_server.endpoint_url, region_name="us-east-1")
    sqs = boto3.client("sqs", endpoint_url=moto_server.endpoint_url, region_name="us-east-1")
    suffix = uuid.uuid4().hex[:12]
    topic = sns.create_topic(Name=f"alerts-{suffix}")["TopicArn"]
    queue_url = sqs.create_queue(QueueName=f"alerts-{suffix}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)

    def read() -> list[dict[str, Any]]:
        messages = []
        while batch := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
            for message in batch:
                messages.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        return messages

    return topic, read


@pytest.fixture
def promote(s3: Any) -> Callable[[str, int], ChampionPointer]:
    """What the pipeline's Release action does after a prod deploy: point champion.json at a version."""

    def _promote(bucket: str, version: int) -> ChampionPointer:
        key = versioned_model_key(version)
        package = open_package(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        pointer = ChampionPointer(
            model_name=package.manifest.name,
            model_version=version,
            package_key=key,
            model_sha256=package.sha256,
            release_key=f"releases/test-{version}.json",
            updated_at=datetime.now(UTC),
        )
        s3.put_object(Bucket=bucket, Key=CHAMPION_KEY, Body=pointer.model_dump_json().encode())
        return pointer

    return _promote
