"""REQUIRED_CALLS: the AWS calls each component's principals must be able to make, one table per component.

Each entry names the principal (a planned role, or a service principal), the action, the resource, the
request context AWS sends (``kms:ViaService``, ``iam:PassedToService``, encryption context, ``aws:Source*``)
and the AWS doc that says the call is made. ``tests/security/test_permission_model.py`` evaluates every
entry against both stacks' planned policies with ``@cloud-copilot/iam-simulate`` and fails on a denial.
``defect`` marks calls that cannot be shown allowed today (the test marks them xfail, strict).
"""

from __future__ import annotations

from tools.iam.simulate import STAR, Call, Ref

ACCOUNT = "123456789012"  # the offline runtime's account (tools/plan/offline.py ACCOUNT_ID)
REGION = "us-east-1"
KEY = Ref("aws:kms/key:Key", "data-key")
TOPIC = Ref("aws:sns/topic:Topic", "alerts-topic")
LOGS_GROUP_ARN = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:"


def _serving(service: str) -> list[Call]:
    component = f"serving ({service})"
    task, execution = f"{service}-task-role", f"{service}-execution-role"
    return [
        Call(component, "ecs-tasks.amazonaws.com", "sts:AssumeRole", Ref("aws:iam/role:Role", task),
             "ECS Developer Guide, 'Amazon ECS task IAM role' (trust ecs-tasks.amazonaws.com)",
             {"aws:SourceAccount": ACCOUNT}),
        Call(component, task, "s3:PutObject",
             Ref("aws:s3/bucket:Bucket", "buckets-capture", f"/capture/{service}/2026/12/01/batch.jsonl.gz"),
             "docs/app.md capture sink: PutObject under capture/<service>/"),
        Call(component, task, "kms:GenerateDataKey", KEY,
             "S3 User Guide, 'Using SSE-KMS': PutObject to an SSE-KMS bucket calls GenerateDataKey",
             {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}),
        Call(component, task, "ssm:GetParameter",
             Ref("aws:ssm/parameter:Parameter", f"{service}-runtime-settings"),
             "app/runtime_settings.py: GetParameter WithDecryption every SETTINGS_REFRESH_SECONDS"),
        Call(component, task, "kms:Decrypt", KEY,
             "SSM User Guide, 'How Parameter Store uses AWS KMS': SecureString reads call Decrypt",
             {"kms:ViaService": f"ssm.{REGION}.amazonaws.com"}),
        Call(component, execution, "ecr:BatchGetImage", Ref("aws:ecr/repository:Repository", "registry-app"),
             "ECS Developer Guide, 'Task execution IAM role': image pull from ECR"),
        Call(component, execution, "logs:PutLogEvents",
             Ref("aws:cloudwatch/logGroup:LogGroup", f"{service}-logs", ":log-stream:app/app/0123"),
             "ECS Developer Guide, 'Task execution IAM role': awslogs driver"),
    ]  # fmt: skip


ALERTS = [
    Call("alerts", "cloudwatch.amazonaws.com", "sns:Publish", TOPIC,
         "SNS Developer Guide, 'Amazon SNS topic policies for CloudWatch alarms'", {"aws:SourceAccount": ACCOUNT}),
    Call("alerts", "events.amazonaws.com", "sns:Publish", TOPIC,
         "EventBridge User Guide, 'Amazon SNS permissions'", {"aws:SourceAccount": ACCOUNT}),
    Call("alerts", "cloudwatch.amazonaws.com", "kms:GenerateDataKey", KEY,
         "SNS Developer Guide, 'Enable compatibility between event sources from AWS services and encrypted "
         "topics'", {"aws:SourceAccount": ACCOUNT}),
    # The SNS guide: aws:SourceAccount / aws:SourceArn are not supported for EventBridge -> encrypted topic,
    # so the request carries neither; a key policy conditioned on them would deny it (issue #12 defect 3).
    Call("alerts", "events.amazonaws.com", "kms:GenerateDataKey", KEY,
         "SNS Developer Guide, 'Enable compatibility between event sources ... and encrypted topics'"),
    Call("alerts", "events.amazonaws.com", "kms:Decrypt", KEY,
         "SNS Developer Guide, 'Enable compatibility between event sources ... and encrypted topics'"),
]  # fmt: skip

ENCRYPTED_LOGS = [
    Call("encryption at rest", f"logs.{REGION}.amazonaws.com", action, KEY,
         "CloudWatch Logs User Guide, 'Encrypt log data in CloudWatch Logs using AWS KMS' (encryption context "
         "kms:EncryptionContext:aws:logs:arn)",
         {"kms:EncryptionContext:aws:logs:arn": f"{LOGS_GROUP_ARN}/ml-delivery/dev/stage"},
         defect="engine limit: iam-simulate 0.1.173 drops the variable context key kms:EncryptionContext:aws:logs:arn "
                "(its name holds ':'), so the ArnLike condition cannot match; the statement is asserted on the plan")
    for action in ("kms:GenerateDataKey", "kms:Decrypt", "kms:Encrypt", "kms:DescribeKey")
]  # fmt: skip

SCHEDULES = [
    Call("jobs schedules", "jobs-schedules-retrain-role", "batch:SubmitJob",
         Ref("aws:batch/jobQueue:JobQueue", "jobs-queue"),
         "Scheduler User Guide, 'Using universal targets' (batch:submitJob)"),
    Call("jobs schedules", "jobs-schedules-retrain-role", "kms:Decrypt", KEY,
         "Scheduler User Guide, 'Encryption at rest': a customer managed key needs kms:Decrypt on the "
         "execution role", {"kms:ViaService": f"scheduler.{REGION}.amazonaws.com"}),
]  # fmt: skip

NETWORK = [
    Call("network", "vpc-flow-logs.amazonaws.com", "sts:AssumeRole", Ref("aws:iam/role:Role", "network-flow-logs-role"),
         "VPC User Guide, 'IAM role for publishing flow logs to CloudWatch Logs'", {"aws:SourceAccount": ACCOUNT}),
    Call("network", "network-flow-logs-role", "logs:PutLogEvents",
         Ref("aws:cloudwatch/logGroup:LogGroup", "network-flow-logs", ":log-stream:eni-0123"),
         "VPC User Guide, 'IAM role for publishing flow logs to CloudWatch Logs'"),
    Call("network", "network-flow-logs-role", "logs:DescribeLogGroups", STAR,
         "VPC User Guide, 'IAM role for publishing flow logs to CloudWatch Logs' lists logs:DescribeLogGroups"),
]  # fmt: skip

PIPELINE = [
    Call("pipeline", "delivery-pipeline-role", "ecs:ListTasks", STAR,
         "Service Authorization Reference, Amazon ECS: a cluster-wide ListTasks is authorized on '*' and "
         "scoped by ecs:cluster (issue #12 defect 6)", {"ecs:cluster": Ref("aws:ecs/cluster:Cluster", "prod-cluster")}),
    Call("pipeline", "delivery-pipeline-role", "iam:PassRole", Ref("aws:iam/role:Role", "prod-task-role"),
         "ECS deploy action: RegisterTaskDefinition passes the task role",
         {"iam:PassedToService": "ecs-tasks.amazonaws.com"}),
]  # fmt: skip

RELEASE = [
    *(
        Call("release", "delivery-release-role", action,
             Ref("aws:ssm/parameter:Parameter", f"{service}-deployed-image"),
             "release/deployed_image.py: the Release step records what runs for Pulumi (docs/pipeline.md)")
        for service in ("stage", "prod")
        for action in ("ssm:PutParameter", "ssm:GetParameter")
    ),
    *(
        Call("release", "delivery-release-role", action, KEY,
             "SSM User Guide, 'How Parameter Store uses AWS KMS': a SecureString write encrypts with the key",
             {"kms:ViaService": f"ssm.{REGION}.amazonaws.com"})
        for action in ("kms:Encrypt", "kms:GenerateDataKey")
    ),
    *(
        Call("release", "delivery-release-role", action, Ref("aws:ecr/repository:Repository", repository),
             "ECR User Guide, 'Retagging an image': BatchGetImage then PutImage (release/image_tags.py)")
        for repository in ("registry-app", "registry-jobs")
        for action in ("ecr:BatchGetImage", "ecr:PutImage")
    ),
]  # fmt: skip

ACCESS_LOGS = [
    Call("access logs", "logdelivery.elasticloadbalancing.amazonaws.com", "s3:PutObject",
         Ref("aws:s3/bucket:Bucket", "access-logs", f"/alb/prod/AWSLogs/{ACCOUNT}/elasticloadbalancing/x.log.gz"),
         "ELB User Guide, 'Attach a policy to your S3 bucket' (log delivery service principal)",
         {"aws:SourceAccount": ACCOUNT}),
    Call("access logs", "logging.s3.amazonaws.com", "s3:PutObject",
         Ref("aws:s3/bucket:Bucket", "access-logs", "/s3/buckets-capture/2026-12-01-00-00-00-ABCDEF"),
         "S3 User Guide, 'Enabling Amazon S3 server access logging' (logging service principal)",
         {"aws:SourceAccount": ACCOUNT}),
    Call("events", "events.amazonaws.com", "sqs:SendMessage", Ref("aws:sqs/queue:Queue", "events-dlq"),
         "EventBridge User Guide, 'Granting permissions to the dead-letter queue'",
         {"aws:SourceAccount": ACCOUNT, "aws:SourceArn": f"arn:aws:events:{REGION}:{ACCOUNT}:rule/ml-delivery-x"}),
]  # fmt: skip

REQUIRED_CALLS: list[Call] = [*_serving("stage"), *_serving("prod"), *ALERTS, *ENCRYPTED_LOGS, *SCHEDULES,
                              *NETWORK, *PIPELINE, *RELEASE, *ACCESS_LOGS]  # fmt: skip
