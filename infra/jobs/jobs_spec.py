"""What each Batch job runs and reads: commands, environment, sizes, retries, timeouts, as plain data.

Kept apart from the Pulumi resources so the whole contract with the job authors (the environment
variable names in :func:`job_environment`) is in one place, and so the tests can build and validate a
container properties document without a Pulumi runtime.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from contracts.bucket_layout import (
    DRIFT_REPORT_PREFIX,
    INFERENCE_INPUT_PREFIX,
    INFERENCE_OUTPUT_PREFIX,
    PROD_CAPTURE_PREFIX,
)
from contracts.environment import InferenceEnvironment, MonitorEnvironment, RetrainEnvironment
from model_package.capture_privacy import HASH_KEY_ENV as CAPTURE_HASH_KEY_ENV

JobName = Literal["retrain", "drift", "summary", "inference"]
JOB_NAMES: tuple[JobName, ...] = ("retrain", "drift", "summary", "inference")
SCHEDULED_JOBS: tuple[JobName, ...] = ("retrain", "drift", "summary")

# The jobs image's ENTRYPOINT is ``python -m`` (docker/jobs.Dockerfile), so a command is a module + verb.
# Inference takes Batch parameters (``Ref::name``), substituted from SubmitJob's ``parameters`` or the
# job definition's defaults (Batch User Guide, "Job definition parameters": "Parameters").
COMMANDS: dict[JobName, tuple[str, ...]] = {
    "retrain": ("retrain", "run"),
    "drift": ("monitor", "drift"),
    "summary": ("monitor", "summary"),
    "inference": ("inference", "run", "--model", "Ref::model", "--input", "Ref::input", "--output", "Ref::output"),
}

# Prefixes in the model bucket: contracts.bucket_layout (imported above; the names are this module's
# interface for the jobs' IAM and environment). Batch inference reads and writes only its own prefixes.
CAPTURE_PREFIX = PROD_CAPTURE_PREFIX
INFERENCE_CHUNK_ROWS = 50_000

# Upper bounds of one attempt when the config has no key for it; the summary runs every few minutes, so
# a hung attempt must end before the next one starts piling up behind it.
DEFAULT_TIMEOUT_MINUTES: dict[JobName, int] = {"drift": 120, "summary": 15, "inference": 240}

# Batch User Guide, "Automated job retries", and API Reference, "EvaluateOnExit": up to 5 entries,
# the first match wins, and a failure no entry matches is RETRIED, so the list must end with an EXIT
# for everything else. Patterns may hold letters, digits, periods, colons and spaces, and end in "*".
# Retried: failures of the platform, not of the job: the image pull (ECR throttling, a registry blip),
# Fargate's ResourceInitializationError (ENI, secrets or registry auth), a task that never started, and
# the ENI provisioning timeout. "Host EC2*" (an instance terminated under the job) cannot happen on
# Fargate, so it is not listed. A job that ran and exited non-zero failed on its own terms (bad data, a
# gate rejection, a bug) and a retry would only repeat it: EXIT.
RETRY_ATTEMPTS = 3
RETRY_ON_STATUS_REASONS = (
    "CannotPullContainerError*",
    "ResourceInitializationError*",
    "Task failed to start*",
    "Timeout waiting for network interface provisioning to complete*",
)
EVALUATE_ON_EXIT: tuple[dict[str, str], ...] = (
    *({"action": "RETRY", "onStatusReason": reason} for reason in RETRY_ON_STATUS_REASONS),
    {"action": "EXIT", "onReason": "*"},
)


@dataclass(frozen=True)
class JobsConfig:
    """The stack's settings the Batch jobs use, as plain values (``stack.jobs_config`` builds it from the
    stack settings, under the same names): the jobs component never sees the whole settings object."""

    # The component: log retention, the bootstrap image tag of revision 1, the schedules.
    log_retention_days: int
    jobs_image_tag: str
    schedule_timezone: str
    retrain_schedule: str
    drift_schedule: str
    summary_schedule: str
    # Sizes and the retrain attempt's upper bound (the other jobs' are DEFAULT_TIMEOUT_MINUTES).
    retrain_vcpu: float
    retrain_memory_mib: int
    retrain_timeout_minutes: int
    jobs_vcpu: float
    jobs_memory_mib: int
    # What the jobs read (their environment) and what their roles are scoped to.
    training_data_prefix: str
    model_key: str
    gate_metric: str | None
    gate_tolerance: float
    gate_floor: float | None
    min_training_rows: int
    alert_window_minutes: int
    drift_retrain_enabled: bool
    summary_min_count: int

    def schedule(self, job: JobName) -> str:
        """The schedule expression of a scheduled job (SCHEDULED_JOBS)."""
        return {"retrain": self.retrain_schedule, "drift": self.drift_schedule, "summary": self.summary_schedule}[job]


class GateConfig(Protocol):
    """The champion gate's keys: JobsConfig has them, and so has the PipelineConfig the pipeline's Evaluate
    action is written from (read-only properties, so a frozen dataclass and a pydantic model both fit)."""

    @property
    def gate_metric(self) -> str | None: ...
    @property
    def gate_tolerance(self) -> float: ...
    @property
    def gate_floor(self) -> float | None: ...


@dataclass(frozen=True)
class Resolved:
    """The values that exist only once the stack's resources do (resolved Pulumi outputs)."""

    image: str
    job_role_arn: str
    execution_role_arn: str
    log_group: str
    region: str
    model_bucket: str
    capture_bucket: str
    alerts_topic_arn: str
    job_queue: str = ""
    retrain_job_definition: str = ""
    # Capture privacy (docs/monitoring.md): the prod runtime settings the drift job reads the policy from,
    # and the HMAC key's secret ("" when the stack has no captureHashKey).
    runtime_settings_parameter: str = ""
    capture_key_secret_arn: str = ""


def runtime_settings_parameter(stack: str, service: str) -> str:
    """The SSM parameter of a service's runtime settings: the app reads it, the drift job reads its policy."""
    return f"/ml-delivery/{stack}/{service}/runtime"


def format_vcpu(vcpu: float) -> str:
    """Batch wants the vCPU count as a string: "0.25", "0.5", "1", "2"."""
    return f"{vcpu:g}"


def resources(config: JobsConfig, job: JobName) -> tuple[float, int]:
    if job == "retrain":
        return config.retrain_vcpu, config.retrain_memory_mib
    return config.jobs_vcpu, config.jobs_memory_mib


def timeout_seconds(config: JobsConfig, job: JobName) -> int:
    minutes = config.retrain_timeout_minutes if job == "retrain" else DEFAULT_TIMEOUT_MINUTES[job]
    return minutes * 60


_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_MINUTES_PER_UNIT = {"minute": 1, "hour": 60, "day": 1440}


def schedule_window_minutes(expression: str, default: int) -> int:
    """The summary's look-back equals its rate, so consecutive runs tile time with no gap and no overlap.
    A cron or at() schedule has no single period: ``default``."""
    match = _RATE.match(expression)
    if not match:
        return default
    return int(match.group(1)) * _MINUTES_PER_UNIT[match.group(2).rstrip("s")]


def inference_parameters(model_bucket: str) -> dict[str, str]:
    """Defaults for ``Ref::model``/``Ref::input``/``Ref::output``; ``submit-job --parameters`` overrides."""
    return {
        "model": "champion",
        "input": f"s3://{model_bucket}/{INFERENCE_INPUT_PREFIX}input.parquet",
        "output": f"s3://{model_bucket}/{INFERENCE_OUTPUT_PREFIX}predictions.parquet",
    }


def gate_environment(gate: GateConfig) -> dict[str, str]:
    """The champion gate's variables, read by retrain (retrain/settings.py) and Evaluate (evaluation/settings.py).
    GATE_METRIC and GATE_FLOOR only when the stack sets them: absent, each job uses the champion task's primary
    metric and default floor (jobs_common/gate.py)."""
    return {
        **({"GATE_METRIC": gate.gate_metric} if gate.gate_metric is not None else {}),
        "GATE_TOLERANCE": str(gate.gate_tolerance),
        **({"GATE_FLOOR": str(gate.gate_floor)} if gate.gate_floor is not None else {}),
    }


def job_environment(config: JobsConfig, job: JobName, r: Resolved) -> dict[str, str]:
    """The environment each job reads, written from the job's own settings class (contracts/environment.py)."""
    common: dict[str, Any] = {"aws_region": r.region, "model_bucket": r.model_bucket,
                              "alerts_topic_arn": r.alerts_topic_arn,
                              "alert_window_minutes": config.alert_window_minutes}  # fmt: skip
    if job == "retrain":
        return RetrainEnvironment(
            **common,
            data_uri=f"s3://{r.model_bucket}/{config.training_data_prefix}",
            model_key=config.model_key,
            # No target/model_name/time_column: a refit reads them from the champion's manifest (its column
            # roles), so the same definition refits a binary, multiclass or regression champion (issue #14).
            # gate_metric/gate_floor unset (None) stay out of the definition: the task's primary metric and floor.
            gate_metric=config.gate_metric,
            gate_tolerance=config.gate_tolerance,
            gate_floor=config.gate_floor,
            min_rows=config.min_training_rows,
            # Only named in the job's alerts ("where to look"); the default would point at /aws/batch/job.
            log_group=r.log_group,
        ).to_env()
    if job in ("drift", "summary"):
        # No model_key: the monitor then reads the champion pointer, the model actually serving prod, never
        # the model key, which may hold a candidate still waiting for approval.
        return MonitorEnvironment(
            **common,
            capture_bucket=r.capture_bucket,
            capture_prefix=CAPTURE_PREFIX,
            # The summary job writes next to it, under reports/summary (monitor/__main__.py).
            report_prefix=DRIFT_REPORT_PREFIX,
            drift_retrain_enabled=config.drift_retrain_enabled,
            retrain_job_queue=r.job_queue,
            retrain_job_definition=r.retrain_job_definition,
            summary_min_count=config.summary_min_count,
            summary_window_minutes=schedule_window_minutes(config.summary_schedule, 10),
            capture_settings_source=f"ssm:{r.runtime_settings_parameter}" if job == "drift" else None,
        ).to_env()
    parameters = inference_parameters(r.model_bucket)
    return InferenceEnvironment(
        **common,
        model_ref=parameters["model"],
        input_uri=parameters["input"],
        output_uri=parameters["output"],
        chunk_rows=INFERENCE_CHUNK_ROWS,
    ).to_env()


def container_properties(config: JobsConfig, job: JobName, r: Resolved) -> dict[str, Any]:
    """The ``containerProperties`` of RegisterJobDefinition for a Fargate job (Batch API Reference,
    "ContainerProperties"); the tests validate it against botocore's shape."""
    vcpu, memory = resources(config, job)
    environment = job_environment(config, job, r)
    # Batch User Guide, "Specifying sensitive data": `secrets` valueFrom a Secrets Manager ARN, fetched with
    # the execution role. Only the drift job needs the capture HMAC key (monitor/privacy.py).
    secrets = (
        [{"name": CAPTURE_HASH_KEY_ENV, "valueFrom": r.capture_key_secret_arn}]
        if job == "drift" and r.capture_key_secret_arn
        else []
    )
    return {
        **({"secrets": secrets} if secrets else {}),
        "image": r.image,
        "command": list(COMMANDS[job]),
        "jobRoleArn": r.job_role_arn,
        "executionRoleArn": r.execution_role_arn,
        "resourceRequirements": [
            {"type": "VCPU", "value": format_vcpu(vcpu)},
            {"type": "MEMORY", "value": str(memory)},
        ],
        "environment": [{"name": k, "value": v} for k, v in sorted(environment.items())],
        # Private subnets reach ECR, S3 and the other APIs through the NAT gateway / endpoints; no job
        # ever needs an address of its own (Batch User Guide, "Fargate job networking").
        "networkConfiguration": {"assignPublicIp": "DISABLED"},
        "fargatePlatformConfiguration": {"platformVersion": "LATEST"},
        "runtimePlatform": {"operatingSystemFamily": "LINUX", "cpuArchitecture": "X86_64"},
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {"awslogs-group": r.log_group, "awslogs-region": r.region, "awslogs-stream-prefix": job},
        },
    }
