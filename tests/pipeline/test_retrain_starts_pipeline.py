"""The retrain job's own upload starts the pipeline: the S3 rule is taken from the plan, put on a moto
EventBridge bus with an SQS target, and the real job runs against a bucket with EventBridge notifications.

Exactly one event per accepted model (the model key), none for the immutable ``models/<v>`` copy, the
report or the alert markers, and none for a re-run that releases nothing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from retrain.job import Decision, RetrainJob
from retrain.settings import Settings
from retrain.synthetic import generate_churn
from tools.plan.offline import run_offline


@pytest.fixture
def clients(moto_server: Any) -> dict[str, Any]:
    return {
        name: boto3.client(name, endpoint_url=moto_server.endpoint_url, region_name="us-east-1")
        for name in ("s3", "events", "sqs", "sns")
    }


@pytest.fixture
def pipeline_start_events(clients: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """A fresh model bucket under the planned rule; yields (bucket, read-the-events)."""
    plan = run_offline("dev")
    rule = plan.one("aws:cloudwatch/eventRule:EventRule", "delivery-triggers-model-upload")
    pattern = json.loads(rule.inputs["eventPattern"])
    assert pattern["detail"]["bucket"]["name"] == [plan.outputs["modelBucket"]]
    assert pattern["detail"]["object"]["key"] == [plan.outputs["modelObjectKey"]]
    # The planned pattern, with only the bucket's physical name swapped for one this test owns.
    bucket = f"models-{uuid.uuid4().hex[:12]}"
    pattern["detail"]["bucket"]["name"] = [bucket]
    s3, events, sqs = clients["s3"], clients["events"], clients["sqs"]
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={"EventBridgeConfiguration": {}})
    queue_url = sqs.create_queue(QueueName=f"pipeline-start-{bucket}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rule_name = f"start-{bucket}"
    events.put_rule(Name=rule_name, EventPattern=json.dumps(pattern), State="ENABLED")
    events.put_targets(Rule=rule_name, Targets=[{"Id": "pipeline", "Arn": queue_arn}])

    def read() -> list[dict[str, Any]]:
        found = []
        while batch := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages"):
            for message in batch:
                found.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        return found

    yield bucket, read
    events.remove_targets(Rule=rule_name, Ids=["pipeline"])
    events.delete_rule(Name=rule_name)


def test_the_retrain_upload_starts_the_pipeline_exactly_once(
    clients: dict[str, Any], pipeline_start_events: tuple[str, Any], tmp_path: Path
) -> None:
    bucket, read = pipeline_start_events
    data = tmp_path / "train.parquet"
    generate_churn(3000, seed=4).to_parquet(data, index=False)
    settings = Settings(data_uri=str(data), model_bucket=bucket, git_sha="abc123").validated()

    first = RetrainJob(settings, clients["s3"], clients["sns"]).run()
    assert first.decision == Decision.ACCEPTED
    keys = {o["Key"] for o in clients["s3"].list_objects_v2(Bucket=bucket)["Contents"]}
    assert {"model.zip", "models/1/model.zip"} <= keys and any(k.startswith("reports/") for k in keys)
    (event,) = read()
    assert event["source"] == "aws.s3" and event["detail-type"] == "Object Created"
    assert event["detail"]["bucket"]["name"] == bucket
    assert event["detail"]["object"]["key"] == "model.zip"

    again = RetrainJob(settings, clients["s3"], clients["sns"]).run()
    assert again.decision == Decision.UNCHANGED
    assert read() == [], "a re-run on the same data and champion must not start the pipeline"
