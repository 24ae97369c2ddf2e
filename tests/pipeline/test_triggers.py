"""The pipeline's EventBridge rules, end to end on a real (moto) server over HTTP.

The event patterns and input transformers are taken from the offline plan of the dev stack, put on
a moto EventBridge bus with an SQS queue as the target (standing in for CodePipeline and SNS), and fed
real events: S3's own EventBridge notifications for the model bucket, and PutEvents for CodeCommit
and CodePipeline events. moto delivers synchronously, so once the upload or PutEvents call has
returned, every matching message is already in the queue.

moto 5.2.5 note: for an SQS target it treats a transformed *string* as a dict if the text contains
"time" (``"time" in event``) and fails with HTTP 500; the planned sentences do not contain it.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from tools.plan.offline import OfflineRun, run_offline

RULE = "aws:cloudwatch/eventRule:EventRule"
TARGET = "aws:cloudwatch/eventTarget:EventTarget"


@pytest.fixture(scope="module")
def plan() -> OfflineRun:
    return run_offline("dev")


@pytest.fixture
def aws(moto_server: Any) -> dict[str, Any]:
    def client(service: str) -> Any:
        return boto3.client(service, endpoint_url=moto_server.endpoint_url, region_name="us-east-1")

    return {name: client(name) for name in ("events", "sqs", "s3")}


def rule_from_plan(plan: OfflineRun, logical_name: str) -> tuple[str, dict[str, Any] | None]:
    """The rule's event pattern exactly as planned, and its target's input transformer, if any."""
    rule = plan.one(RULE, logical_name)
    (target,) = [t for t in plan.of_type(TARGET) if t.parent == rule.urn]
    return rule.inputs["eventPattern"], target.inputs.get("inputTransformer")


@pytest.fixture
def wire(aws: dict[str, Any]) -> Iterator[Any]:
    """Put a planned rule on the default bus with a fresh SQS queue as target; yields a reader."""
    created: list[tuple[str, str]] = []

    def attach(pattern: str, transformer: dict[str, Any] | None = None) -> Any:
        suffix = uuid.uuid4().hex[:10]
        queue_url = aws["sqs"].create_queue(QueueName=f"pipeline-events-{suffix}")["QueueUrl"]
        queue_arn = aws["sqs"].get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        rule_name = f"planned-rule-{suffix}"
        aws["events"].put_rule(Name=rule_name, EventPattern=pattern, State="ENABLED")
        target: dict[str, Any] = {"Id": "queue", "Arn": queue_arn}
        if transformer is not None:
            target["InputTransformer"] = {
                "InputPathsMap": transformer["inputPaths"],
                "InputTemplate": transformer["inputTemplate"],
            }
        aws["events"].put_targets(Rule=rule_name, Targets=[target])
        created.append((rule_name, queue_url))

        def messages() -> list[str]:
            bodies: list[str] = []
            while True:
                batch = aws["sqs"].receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
                if not batch.get("Messages"):
                    return bodies
                for message in batch["Messages"]:
                    bodies.append(message["Body"])
                    aws["sqs"].delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

        return messages

    yield attach
    for rule_name, queue_url in created:  # other tests on this server must not see these rules fire
        aws["events"].remove_targets(Rule=rule_name, Ids=["queue"])
        aws["events"].delete_rule(Name=rule_name)
        aws["sqs"].delete_queue(QueueUrl=queue_url)


def test_only_the_model_key_in_the_model_bucket_starts_the_pipeline(
    plan: OfflineRun, aws: dict[str, Any], wire: Any
) -> None:
    pattern, _ = rule_from_plan(plan, "delivery-triggers-model-upload")
    bucket = plan.outputs["modelBucket"]
    assert json.loads(pattern)["detail"]["bucket"]["name"] == [bucket]
    read = wire(pattern)
    s3 = aws["s3"]
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={"EventBridgeConfiguration": {}})

    s3.put_object(Bucket=bucket, Key="other.zip", Body=b"not the model")
    s3.put_object(Bucket=bucket, Key="models/model.zip", Body=b"an immutable copy")
    s3.put_object(Bucket=bucket, Key="model.zip.tmp", Body=b"a partial upload")
    assert read() == [], "other keys must not start the pipeline"

    s3.put_object(Bucket=bucket, Key="model.zip", Body=b"the model")
    (body,) = read()
    event = json.loads(body)
    assert event["source"] == "aws.s3" and event["detail-type"] == "Object Created"
    assert event["detail"]["bucket"]["name"] == bucket and event["detail"]["object"]["key"] == "model.zip"

    s3.delete_object(Bucket=bucket, Key="model.zip")
    assert read() == [], "a deleted model is not a new model"


def test_a_model_key_in_another_bucket_does_not_start_the_pipeline(
    plan: OfflineRun, aws: dict[str, Any], wire: Any
) -> None:
    pattern, _ = rule_from_plan(plan, "delivery-triggers-model-upload")
    read = wire(pattern)
    other = f"other-models-{uuid.uuid4().hex[:10]}"
    aws["s3"].create_bucket(Bucket=other)
    aws["s3"].put_bucket_notification_configuration(
        Bucket=other, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    aws["s3"].put_object(Bucket=other, Key="model.zip", Body=b"someone else's model")
    assert read() == []


def codecommit_event(
    repository_arn: str, branch: str, event: str = "referenceUpdated", kind: str = "branch"
) -> dict[str, Any]:
    """The shape CodeCommit sends (CodeCommit User Guide, "Monitoring CodeCommit events in EventBridge")."""
    return {
        "Source": "aws.codecommit",
        "DetailType": "CodeCommit Repository State Change",
        "Resources": [repository_arn],
        "Detail": json.dumps(
            {
                "event": event,
                "repositoryName": repository_arn.rsplit(":", 1)[-1],
                "referenceType": kind,
                "referenceName": branch,
                "referenceFullName": f"refs/heads/{branch}",
                "commitId": uuid.uuid4().hex + "abcdefgh",
                "callerUserArn": "arn:aws:iam::123456789012:user/dev",
            }
        ),
    }


def test_a_push_to_the_configured_branch_starts_the_pipeline_and_others_do_not(
    plan: OfflineRun, aws: dict[str, Any], wire: Any
) -> None:
    pattern, _ = rule_from_plan(plan, "delivery-triggers-code-push")
    repository = json.loads(pattern)["resources"][0]
    read = wire(pattern)
    ignored = [
        codecommit_event(repository, "feature/faster-model"),
        codecommit_event(repository, "main", kind="tag"),
        codecommit_event(repository, "main", event="referenceDeleted"),
        codecommit_event("arn:aws:codecommit:us-east-1:123456789012:another-repo", "main"),
    ]
    result = aws["events"].put_events(Entries=ignored)
    assert result["FailedEntryCount"] == 0
    assert read() == []

    started = [codecommit_event(repository, "main"), codecommit_event(repository, "main", event="referenceCreated")]
    assert aws["events"].put_events(Entries=started)["FailedEntryCount"] == 0
    details = [json.loads(body)["detail"] for body in read()]
    assert sorted(d["event"] for d in details) == ["referenceCreated", "referenceUpdated"]
    assert {d["referenceName"] for d in details} == {"main"}


def pipeline_event(pipeline: str, state: str, execution_id: str) -> dict[str, Any]:
    return {
        "Source": "aws.codepipeline",
        "DetailType": "CodePipeline Pipeline Execution State Change",
        "Resources": [f"arn:aws:codepipeline:us-east-1:123456789012:{pipeline}"],
        "Time": datetime.now(UTC),
        "Detail": json.dumps({"pipeline": pipeline, "execution-id": execution_id, "state": state, "version": 3}),
    }


def test_failed_and_succeeded_executions_arrive_as_readable_sentences(
    plan: OfflineRun, aws: dict[str, Any], wire: Any
) -> None:
    pattern, transformer = rule_from_plan(plan, "delivery-notifications-execution-finished")
    read = wire(pattern, transformer)
    name = plan.outputs["pipelineName"]
    entries = [
        pipeline_event(name, "STARTED", "e-started"),
        pipeline_event("someone-elses", "FAILED", "e-other"),
        pipeline_event(name, "FAILED", "e-failed"),
        pipeline_event(name, "SUCCEEDED", "e-ok"),
    ]
    assert aws["events"].put_events(Entries=entries)["FailedEntryCount"] == 0
    messages = sorted(json.loads(body) for body in read())
    url = "https://us-east-1.console.aws.amazon.com/codesuite/codepipeline/pipelines/ml-delivery-dev/executions"
    where = "visualization?region=us-east-1"
    assert messages == [
        f"Pipeline ml-delivery-dev execution e-failed FAILED. Where to look: {url}/e-failed/{where}",
        f"Pipeline ml-delivery-dev execution e-ok SUCCEEDED. Where to look: {url}/e-ok/{where}",
    ]


def test_a_waiting_approval_arrives_as_a_sentence(plan: OfflineRun, aws: dict[str, Any], wire: Any) -> None:
    pattern, transformer = rule_from_plan(plan, "delivery-notifications-approval-waiting")
    read = wire(pattern, transformer)

    def action_event(category: str, state: str) -> dict[str, Any]:
        detail = {
            "pipeline": "ml-delivery-dev",
            "execution-id": "e-1",
            "stage": "Approval",
            "action": "ApproveProd",
            "state": state,
            "type": {"owner": "AWS", "provider": "Manual", "category": category, "version": "1"},
        }
        return {
            "Source": "aws.codepipeline",
            "DetailType": "CodePipeline Action Execution State Change",
            "Resources": [],
            "Detail": json.dumps(detail),
        }

    entries = [
        action_event("Build", "STARTED"),
        action_event("Approval", "SUCCEEDED"),
        action_event("Approval", "STARTED"),
    ]
    assert aws["events"].put_events(Entries=entries)["FailedEntryCount"] == 0
    (message,) = [json.loads(body) for body in read()]
    assert message.startswith(
        "Pipeline ml-delivery-dev execution e-1 passed its evaluation and waits for approval at Approval/ApproveProd"
    )
    # The same report the approval links (issue #16): its key is this execution's id, filled in by the transformer.
    assert "?region=us-east-1&prefix=reports/evaluation/e-1/report.html" in message
    assert "https://us-east-1.console.aws.amazon.com/s3/object/" in message
    assert "Where to look: https://us-east-1.console.aws.amazon.com/codesuite/codepipeline/pipelines/" in message
