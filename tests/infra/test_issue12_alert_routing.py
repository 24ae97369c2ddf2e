"""Issue #12 defect 9: the INFO prediction summary (every 10 minutes) must not page on-call.

The pager subscriptions (e-mail, SMS) carry the plan's filter policy; the test sends it to a real SNS API
(moto on loopback) with an SQS probe subscribed under the same policy, and publishes what the system
publishes: job alerts through the real ``AlertPublisher`` (severity attribute), and alarm/EventBridge
messages, which carry no attributes at all.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import boto3

from alerting import Alert, AlertPublisher, LocalDedupStore, Severity
from tests.support.servers import wait_until
from tools.plan.offline import OfflineRun

SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"


def test_every_pager_subscription_filters_out_info(prod: OfflineRun) -> None:
    subscriptions = prod.of_type(SUBSCRIPTION)
    assert {s.inputs["protocol"] for s in subscriptions} == {"email", "sms"}
    for subscription in subscriptions:
        assert subscription.inputs.get("filterPolicyScope") == "MessageAttributes", subscription.name
        assert "filterPolicy" in subscription.inputs, subscription.name


def test_info_never_reaches_a_pager_but_warnings_alarms_and_events_do(
    moto_server: Any, prod: OfflineRun, tmp_path: Any
) -> None:
    (subscription, *_) = prod.of_type(SUBSCRIPTION)
    endpoint = moto_server.endpoint_url
    sns = boto3.client("sns", endpoint_url=endpoint, region_name="us-east-1")
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
    suffix = uuid.uuid4().hex[:8]
    topic = sns.create_topic(Name=f"alerts-{suffix}")["TopicArn"]
    queue_url = sqs.create_queue(QueueName=f"pager-{suffix}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=queue_arn,
        Attributes={
            "FilterPolicy": subscription.inputs["filterPolicy"],
            "FilterPolicyScope": subscription.inputs["filterPolicyScope"],
            "RawMessageDelivery": "true",
        },
    )
    publisher = AlertPublisher(sns, topic, LocalDedupStore(tmp_path / "dedup"), window=timedelta(0))

    def alert(severity: Severity, kind: str) -> Alert:
        return Alert(source="monitor.summary", kind=kind, severity=severity, summary=kind, where_to_look="s3")

    assert publisher.publish(alert(Severity.INFO, "summary"))
    assert publisher.publish(alert(Severity.WARNING, "drift-detected"))
    assert publisher.publish(alert(Severity.CRITICAL, "retrain-failed"))
    # A CloudWatch alarm or an EventBridge rule target publishes without message attributes.
    sns.publish(TopicArn=topic, Message=json.dumps({"AlarmName": "prod-5xx", "NewStateValue": "ALARM"}))

    received: list[str] = []

    def all_arrived() -> bool:
        for message in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
            received.append(message["Body"])
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        return len(received) >= 3

    wait_until(all_arrived, timeout=20, what="WARNING, CRITICAL and the alarm on the pager probe")
    assert any("How bad: WARNING" in body for body in received)
    assert any("How bad: CRITICAL" in body for body in received)
    assert any("prod-5xx" in body for body in received)
    # The INFO summary was published before all three and never arrived (SNS delivers to SQS in order here).
    assert not any("How bad: INFO" in body for body in received), received
    assert len(received) == 3
