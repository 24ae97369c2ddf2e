"""What each Batch job runs and reads: commands, environment, sizes, retries, timeouts, as plain data.

Kept apart from the Pulumi resources so the whole contract with the job authors (the environment
variable names in :func:`job_environment`) is in one place, and so the tests can build and validate a
container properties document without a Pulumi runtime.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from infra.settings import StackSettings
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

# Prefixes in the model bucket (model_package/registry.py owns champion.json, models/ and reports/;
# alerting/publisher.py's S3DedupStore owns alerts/sent/). Batch inference reads and writes only here.
CHAMPION_KEY = "champion.json"
MODELS_PREFIX = "models/"
ALERTS_SENT_PREFIX = "alerts/sent/"
CAPTURE_PREFIX = "capture/prod"
DRIFT_REPORT_PREFIX = "reports/drift"
REPORT_PREFIXES: dict[JobName, str] = {
    "retrain": "reports/retrain/",
    "drift": "reports/drift/",
    "summary": "reports/summary/",
}
INFERENCE_INPUT_PREFIX = "batch-inference/input/"
INFERENCE_OUTPUT_PREFIX = "batch-inference/output/"
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


def resources(settings: StackSettings, job: JobName) -> tuple[float, int]:
    if job == "retrain":
        return settings.retrain_vcpu, settings.retrain_memory_mib
    return settings.jobs_vcpu, settings.jobs_memory_mib


def timeout_seconds(settings: StackSettings, job: JobName) -> int:
    minutes = settings.retrain_timeout_minutes if job == "retrain" else DEFAULT_TIMEOUT_MINUTES[job]
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


def job_environment(settings: StackSettings, job: JobName, r: Resolved) -> dict[str, str]:
    """The environment each job reads (retrain/settings.py, monitor/settings.py, inference/__main__.py)."""
    common = {"AWS_REGION": r.region, "MODEL_BUCKET": r.model_bucket, "ALERTS_TOPIC_ARN": r.alerts_topic_arn,
              "ALERT_WINDOW_MINUTES": str(settings.alert_window_minutes)}  # fmt: skip
    if job == "retrain":
        return {
            **common,
            "DATA_URI": f"s3://{r.model_bucket}/{settings.training_data_prefix}",
            "MODEL_KEY": settings.model_key,
            "MODEL_NAME": "churn",
            "TARGET": "churn",
            "GATE_METRIC": settings.gate_metric,
            "GATE_TOLERANCE": str(settings.gate_tolerance),
            "GATE_FLOOR": str(settings.gate_floor),
            "MIN_ROWS": str(settings.min_training_rows),
            "TIME_COLUMN": "acquisition_date",
            # Only named in the job's alerts ("where to look"); the default would point at /aws/batch/job.
            "LOG_GROUP": r.log_group,
        }
    if job in ("drift", "summary"):
        # No MODEL_KEY: the monitor then reads the champion pointer, the model actually serving prod, never
        # the model key, which may hold a candidate still waiting for approval.
        return {
            **common,
            "CAPTURE_BUCKET": r.capture_bucket,
            "CAPTURE_PREFIX": CAPTURE_PREFIX,
            # The summary job writes next to it, under reports/summary (monitor/__main__.py).
            "REPORT_PREFIX": DRIFT_REPORT_PREFIX,
            "DRIFT_RETRAIN_ENABLED": "true" if settings.drift_retrain_enabled else "false",
            "RETRAIN_JOB_QUEUE": r.job_queue,
            "RETRAIN_JOB_DEFINITION": r.retrain_job_definition,
            "SUMMARY_MIN_COUNT": str(settings.summary_min_count),
            "SUMMARY_WINDOW_MINUTES": str(schedule_window_minutes(settings.summary_schedule, 10)),
            **({"CAPTURE_SETTINGS_SOURCE": f"ssm:{r.runtime_settings_parameter}"} if job == "drift" else {}),
        }
    parameters = inference_parameters(r.model_bucket)
    return {
        **common,
        "MODEL_REF": parameters["model"],
        "INPUT_URI": parameters["input"],
        "OUTPUT_URI": parameters["output"],
        "CHUNK_ROWS": str(INFERENCE_CHUNK_ROWS),
    }


def container_properties(settings: StackSettings, job: JobName, r: Resolved) -> dict[str, Any]:
    """The ``containerProperties`` of RegisterJobDefinition for a Fargate job (Batch API Reference,
    "ContainerProperties"); the tests validate it against botocore's shape."""
    vcpu, memory = resources(settings, job)
    environment = job_environment(settings, job, r)
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
