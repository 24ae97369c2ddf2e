"""AWS Batch: the retrain, drift, summary and inference jobs on Fargate in the private subnets.

Interface used by stack.py and the pipeline (keep it): ``BatchJobs(name, BatchJobsArgs)`` with
``job_queue``, ``job_definitions`` (keys ``retrain``, ``drift``, ``summary``, ``inference``) and
``passable_role_arns`` (the roles a new job definition revision names, for the release step's
``iam:PassRole``).

Who owns which job definition revision: Pulumi registers revision 1 of each name with the image
``<jobs repository>:bootstrap`` (no such tag exists until someone pushes it); the pipeline's release
step registers later revisions, copied from the latest with only the image swapped (release/
job_definitions.py), and the schedules submit by NAME, so Batch runs the latest ACTIVE revision.
pulumi-aws's ``JobDefinition`` (since the Terraform provider's PR #34281) keeps the ARN of the revision
it registered as its id and reads that revision back on refresh: an unchanged program therefore shows
no diff and leaves the pipeline's newer revisions alone. A CHANGED job definition input (vCPU, memory,
environment, retries) is an in-place update that registers a NEW revision, again with the bootstrap
image tag ``ml-delivery:jobsImageTag`` (default ``bootstrap``), which then is the latest: set that key to
the live release's git sha first, or re-run the pipeline's release stage afterwards, which copies the new
settings and puts the current image back (docs/jobs-infra.md, "Changing a job").
``deregister_on_new_revision`` only ever deregisters Pulumi's own previous revision.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.jobs.jobs_iam import JobGrants, execution_statements, job_statements
from infra.jobs.jobs_schedules import JobSchedules, JobSchedulesArgs, ScheduledJob
from infra.jobs.jobs_spec import (
    EVALUATE_ON_EXIT,
    JOB_NAMES,
    RETRY_ATTEMPTS,
    SCHEDULED_JOBS,
    JobName,
    JobsConfig,
    Resolved,
    container_properties,
    inference_parameters,
    runtime_settings_parameter,
    timeout_seconds,
)
from infra.lib import iam

# Enough for every job at once at the largest configured size, small enough to cap a runaway loop of
# drift-triggered retrains (Batch User Guide, "Compute environment parameters": maxvCpus).
MAX_VCPUS = 16


@dataclass(frozen=True)
class BatchJobsArgs:
    """Plain values and outputs only (stack.py's ``build_jobs``): the component never reads the settings."""

    config: JobsConfig
    account_id: pulumi.Input[str]
    region: str
    vpc_id: pulumi.Input[str]
    private_subnet_ids: Sequence[pulumi.Input[str]]
    model_bucket_name: pulumi.Input[str]
    model_bucket_arn: pulumi.Input[str]
    capture_bucket_name: pulumi.Input[str]
    capture_bucket_arn: pulumi.Input[str]
    jobs_repository_url: pulumi.Input[str]
    jobs_repository_arn: pulumi.Input[str]
    alerts_topic_arn: pulumi.Input[str]
    data_key_grant: iam.Statement
    capture_key_secret_arn: pulumi.Input[str] | None = None  # capture privacy HMAC key (drift job only)
    runtime_settings_arn: pulumi.Input[str] = ""  # prod runtime settings parameter (the drift job's policy)


def job_definition_name(stack: str, job: JobName) -> str:
    """Stable names: the schedules, the drift job and the release step all address definitions by name."""
    return f"ml-delivery-{stack}-{job}"


class BatchJobs(pulumi.ComponentResource):
    def __init__(self, name: str, args: BatchJobsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ml-delivery:jobs:BatchJobs", name, None, opts)
        self._args = args
        child = pulumi.ResourceOptions(parent=self)
        stack = pulumi.get_stack()
        config = args.config

        self.log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            aws.cloudwatch.LogGroupArgs(name=f"/ml-delivery/{stack}/jobs", retention_in_days=config.log_retention_days),
            opts=child,
        )
        self.security_group = self._security_group(name, args)
        # MANAGED + FARGATE: Batch launches the tasks itself. No service_role: Batch then uses the
        # AWSServiceRoleForBatch service-linked role, which it creates on first use (Batch User Guide,
        # "Using service-linked roles for AWS Batch"); nothing to grant or maintain here.
        self.compute_environment = aws.batch.ComputeEnvironment(
            f"{name}-fargate",
            aws.batch.ComputeEnvironmentArgs(
                type="MANAGED",
                state="ENABLED",
                compute_resources=aws.batch.ComputeEnvironmentComputeResourcesArgs(
                    type="FARGATE",
                    max_vcpus=MAX_VCPUS,
                    subnets=args.private_subnet_ids,
                    security_group_ids=[self.security_group.id],
                ),
            ),
            opts=child,
        )
        self.job_queue = aws.batch.JobQueue(
            f"{name}-queue",
            aws.batch.JobQueueArgs(
                name=f"ml-delivery-{stack}-jobs",
                state="ENABLED",
                priority=1,
                compute_environment_orders=[
                    aws.batch.JobQueueComputeEnvironmentOrderArgs(
                        compute_environment=self.compute_environment.arn, order=1
                    )
                ],
            ),
            opts=child,
        )
        self.execution_role = iam.role(
            f"{name}-execution-role",
            service="ecs-tasks.amazonaws.com",
            account_id=args.account_id,
            statements=execution_statements(args.jobs_repository_arn, self.log_group.arn, args.capture_key_secret_arn),
            parent=self,
            description="ECS agent for every Batch job: pull the jobs image, write the jobs log group",
        )
        self.job_roles: dict[str, aws.iam.Role] = {}
        self.job_definitions: dict[str, aws.batch.JobDefinition] = {}
        self.job_definition_names = {job: job_definition_name(stack, job) for job in JOB_NAMES}
        # Retrain first: the drift role may submit it, so it needs its ARN.
        retrain_prefix: pulumi.Input[str] = ""
        for job in JOB_NAMES:
            grants = JobGrants(
                training_data_prefix=config.training_data_prefix,
                model_key=config.model_key,
                drift_retrain_enabled=config.drift_retrain_enabled,
                model_bucket_arn=args.model_bucket_arn,
                capture_bucket_arn=args.capture_bucket_arn,
                alerts_topic_arn=args.alerts_topic_arn,
                data_key_grant=args.data_key_grant,
                job_queue_arn=self.job_queue.arn,
                retrain_job_definition_arn_prefix=retrain_prefix,
                runtime_settings_arn=args.runtime_settings_arn,
            )
            self.job_roles[job] = iam.role(
                f"{name}-{job}-role",
                service="ecs-tasks.amazonaws.com",
                account_id=args.account_id,
                statements=job_statements(job, grants),
                parent=self,
                description=f"The {job} Batch job: only the prefixes, topic and key it uses",
            )
            self.job_definitions[job] = self._job_definition(name, job)
            if job == "retrain":
                retrain_prefix = self.job_definitions[job].arn_prefix

        self.schedules = JobSchedules(
            f"{name}-schedules",
            JobSchedulesArgs(
                jobs=[
                    ScheduledJob(
                        job=job,
                        expression=config.schedule(job),
                        job_definition_name=self.job_definition_names[job],
                        job_definition_arn_prefix=self.job_definitions[job].arn_prefix,
                    )
                    for job in SCHEDULED_JOBS
                ],
                timezone=config.schedule_timezone,
                job_queue_arn=self.job_queue.arn,
                account_id=args.account_id,
                alerts_topic_arn=args.alerts_topic_arn,
                data_key_arns=list(args.data_key_grant["Resource"]),
            ),
            opts=child,
        )
        self.passable_role_arns: list[pulumi.Output[str]] = [
            *(role.arn for role in self.job_roles.values()),
            self.execution_role.arn,
        ]
        self.log_group_name = self.log_group.name
        self.register_outputs(
            {
                "jobQueueArn": self.job_queue.arn,
                "jobDefinitions": {job: d.arn for job, d in self.job_definitions.items()},
                "logGroup": self.log_group.name,
            }
        )

    def _security_group(self, name: str, args: BatchJobsArgs) -> aws.ec2.SecurityGroup:
        group = aws.ec2.SecurityGroup(
            f"{name}-sg",
            aws.ec2.SecurityGroupArgs(vpc_id=args.vpc_id, description="Batch jobs: no inbound, HTTPS out only"),
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-out-https",
            aws.vpc.SecurityGroupEgressRuleArgs(
                security_group_id=group.id,
                ip_protocol="tcp",
                from_port=443,
                to_port=443,
                cidr_ipv4="0.0.0.0/0",
                description="HTTPS to AWS APIs (ECR, S3, SNS, Logs, Batch) through the NAT / S3 endpoint",
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        return group

    def _job_definition(self, name: str, job: JobName) -> aws.batch.JobDefinition:
        args = self._args
        stack = pulumi.get_stack()
        is_monitor = job in ("drift", "summary")
        resolved = pulumi.Output.all(
            image=pulumi.Output.concat(args.jobs_repository_url, f":{args.config.jobs_image_tag}"),
            job_role_arn=self.job_roles[job].arn,
            execution_role_arn=self.execution_role.arn,
            log_group=self.log_group.name,
            model_bucket=args.model_bucket_name,
            capture_bucket=args.capture_bucket_name,
            alerts_topic_arn=args.alerts_topic_arn,
            job_queue=self.job_queue.arn if is_monitor else "",
            capture_key_secret_arn=args.capture_key_secret_arn or "",
        )
        properties = resolved.apply(
            lambda v: json.dumps(
                container_properties(
                    args.config,
                    job,
                    Resolved(
                        region=args.region,
                        retrain_job_definition=job_definition_name(stack, "retrain") if is_monitor else "",
                        runtime_settings_parameter=runtime_settings_parameter(stack, "prod"),
                        **v,
                    ),
                ),
                sort_keys=True,
            )
        )
        parameters = (
            pulumi.Output.from_input(args.model_bucket_name).apply(inference_parameters) if job == "inference" else None
        )
        return aws.batch.JobDefinition(
            f"{name}-{job}",
            aws.batch.JobDefinitionArgs(
                name=job_definition_name(stack, job),
                type="container",
                platform_capabilities=["FARGATE"],
                container_properties=properties,
                parameters=parameters,
                propagate_tags=True,
                retry_strategy=aws.batch.JobDefinitionRetryStrategyArgs(
                    attempts=RETRY_ATTEMPTS,
                    evaluate_on_exits=[
                        aws.batch.JobDefinitionRetryStrategyEvaluateOnExitArgs(
                            action=entry["action"],
                            on_status_reason=entry.get("onStatusReason"),
                            on_reason=entry.get("onReason"),
                        )
                        for entry in EVALUATE_ON_EXIT
                    ],
                ),
                timeout=aws.batch.JobDefinitionTimeoutArgs(attempt_duration_seconds=timeout_seconds(args.config, job)),
                # Only ever deregisters the revision Pulumi itself registered before; the pipeline's
                # revisions stay ACTIVE (see the module docstring).
                deregister_on_new_revision=True,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
