"""The job-failure rule's event pattern on a real EventBridge API (moto server): a FAILED job of the
stack's queue matches; a success, or a failure on another queue, does not."""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3

from infra.observability.observability import job_failed_pattern
from tests.support.servers import wait_until

QUEUE = "arn:aws:batch:us-east-1:123456789012:job-queue/ml-delivery-dev-jobs"


def batch_event(status: str, queue: str, job: str) -> dict[str, Any]:
    """A "Batch Job State Change" event as Batch sends it (Batch User Guide, "Job state change events")."""
    detail = {"jobName": job, "jobId": uuid.uuid4().hex, "jobQueue": queue, "status": status,
              "statusReason": "CannotPullContainerError: image not found",
              "jobDefinition": "arn:aws:batch:us-east-1:123456789012:job-definition/ml-delivery-dev-drift:1",
              "container": {"logStreamName": f"drift/default/{uuid.uuid4().hex}"}}  # fmt: skip
    return {"Source": "aws.batch", "DetailType": "Batch Job State Change", "Detail": json.dumps(detail)}


def test_only_failed_jobs_of_the_stacks_queue_match(moto_server: Any) -> None:
    endpoint = moto_server.endpoint_url
    events = boto3.client("events", endpoint_url=endpoint, region_name="us-east-1")
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
    suffix = uuid.uuid4().hex[:8]
    bus = f"jobs-{suffix}"
    events.create_event_bus(Name=bus)
    queue_url = sqs.create_queue(QueueName=f"job-failed-{suffix}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="job-failed", EventBusName=bus, EventPattern=job_failed_pattern(QUEUE))
    events.put_targets(Rule="job-failed", EventBusName=bus, Targets=[{"Id": "sqs", "Arn": queue_arn}])

    sent = [
        batch_event("SUCCEEDED", QUEUE, "scheduled-drift"),
        batch_event("FAILED", QUEUE.replace("ml-delivery-dev-jobs", "someone-elses-queue"), "other"),
        batch_event("RUNNABLE", QUEUE, "scheduled-summary"),
        batch_event("FAILED", QUEUE, "scheduled-retrain"),
    ]
    events.put_events(Entries=[{**entry, "EventBusName": bus} for entry in sent])

    received: list[dict[str, Any]] = []

    def failed_arrived() -> bool:
        for message in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
            received.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        return bool(received)

    wait_until(failed_arrived, timeout=10, what="the FAILED job event on the queue")
    # moto delivers to targets inside PutEvents, so every match of that one call is already queued: drain again.
    failed_arrived()
    assert [(e["detail"]["jobName"], e["detail"]["status"]) for e in received] == [("scheduled-retrain", "FAILED")]
