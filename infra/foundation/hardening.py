"""Secure-by-default additions (issue #17), kept apart from the components they harden.

* :func:`register_encryption_at_rest`: a stack transformation that puts every CloudWatch log group,
  EventBridge Scheduler schedule and ECR repository declared after it on the stack's KMS key, so a
  component added later cannot forget it (checkov CKV_AWS_158, CKV_AWS_297, CKV_AWS_136).
* :func:`key_policy_service_statements`: the key-policy entries those services need.
* :class:`AccessLogs`: the bucket that receives ALB and S3 server access logs (SSE-S3: ALB access logs
  support no other encryption).
* :class:`WebFirewall`: a WAFv2 web ACL with AWS managed rule groups and a per-IP rate rule.
* :func:`empty_default_security_group`: adopts the VPC's default security group with no rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.foundation.storage import block_public_access
from infra.lib import iam
from infra.lib.images import PYTHON_BASE_IMAGE
from infra.observability.alerts import dead_letter_alarm

LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
SCHEDULE = "aws:scheduler/schedule:Schedule"
ECR_REPOSITORY = "aws:ecr/repository:Repository"
ENCRYPTED_TYPES = (LOG_GROUP, SCHEDULE, ECR_REPOSITORY)
# What CloudWatch Logs does with the key (CloudWatch Logs User Guide, "Encrypt log data in CloudWatch
# Logs using AWS KMS", step 2: the key policy entry for logs.<region>.amazonaws.com), as an explicit list.
LOGS_KEY_ACTIONS = ("kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey",
                    "kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncryptFrom", "kms:ReEncryptTo")  # fmt: skip
# AWS managed rule groups (WAF Developer Guide, "AWS Managed Rules rule groups list"): the baseline
# ("core rule set"), known bad inputs (Log4j and similar), and Amazon's IP reputation list.
MANAGED_RULE_GROUPS = ("AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet",
                       "AWSManagedRulesAmazonIpReputationList", "AWSManagedRulesAnonymousIpList")  # fmt: skip
# Rules of those groups only counted, not blocked: model clients are often servers in a cloud, which the
# anonymous-IP group's HostingProviderIPList would block (WAF Developer Guide, "Anonymous IP list").
COUNT_ONLY_RULES = {"AWSManagedRulesAnonymousIpList": ("HostingProviderIPList",)}
ACCESS_LOG_RETENTION_DAYS = 90
# What the services run before the pipeline's first deploy, from ECR Public rather than Docker Hub (whose
# anonymous pull limit a NAT gateway's one address soon hits): the official Python image running a
# standard-library server that answers 200 on every path at $PORT, so the ALB health check passes.
BOOTSTRAP_IMAGE = PYTHON_BASE_IMAGE  # pinned by digest (infra/lib/images.py)
# The pipeline's ECS deploy action copies the service's task definition and swaps only the image
# (CodePipeline User Guide, "Amazon ECS deploy action": imagedefinitions.json names image URIs only), so the
# first pipeline deploy runs this command in the APP image. There it hands over to the app exactly as the
# image's CMD does (docker/app.Dockerfile `CMD ["python", "-m", "app"]`; tests/security/test_hardening.py
# ties the two); in the bootstrap image, where no `app` package exists, it serves 200 on every GET.
BOOTSTRAP_SERVER = (
    "import http.server, importlib.util, os, sys\n"
    "if importlib.util.find_spec('app') is not None:\n"
    "    os.execvp(sys.executable, [sys.executable, '-m', 'app'])\n"
    "class Bootstrap(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        body = b'bootstrap: no model released yet\\n'\n"
    "        self.send_response(200)\n"
    "        self.send_header('Content-Type', 'text/plain')\n"
    "        self.send_header('Content-Length', str(len(body)))\n"
    "        self.end_headers()\n"
    "        self.wfile.write(body)\n"
    "address = (os.environ.get('BIND_ADDRESS', ''), int(os.environ['PORT']))\n"
    "http.server.ThreadingHTTPServer(address, Bootstrap).serve_forever()\n"
)


def register_encryption_at_rest(key_arn: pulumi.Input[str]) -> None:
    """Encrypt log groups, schedules and ECR repositories declared from now on with ``key_arn``.

    Log groups: CloudWatch Logs User Guide, "Encrypt log data ... using AWS KMS" (``kmsKeyId``; the key
    policy entry is :func:`key_policy_service_statements`). Schedules: Scheduler User Guide, "Encryption
    at rest" (``kmsKeyArn``; the execution role needs ``kms:Decrypt``). ECR: ECR User Guide, "Encryption
    at rest" (``KMS`` with the key; ECR creates its own grant; set at creation only).
    """

    def encrypt(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
        props: dict[str, Any] = dict(args.props)
        if args.type_ == LOG_GROUP and not props.get("kms_key_id"):
            props["kms_key_id"] = key_arn
        elif args.type_ == SCHEDULE and not props.get("kms_key_arn"):
            props["kms_key_arn"] = key_arn
        elif args.type_ == ECR_REPOSITORY:
            props["encryption_configurations"] = [
                aws.ecr.RepositoryEncryptionConfigurationArgs(encryption_type="KMS", kms_key=key_arn)
            ]
        else:
            return None
        return pulumi.ResourceTransformationResult(props=props, opts=args.opts)

    pulumi.runtime.register_stack_transformation(encrypt)


def key_policy_service_statements(
    region: pulumi.Input[str], account_id: pulumi.Input[str], partition: pulumi.Input[str]
) -> list[iam.Statement]:
    """Key-policy statements for services that use the stack key with their own principal.

    CloudWatch Logs encrypts as ``logs.<region>.amazonaws.com`` and always passes the log group's ARN
    as encryption context; the condition limits the key to this account's log groups in this region
    (CloudWatch Logs User Guide, "Encrypt log data in CloudWatch Logs using AWS KMS").
    """
    log_groups = pulumi.Output.concat("arn:", partition, ":logs:", region, ":", account_id, ":log-group:*")
    return [
        {"Sid": "CloudWatchLogsEncryptsLogGroups", "Effect": "Allow",
         "Principal": {"Service": pulumi.Output.concat("logs.", region, ".amazonaws.com")},
         "Action": list(LOGS_KEY_ACTIONS), "Resource": "*",
         "Condition": {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": log_groups}}},
    ]  # fmt: skip


@dataclass(frozen=True)
class AccessLogsArgs:
    account_id: pulumi.Input[str]
    partition: pulumi.Input[str]
    protect: bool
    region: str


class AccessLogs(pulumi.ComponentResource):
    """One bucket for ALB access logs (prefix ``alb/``) and S3 server access logs (prefix ``s3/``).

    Encryption is SSE-S3: ALB access logs "support only SSE-S3" (ELB User Guide, "Enable access logs for
    your Application Load Balancer", step 1). ALB delivery (ELB User Guide, "Attach a policy to your S3
    bucket"): Regions launched before August 2022 (us-east-1 among them) deliver as the Region's Elastic
    Load Balancing account, later ones as ``logdelivery.elasticloadbalancing.amazonaws.com``; the policy
    grants both, on ``alb/<service>/AWSLogs/<account>/`` only (the account comes from the provider's
    ``aws.elb.get_service_account``). S3 server access logs: ``logging.s3.amazonaws.com`` with
    ``aws:SourceAccount`` (S3 User Guide, "Enabling Amazon S3 server access logging").
    """

    def __init__(self, name: str, args: AccessLogsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ml-delivery:security:AccessLogs", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.bucket = aws.s3.Bucket(
            name,
            aws.s3.BucketArgs(force_destroy=not args.protect, tags={"purpose": "access-logs"}),
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-sse",
            aws.s3.BucketServerSideEncryptionConfigurationInitArgs(
                bucket=self.bucket.id,
                rules=[
                    aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                        apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                            sse_algorithm="AES256"
                        )
                    )
                ],
            ),
            opts=child,
        )
        access_block = block_public_access(name, self.bucket.id, child)
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            aws.s3.BucketLifecycleConfigurationArgs(
                bucket=self.bucket.id,
                rules=[
                    aws.s3.BucketLifecycleConfigurationRuleArgs(
                        id="expire-access-logs",
                        status="Enabled",
                        filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                        expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(
                            days=ACCESS_LOG_RETENTION_DAYS
                        ),
                        abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                            days_after_initiation=1
                        ),
                    )
                ],
            ),
            opts=child,
        )
        objects = self.bucket.arn.apply(lambda arn: f"{arn}/*")
        source_account = {"StringEquals": {"aws:SourceAccount": args.account_id}}
        # Keys are <prefix>/AWSLogs/<account>/..., and each ALB's prefix is alb/<service> (model_service.py).
        alb_logs = pulumi.Output.concat(self.bucket.arn, "/alb/*/AWSLogs/", args.account_id, "/*")
        elb_account = aws.elb.get_service_account(region=args.region).arn
        self.policy = aws.s3.BucketPolicy(
            f"{name}-policy",
            aws.s3.BucketPolicyArgs(
                bucket=self.bucket.id,
                policy=iam.document(
                    [
                        {"Sid": "AlbLogDelivery", "Effect": "Allow",
                         "Principal": {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"},
                         "Action": "s3:PutObject", "Resource": alb_logs, "Condition": source_account},
                        {"Sid": "AlbLogDeliveryRegionalElbAccount", "Effect": "Allow",
                         "Principal": {"AWS": elb_account}, "Action": "s3:PutObject", "Resource": alb_logs},
                        {"Sid": "S3ServerAccessLogDelivery", "Effect": "Allow",
                         "Principal": {"Service": "logging.s3.amazonaws.com"}, "Action": "s3:PutObject",
                         "Resource": pulumi.Output.concat(self.bucket.arn, "/s3/*"), "Condition": source_account},
                        {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
                         "Resource": [self.bucket.arn, objects],
                         "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
                    ]
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[access_block]),
        )  # fmt: skip
        self.name = self.bucket.bucket
        self.arn = self.bucket.arn
        self.register_outputs({"name": self.bucket.bucket})

    def log_bucket(self, name: str, bucket: aws.s3.Bucket, parent: pulumi.Resource) -> aws.s3.BucketLogging:
        """S3 server access logs of ``bucket`` to ``s3/<name>/`` here (S3 User Guide, "Logging requests")."""
        return aws.s3.BucketLogging(
            f"{name}-access-logging",
            aws.s3.BucketLoggingInitArgs(bucket=bucket.id, target_bucket=self.bucket.id, target_prefix=f"s3/{name}/"),
            opts=pulumi.ResourceOptions(parent=parent, depends_on=[self.policy]),
        )


@dataclass(frozen=True)
class WebFirewallArgs:
    load_balancer_arn: pulumi.Input[str]
    rate_limit_per_5_minutes: int
    log_retention_days: int


class WebFirewall(pulumi.ComponentResource):
    """A regional web ACL on one ALB: allow by default, AWS managed rule groups, a per-IP rate rule.

    WAF Developer Guide, "Rate-based rule statement": the limit counts requests per source IP over a
    5-minute window (minimum 10 since 2024; this program requires at least 100).
    """

    def __init__(self, name: str, args: WebFirewallArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ml-delivery:security:WebFirewall", name, None, opts)
        rules = [
            aws.wafv2.WebAclRuleArgs(
                name=group,
                priority=index,
                override_action=aws.wafv2.WebAclRuleOverrideActionArgs(
                    # pulumi-aws generates this argument-less Args class without an annotated __init__.
                    none=aws.wafv2.WebAclRuleOverrideActionNoneArgs()  # type: ignore[no-untyped-call]
                ),
                statement=aws.wafv2.WebAclRuleStatementArgs(
                    managed_rule_group_statement=aws.wafv2.WebAclRuleStatementManagedRuleGroupStatementArgs(
                        name=group,
                        vendor_name="AWS",
                        rule_action_overrides=[
                            aws.wafv2.WebAclRuleStatementManagedRuleGroupStatementRuleActionOverrideArgs(
                                name=rule,
                                action_to_use=aws.wafv2.WebAclRuleStatementManagedRuleGroupStatementRuleActionOverrideActionToUseArgs(
                                    count=aws.wafv2.WebAclRuleStatementManagedRuleGroupStatementRuleActionOverrideActionToUseCountArgs()
                                ),
                            )
                            for rule in COUNT_ONLY_RULES.get(group, ())
                        ]
                        or None,
                    )
                ),
                visibility_config=_rule_visibility(group),
            )
            for index, group in enumerate(MANAGED_RULE_GROUPS)
        ]
        rules.append(
            aws.wafv2.WebAclRuleArgs(
                name="rate-limit-per-ip",
                priority=len(MANAGED_RULE_GROUPS),
                action=aws.wafv2.WebAclRuleActionArgs(block=aws.wafv2.WebAclRuleActionBlockArgs()),
                statement=aws.wafv2.WebAclRuleStatementArgs(
                    rate_based_statement=aws.wafv2.WebAclRuleStatementRateBasedStatementArgs(
                        limit=args.rate_limit_per_5_minutes, aggregate_key_type="IP"
                    )
                ),
                visibility_config=_rule_visibility("rate-limit-per-ip"),
            )
        )
        self.web_acl = aws.wafv2.WebAcl(
            f"{name}-acl",
            aws.wafv2.WebAclArgs(
                scope="REGIONAL",
                default_action=aws.wafv2.WebAclDefaultActionArgs(allow=aws.wafv2.WebAclDefaultActionAllowArgs()),
                rules=rules,
                visibility_config=_visibility(name),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.wafv2.WebAclAssociation(
            f"{name}-association",
            aws.wafv2.WebAclAssociationArgs(resource_arn=args.load_balancer_arn, web_acl_arn=self.web_acl.arn),
            opts=pulumi.ResourceOptions(parent=self),
        )
        # WAF Developer Guide, "Sending web ACL traffic logs to a CloudWatch Logs log group": the group name
        # must start with "aws-waf-logs-"; WAF adds the log group resource policy it needs itself. The
        # group is on the stack key like every log group (register_encryption_at_rest).
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            aws.cloudwatch.LogGroupArgs(
                name=f"aws-waf-logs-ml-delivery-{pulumi.get_stack()}-{name}",
                retention_in_days=args.log_retention_days,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.wafv2.WebAclLoggingConfiguration(
            f"{name}-logging",
            aws.wafv2.WebAclLoggingConfigurationArgs(
                resource_arn=self.web_acl.arn, log_destination_configs=[log_group.arn]
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"webAclArn": self.web_acl.arn})


def _visibility(metric: str) -> aws.wafv2.WebAclVisibilityConfigArgs:
    return aws.wafv2.WebAclVisibilityConfigArgs(
        cloudwatch_metrics_enabled=True, metric_name=metric, sampled_requests_enabled=True
    )


def _rule_visibility(metric: str) -> aws.wafv2.WebAclRuleVisibilityConfigArgs:
    """The same settings as ``_visibility`` in the rule's own Args type (pulumi-aws types them apart)."""
    return aws.wafv2.WebAclRuleVisibilityConfigArgs(
        cloudwatch_metrics_enabled=True, metric_name=metric, sampled_requests_enabled=True
    )


def empty_default_security_group(name: str, vpc_id: pulumi.Input[str], parent: pulumi.Resource) -> None:
    """Adopt the VPC's default security group and remove all its rules (VPC User Guide, "Default security
    groups for your VPCs": it cannot be deleted; with no rules nothing placed in it by accident talks)."""
    aws.ec2.DefaultSecurityGroup(
        f"{name}-default-sg",
        aws.ec2.DefaultSecurityGroupArgs(vpc_id=vpc_id, ingress=[], egress=[]),
        opts=pulumi.ResourceOptions(parent=parent),
    )


EVENT_RULE = "aws:cloudwatch/eventRule:EventRule"
EVENT_TARGET = "aws:cloudwatch/eventTarget:EventTarget"
DLQ_RETENTION_SECONDS = 14 * 24 * 3600  # SQS's longest: a failed delivery is still there after a long weekend


@dataclass(frozen=True)
class EventDeliveryArgs:
    account_id: pulumi.Input[str]
    region: str
    partition: pulumi.Input[str]
    alerts_topic_arn: pulumi.Input[str]


class EventDelivery(pulumi.ComponentResource):
    """Nothing EventBridge fails to deliver is lost silently.

    :meth:`register` installs a stack transformation that gives every EventBridge target declared after it
    this dead-letter queue (EventBridge User Guide, "Using dead-letter queues to process undelivered
    events") and remembers every rule; :meth:`alarm_failed_invocations` then adds one ``FailedInvocations``
    alarm per rule (EventBridge User Guide, "Monitoring Amazon EventBridge", metric dimension RuleName).
    An alarm on the queue depth pages the alerts topic too. The queue uses SSE-SQS: a customer managed key
    would need its own key-policy entry for events.amazonaws.com, which issue #12 is reworking.
    """

    def __init__(self, name: str, args: EventDeliveryArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ml-delivery:security:EventDelivery", name, None, opts)
        self._name, self._args = name, args
        self._rules: list[tuple[str, aws.cloudwatch.EventRule]] = []
        self.queue = aws.sqs.Queue(
            f"{name}-dlq",
            aws.sqs.QueueArgs(sqs_managed_sse_enabled=True, message_retention_seconds=DLQ_RETENTION_SECONDS),
            opts=pulumi.ResourceOptions(parent=self),
        )
        rules = pulumi.Output.concat("arn:", args.partition, ":events:", args.region, ":", args.account_id, ":rule/*")
        # EventBridge User Guide, "Granting permissions to the dead-letter queue": events.amazonaws.com may
        # SendMessage, only for this account's rules.
        aws.sqs.QueuePolicy(
            f"{name}-dlq-policy",
            aws.sqs.QueuePolicyArgs(
                queue_url=self.queue.url,
                policy=iam.document(
                    [
                        {"Sid": "EventBridgeDeadLetters", "Effect": "Allow",
                         "Principal": {"Service": "events.amazonaws.com"}, "Action": "sqs:SendMessage",
                         "Resource": self.queue.arn,
                         "Condition": {"ArnLike": {"aws:SourceArn": rules},
                                       "StringEquals": {"aws:SourceAccount": args.account_id}}},
                    ]
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )  # fmt: skip
        dead_letter_alarm(
            f"{name}-dlq-not-empty",
            self.queue.name,
            "EventBridge could not deliver an event to its target (an alert, a pipeline start). "
            "Where to look: the messages in this dead-letter queue carry ERROR_CODE and ERROR_MESSAGE.",
            args.alerts_topic_arn,
            pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"queueArn": self.queue.arn})

    def register(self) -> None:
        queue_arn = self.queue.arn

        def dead_letter(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
            if args.type_ == EVENT_RULE:
                self._rules.append((args.name, args.resource))  # type: ignore[arg-type]
                return None
            if args.type_ != EVENT_TARGET or args.props.get("dead_letter_config"):
                return None
            props = dict(args.props)
            props["dead_letter_config"] = aws.cloudwatch.EventTargetDeadLetterConfigArgs(arn=queue_arn)
            return pulumi.ResourceTransformationResult(props=props, opts=args.opts)

        pulumi.runtime.register_stack_transformation(dead_letter)

    def alarm_failed_invocations(self) -> None:
        """One alarm per rule seen: any failed invocation in 5 minutes pages the alerts topic."""
        for logical_name, rule in self._rules:
            aws.cloudwatch.MetricAlarm(
                f"{logical_name}-failed-invocations",
                aws.cloudwatch.MetricAlarmArgs(
                    alarm_description=pulumi.Output.concat(
                        "EventBridge rule ",
                        rule.name,
                        " failed to invoke its target (after retries; the event "
                        "is in the events dead-letter queue). Where to look: the queue's messages.",
                    ),
                    namespace="AWS/Events",
                    metric_name="FailedInvocations",
                    dimensions={"RuleName": rule.name},
                    statistic="Sum",
                    period=300,
                    evaluation_periods=1,
                    threshold=1.0,
                    comparison_operator="GreaterThanOrEqualToThreshold",
                    treat_missing_data="notBreaching",
                    alarm_actions=[self._args.alerts_topic_arn],
                    ok_actions=[self._args.alerts_topic_arn],
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
