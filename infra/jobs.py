"""AWS Batch: the retrain, drift, summary and inference jobs on Fargate in the private subnets.

Interface used by stack.py and the pipeline (keep it): ``BatchJobs(name, BatchJobsArgs)`` with
``job_queue``, ``job_definitions`` (keys ``retrain``, ``drift``, ``summary``, ``inference``) and
``passable_role_arns`` (the roles a new job definition revision names, for the release step's
``iam:PassRole``).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra import iam
from infra.settings import StackSettings


@dataclass(frozen=True)
class BatchJobsArgs:
    settings: StackSettings
    account_id: pulumi.Input[str]
    region: str
    vpc_id: pulumi.Input[str]
    private_subnet_ids: list[pulumi.Input[str]]
    model_bucket_name: pulumi.Input[str]
    model_bucket_arn: pulumi.Input[str]
    capture_bucket_name: pulumi.Input[str]
    capture_bucket_arn: pulumi.Input[str]
    jobs_repository_url: pulumi.Input[str]
    jobs_repository_arn: pulumi.Input[str]
    alerts_topic_arn: pulumi.Input[str]
    data_key_grant: iam.Statement


class BatchJobs(pulumi.ComponentResource):
    def __init__(self, name: str, args: BatchJobsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ml-delivery:jobs:BatchJobs", name, None, opts)
        self.job_queue: aws.batch.JobQueue | None = None
        self.job_definitions: dict[str, aws.batch.JobDefinition] = {}
        self.passable_role_arns: list[pulumi.Output[str]] = []
        self.register_outputs({})
