"""EventBridge Scheduler schedules that submit the scheduled Batch jobs by job definition NAME.

Scheduler has no templated Batch target (Scheduler User Guide, "Using templated targets" lists none),
so each schedule uses the universal target ``arn:aws:scheduler:::aws-sdk:batch:submitJob``, whose
``Input`` carries SubmitJob's request parameters (Scheduler User Guide, "Using universal targets").
Submitting by name means AWS Batch runs the latest ACTIVE revision, i.e. whatever the pipeline's
release step registered last. Each schedule has its own role, allowed only SubmitJob on the stack's
queue and its own job definition. A submission Scheduler gives up on lands in an encrypted dead-letter
queue, and an alarm on that queue pages the alerts topic.

Every schedule is created DISABLED: until the pipeline's first release the job definitions name the
``:bootstrap`` jobs image tag, which does not exist, and each run would fail its image pull (issue #12,
defect 5). The Release action enables them once the job definitions run the built jobs image
(release/schedules.py, ``SCHEDULE_NAMES``); Pulumi ignores later changes of ``state`` so a ``pulumi up``
(with or without refresh) never switches them off again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.jobs.jobs_iam import submit_job_resources
from infra.jobs.jobs_spec import JobName
from infra.lib import iam
from infra.observability.alerts import dead_letter_alarm

UNIVERSAL_SUBMIT_JOB = "arn:aws:scheduler:::aws-sdk:batch:submitJob"
# SQS's longest retention, so a failed submission is still there to read after a long weekend.
DLQ_RETENTION_SECONDS = 14 * 24 * 3600


@dataclass(frozen=True)
class ScheduledJob:
    job: JobName
    expression: str
    job_definition_name: str
    job_definition_arn_prefix: pulumi.Input[str]


@dataclass(frozen=True)
class JobSchedulesArgs:
    jobs: list[ScheduledJob]
    timezone: str
    job_queue_arn: pulumi.Input[str]
    account_id: pulumi.Input[str]
    alerts_topic_arn: pulumi.Input[str]
    # Schedules are encrypted with the stack key (infra/foundation/hardening.py); Scheduler User Guide, "Encryption
    # at rest": the execution role must be allowed kms:Decrypt on a customer managed key.
    data_key_arns: list[pulumi.Input[str]] | None = None


def submit_job_input(job: JobName, job_queue_arn: str, job_definition_name: str) -> str:
    """SubmitJob parameters in the universal target's spelling (PascalCase member names)."""
    return json.dumps(
        {"JobName": f"scheduled-{job}", "JobQueue": job_queue_arn, "JobDefinition": job_definition_name},
        sort_keys=True,
    )


class JobSchedules(pulumi.ComponentResource):
    def __init__(self, name: str, args: JobSchedulesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ml-delivery:jobs:JobSchedules", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        stack = pulumi.get_stack()
        # Its own group, so the roles' aws:SourceArn names exactly these schedules (Scheduler User Guide,
        # "Set up the execution role": confused-deputy condition on the schedule group ARN).
        self.group = aws.scheduler.ScheduleGroup(
            f"{name}-group", aws.scheduler.ScheduleGroupArgs(name=f"ml-delivery-{stack}-jobs"), opts=child
        )
        self.dead_letter_queue = aws.sqs.Queue(
            f"{name}-dlq",
            aws.sqs.QueueArgs(sqs_managed_sse_enabled=True, message_retention_seconds=DLQ_RETENTION_SECONDS),
            opts=child,
        )
        self.schedules: dict[str, aws.scheduler.Schedule] = {}
        self.roles: dict[str, aws.iam.Role] = {}
        for scheduled in args.jobs:
            self.schedules[scheduled.job] = self._schedule(name, scheduled, args)
        # ``<group>/<name>`` of each schedule: the Release action's SCHEDULE_NAMES.
        self.refs: list[pulumi.Output[str]] = [
            pulumi.Output.concat(s.group_name, "/", s.name) for s in self.schedules.values()
        ]
        self.arns: list[pulumi.Output[str]] = [s.arn for s in self.schedules.values()]
        self.role_arns: list[pulumi.Output[str]] = [r.arn for r in self.roles.values()]
        dead_letter_alarm(
            f"{name}-dlq-not-empty",
            self.dead_letter_queue.name,
            "A scheduled Batch job could not be submitted (EventBridge Scheduler gave up). "
            "Where to look: the messages in this dead-letter queue carry the error; check the job "
            "definition exists and the schedule role may submit it.",
            args.alerts_topic_arn,
            child,
        )
        self.register_outputs(
            {"group": self.group.name, "schedules": {job: s.arn for job, s in self.schedules.items()}}
        )

    def _schedule(self, name: str, scheduled: ScheduledJob, args: JobSchedulesArgs) -> aws.scheduler.Schedule:
        role = iam.role(
            f"{name}-{scheduled.job}-role",
            service="scheduler.amazonaws.com",
            account_id=args.account_id,
            source_arn=self.group.arn,
            statements=[
                # Only this job's definition (any revision) on the stack's queue (see submit_job_resources).
                iam.allow(
                    ["batch:SubmitJob"],
                    submit_job_resources(args.job_queue_arn, scheduled.job_definition_arn_prefix),
                    sid=f"Submit{scheduled.job.title()}",
                ),
                # Scheduler User Guide, "Configuring a dead-letter queue": the execution role sends to it.
                iam.allow(["sqs:SendMessage"], [self.dead_letter_queue.arn], sid="DeadLetter"),
                *(
                    [iam.allow(["kms:Decrypt"], args.data_key_arns, sid="DecryptSchedule")]
                    if args.data_key_arns
                    else []
                ),
            ],
            parent=self,
            description=f"EventBridge Scheduler: submit the {scheduled.job} Batch job, nothing else",
        )
        self.roles[scheduled.job] = role
        return aws.scheduler.Schedule(
            f"{name}-{scheduled.job}",
            aws.scheduler.ScheduleArgs(
                name=scheduled.job,
                group_name=self.group.name,
                description=f"Submits the {scheduled.job} job ({scheduled.job_definition_name}, latest revision)",
                schedule_expression=scheduled.expression,
                schedule_expression_timezone=args.timezone,
                # Run at the configured time, not somewhere in a window after it.
                flexible_time_window=aws.scheduler.ScheduleFlexibleTimeWindowArgs(mode="OFF"),
                # Enabled by the Release action, after the jobs run a real image (module docstring).
                state="DISABLED",
                target=aws.scheduler.ScheduleTargetArgs(
                    arn=UNIVERSAL_SUBMIT_JOB,
                    role_arn=role.arn,
                    input=pulumi.Output.from_input(args.job_queue_arn).apply(
                        lambda queue: submit_job_input(scheduled.job, queue, scheduled.job_definition_name)
                    ),
                    # Retries a failed SubmitJob call (throttling, a Batch blip) for up to an hour; the
                    # job's own retries are the job definition's retry strategy.
                    retry_policy=aws.scheduler.ScheduleTargetRetryPolicyArgs(
                        maximum_event_age_in_seconds=3600, maximum_retry_attempts=3
                    ),
                    dead_letter_config=aws.scheduler.ScheduleTargetDeadLetterConfigArgs(arn=self.dead_letter_queue.arn),
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["state"]),
        )
