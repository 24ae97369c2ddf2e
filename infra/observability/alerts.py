"""The one alerts topic: service alarms, pipeline events, approvals and every job's alerts end here."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.lib import iam

# On-call (e-mail, SMS) is paged for everything except INFO (issue #12, defect 9: the 10-minute prediction
# summary is INFO). The jobs' alerts carry a ``severity`` message attribute (alerting.AlertPublisher);
# CloudWatch alarms and EventBridge rules publish without attributes and must still page, hence the
# ``exists: false`` branch. SNS Developer Guide, "Amazon SNS message filtering": attribute key matching
# ("exists"), "anything-but" matching and OR logic ("$or"). INFO reports stay in S3 (reports/summary).
PAGER_FILTER_POLICY = json.dumps(
    {"$or": [{"severity": [{"exists": False}]}, {"severity": [{"anything-but": ["INFO"]}]}]}, sort_keys=True
)


@dataclass(frozen=True)
class AlertsArgs:
    kms_key_arn: pulumi.Input[str]
    account_id: pulumi.Input[str]
    emails: tuple[str, ...]
    sms_numbers: tuple[str, ...]


class Alerts(pulumi.ComponentResource):
    def __init__(self, name: str, args: AlertsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ml-delivery:alerts:Alerts", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.topic = aws.sns.Topic(
            f"{name}-topic",
            aws.sns.TopicArgs(kms_master_key_id=args.kms_key_arn, display_name=f"ml-delivery {pulumi.get_stack()}"),
            opts=child,
        )
        # EventBridge rules and CloudWatch alarms publish as service principals, which need the topic
        # policy (SNS Developer Guide, "Amazon SNS topic policies for EventBridge / CloudWatch"); the
        # account's own roles publish through IAM. Publishing without TLS is denied.
        aws.sns.TopicPolicy(
            f"{name}-topic-policy",
            aws.sns.TopicPolicyArgs(
                arn=self.topic.arn,
                policy=iam.document(
                    [
                        {
                            "Sid": "ServicesPublishAlerts",
                            "Effect": "Allow",
                            "Principal": {"Service": ["events.amazonaws.com", "cloudwatch.amazonaws.com"]},
                            "Action": "sns:Publish",
                            "Resource": self.topic.arn,
                            "Condition": {"StringEquals": {"aws:SourceAccount": args.account_id}},
                        },
                        {
                            "Sid": "DenyInsecureTransport",
                            "Effect": "Deny",
                            "Principal": "*",
                            "Action": "sns:Publish",
                            "Resource": self.topic.arn,
                            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                        },
                    ]
                ),
            ),
            opts=child,
        )
        # People are paged by email and SMS alike: the same filter, one subscription per address.
        for protocol, endpoints in (("email", args.emails), ("sms", args.sms_numbers)):
            for index, endpoint in enumerate(endpoints):
                aws.sns.TopicSubscription(
                    f"{name}-{protocol}-{index}",
                    aws.sns.TopicSubscriptionArgs(
                        topic=self.topic.arn,
                        protocol=protocol,
                        endpoint=endpoint,
                        filter_policy=PAGER_FILTER_POLICY,
                        filter_policy_scope="MessageAttributes",
                    ),
                    opts=child,
                )
        self.topic_arn = self.topic.arn
        self.register_outputs({"topicArn": self.topic.arn})

    def publish_grant(self) -> iam.Statement:
        return iam.allow(["sns:Publish"], [self.topic.arn], sid="PublishAlerts")


def dead_letter_alarm(
    name: str,
    queue_name: pulumi.Input[str],
    description: str,
    topic_arn: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
) -> aws.cloudwatch.MetricAlarm:
    """An alarm on the alerts topic as soon as a dead-letter queue holds a message (and OK when emptied).

    Shared by every dead-letter queue of the stack (EventBridge targets, Scheduler schedules): a message
    there is an event or a job that was never delivered, which must not stay silent.
    """
    return aws.cloudwatch.MetricAlarm(
        name,
        aws.cloudwatch.MetricAlarmArgs(
            alarm_description=description,
            namespace="AWS/SQS",
            metric_name="ApproximateNumberOfMessagesVisible",
            dimensions={"QueueName": queue_name},
            statistic="Maximum",
            period=300,
            evaluation_periods=1,
            threshold=1.0,
            comparison_operator="GreaterThanOrEqualToThreshold",
            treat_missing_data="notBreaching",
            alarm_actions=[topic_arn],
            ok_actions=[topic_arn],
        ),
        opts=opts,
    )
