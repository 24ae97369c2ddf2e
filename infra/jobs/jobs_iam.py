"""Least-privilege statements for each Batch job's role: one role per job, because each touches
different prefixes (retrain never sees captured payloads; drift, summary and inference never write the
model key, which is what starts the delivery pipeline)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from contracts.bucket_layout import (
    ALERTS_SENT_PREFIX,
    CHAMPION_KEY,
    INFERENCE_INPUT_PREFIX,
    INFERENCE_OUTPUT_PREFIX,
    MODELS_PREFIX,
    REPORT_PREFIXES,
)
from infra.jobs.jobs_spec import CAPTURE_PREFIX, JobName
from infra.lib import iam


@dataclass(frozen=True)
class JobGrants:
    """What the statements are scoped to: this stack's buckets, topic, key, and the retrain job."""

    training_data_prefix: str  # retrain reads the labelled data under it
    model_key: str  # retrain writes the candidate there (what starts the pipeline); drift reads it
    drift_retrain_enabled: bool  # only then may the drift job submit the retrain job
    model_bucket_arn: pulumi.Input[str]
    capture_bucket_arn: pulumi.Input[str]
    alerts_topic_arn: pulumi.Input[str]
    data_key_grant: iam.Statement
    job_queue_arn: pulumi.Input[str]
    retrain_job_definition_arn_prefix: pulumi.Input[str]
    runtime_settings_arn: pulumi.Input[str] = ""  # prod runtime settings: the drift job reads capture_policy

    def model_object(self, key: str) -> pulumi.Output[str]:
        return pulumi.Output.concat(self.model_bucket_arn, "/", key)

    def capture_object(self, key: str) -> pulumi.Output[str]:
        return pulumi.Output.concat(self.capture_bucket_arn, "/", key)


def submit_job_resources(
    job_queue_arn: pulumi.Input[str], job_definition_arn_prefix: pulumi.Input[str]
) -> list[pulumi.Output[str]]:
    """What ``batch:SubmitJob`` of one job definition on one queue is authorised against.

    Batch User Guide, "Restrict job submission": both the queue and the job definition must be named, and
    the request ARN of a definition carries its revision, so ``<name>:*`` matches every revision. The
    Service Authorization Reference also lists the bare ``job-definition/<name>`` and the new job's own
    ``job/*`` ARN as resource types of SubmitJob; naming them too keeps the grant valid under either
    reading without widening it (the job ARN does not exist before the call, the queue and the
    definition still decide what may run)."""
    queue = pulumi.Output.from_input(job_queue_arn)
    prefix = pulumi.Output.from_input(job_definition_arn_prefix)
    return [
        queue,
        prefix,
        prefix.apply(lambda arn: f"{arn}:*"),
        queue.apply(lambda arn: f"{arn.split(':job-queue/', 1)[0]}:job/*"),
    ]


def _common(grants: JobGrants) -> list[iam.Statement]:
    return [
        # S3 API Reference, GetObject: without s3:ListBucket a missing key answers 403 instead of 404, and
        # the jobs rely on NoSuchKey (no champion yet, no alert sent yet). Listing shows key names only.
        iam.allow(["s3:ListBucket"], [grants.model_bucket_arn], sid="ListModelBucket"),
        # Dedup state of the alert publisher (alerting/publisher.py, S3DedupStore), read and written.
        iam.allow(
            ["s3:GetObject", "s3:PutObject"], [grants.model_object(f"{ALERTS_SENT_PREFIX}*")], sid="AlertDedupState"
        ),
        iam.allow(["sns:Publish"], [grants.alerts_topic_arn], sid="PublishAlerts"),
        grants.data_key_grant,
    ]


def _read_capture(grants: JobGrants) -> list[iam.Statement]:
    return [
        # S3 User Guide, "Condition key examples": s3:prefix limits ListBucket to the prod capture prefix.
        iam.allow(
            ["s3:ListBucket"],
            [grants.capture_bucket_arn],
            sid="ListProdCapture",
            Condition={"StringLike": {"s3:prefix": [f"{CAPTURE_PREFIX}/*"]}},
        ),
        iam.allow(["s3:GetObject"], [grants.capture_object(f"{CAPTURE_PREFIX}/*")], sid="ReadProdCapture"),
    ]


def retrain_statements(grants: JobGrants) -> list[iam.Statement]:
    return [
        *_common(grants),
        iam.allow(
            ["s3:GetObject"],
            [
                grants.model_object(f"{grants.training_data_prefix}*"),
                grants.model_object(CHAMPION_KEY),
                grants.model_object(f"{MODELS_PREFIX}*"),
            ],
            sid="ReadTrainingDataAndModels",
        ),
        iam.allow(
            ["s3:PutObject"],
            [
                grants.model_object(f"{MODELS_PREFIX}*"),
                grants.model_object(grants.model_key),
                grants.model_object(f"{REPORT_PREFIXES['retrain']}*"),
            ],
            sid="WriteCandidateAndReport",
        ),
    ]


def drift_statements(grants: JobGrants) -> list[iam.Statement]:
    statements = [
        *_common(grants),
        *_read_capture(grants),
        iam.allow(
            ["s3:GetObject"],
            [
                grants.model_object(CHAMPION_KEY),
                grants.model_object(f"{MODELS_PREFIX}*"),
                grants.model_object(grants.model_key),
            ],
            sid="ReadLiveModel",
        ),
        # The window marker the job writes last (monitor/window.py, RunLedger): where the next window starts.
        iam.allow(
            ["s3:GetObject"],
            [grants.model_object(f"{REPORT_PREFIXES['drift']}*/last-success.json")],
            sid="ReadDriftWindowMarker",
        ),
        iam.allow(["s3:PutObject"], [grants.model_object(f"{REPORT_PREFIXES['drift']}*")], sid="WriteDriftReports"),
        # Capture privacy (monitor/privacy.py): the policy capture used; the SecureString is decrypted with
        # the stack key, which _common's data key grant already covers.
        iam.allow(["ssm:GetParameter"], [grants.runtime_settings_arn], sid="ReadCapturePolicy"),
    ]
    if grants.drift_retrain_enabled:
        statements.append(
            iam.allow(
                ["batch:SubmitJob"],
                submit_job_resources(grants.job_queue_arn, grants.retrain_job_definition_arn_prefix),
                sid="SubmitRetrainOnDrift",
            )
        )
    return statements


def summary_statements(grants: JobGrants) -> list[iam.Statement]:
    # The summary reads captured payloads only, never a model (monitor/__main__.py, cmd_summary).
    return [
        *_common(grants),
        *_read_capture(grants),
        iam.allow(["s3:PutObject"], [grants.model_object(f"{REPORT_PREFIXES['summary']}*")], sid="WriteSummaries"),
    ]


def inference_statements(grants: JobGrants) -> list[iam.Statement]:
    return [
        *_common(grants),
        iam.allow(
            ["s3:GetObject"],
            [
                grants.model_object(CHAMPION_KEY),
                grants.model_object(f"{MODELS_PREFIX}*"),
                grants.model_object(f"{INFERENCE_INPUT_PREFIX}*"),
            ],
            sid="ReadModelsAndInput",
        ),
        # Large outputs go up as multipart uploads; abort lets a failed run clean up its parts.
        iam.allow(
            ["s3:PutObject", "s3:AbortMultipartUpload"],
            [grants.model_object(f"{INFERENCE_OUTPUT_PREFIX}*")],
            sid="WritePredictions",
        ),
    ]


STATEMENTS = {
    "retrain": retrain_statements,
    "drift": drift_statements,
    "summary": summary_statements,
    "inference": inference_statements,
}


def job_statements(job: JobName, grants: JobGrants) -> list[iam.Statement]:
    return STATEMENTS[job](grants)


def execution_statements(
    jobs_repository_arn: pulumi.Input[str],
    log_group_arn: pulumi.Input[str],
    capture_key_secret_arn: pulumi.Input[str] | None = None,
) -> list[iam.Statement]:
    """The ECS agent's role for every job: pull the jobs image, ship logs to the jobs log group, and (with a
    capture HMAC key) fetch that one secret for the drift job's `secrets` entry."""
    streams = pulumi.Output.from_input(log_group_arn).apply(lambda arn: f"{arn}:log-stream:*")
    key = [] if capture_key_secret_arn is None else [
        iam.allow(["secretsmanager:GetSecretValue"], [capture_key_secret_arn], sid="ReadCaptureHashKey")
    ]  # fmt: skip
    return [
        *key,
        # ECR User Guide, "Private registry authentication": no resource-level permissions.
        iam.allow(["ecr:GetAuthorizationToken"], ["*"], sid="EcrLogin"),
        iam.allow(
            ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
            [jobs_repository_arn],
            sid="PullJobsImage",
        ),
        iam.allow(["logs:CreateLogStream", "logs:PutLogEvents"], [streams], sid="WriteJobLogs"),
    ]
