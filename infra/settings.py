"""Typed stack configuration, read once before any resource is declared.

Every ``ml-delivery:*`` key of ``Pulumi.<stack>.yaml`` is parsed into :class:`StackSettings`. A bad
value fails the whole program with one :class:`ConfigError` naming the key, the value and what is
allowed, instead of surfacing as an AWS API error halfway through an update. ``docs/configuration.md``
and the README's reference table list the same keys; ``tests/infra/test_settings.py`` keeps them in step.
"""

from __future__ import annotations

import ipaddress
import json
import re
import zoneinfo
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import pulumi
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from model_package.registry import TRAINING_DATA_PREFIX

NAMESPACE = "ml-delivery"
# Where the pipeline reads the code from (pipeline/pipeline_sources.py builds the source action for each).
SourceProvider = Literal["codecommit", "codeconnections"]

# Fargate task sizes (ECS Developer Guide, "Task CPU and memory"; the same table applies to AWS Batch on
# Fargate): cpu units -> allowed memory MiB.
FARGATE_MEMORY: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4097, 1024)),
    1024: tuple(range(2048, 8193, 1024)),
    2048: tuple(range(4096, 16385, 1024)),
    4096: tuple(range(8192, 30721, 1024)),
    8192: tuple(range(16384, 61441, 4096)),
    16384: tuple(range(32768, 122881, 8192)),
}
# network.subnet_cidrs cuts the VPC into 2**4 blocks; an ALB subnet must be /27 or larger.
SUBNET_SPLIT_BITS = 4
MAX_SUBNET_PREFIX = 27
# CloudWatch Logs PutRetentionPolicy accepts only these values.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
                      3288, 3653)  # fmt: skip
# AWS Batch on Fargate: vCPU -> allowed memory MiB (Batch User Guide, "resourceRequirements").
BATCH_FARGATE_MEMORY: dict[float, tuple[int, ...]] = {
    0.25: (512, 1024, 2048),
    0.5: tuple(range(1024, 4097, 1024)),
    1.0: tuple(range(2048, 8193, 1024)),
    2.0: tuple(range(4096, 16385, 1024)),
    4.0: tuple(range(8192, 30721, 1024)),
    8.0: tuple(range(16384, 61441, 4096)),
    16.0: tuple(range(32768, 122881, 8192)),
}

_EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_ACM_ARN = re.compile(r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}$")
_CONNECTION_ARN = re.compile(
    r"^arn:aws[a-z-]*:(codestar-connections|codeconnections):[a-z0-9-]+:\d{12}:connection/[0-9a-f-]{36}$"
)
_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_CRON = re.compile(r"^cron\((.+)\)$")
_AT = re.compile(r"^at\(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\)$")


class ConfigError(ValueError):
    """One message naming every bad key, its value and what is allowed."""


def validate_schedule_expression(expression: str) -> str:
    """EventBridge Scheduler syntax ("Schedule types on EventBridge Scheduler", User Guide).

    ``rate(value unit)`` with a positive value and a singular unit only for 1; ``cron(...)`` with six
    fields where exactly one of day-of-month / day-of-week is ``?``; ``at(yyyy-mm-ddThh:mm:ss)``.
    """
    if rate := _RATE.match(expression):
        value, unit = int(rate.group(1)), rate.group(2)
        if value < 1:
            raise ValueError("a rate must be at least 1")
        if (value == 1) == unit.endswith("s"):
            raise ValueError(f"use '{unit.rstrip('s')}' for a value of 1 and '{unit.rstrip('s')}s' otherwise")
        return expression
    if cron := _CRON.match(expression):
        fields = cron.group(1).split()
        if len(fields) != 6:
            raise ValueError(
                f"cron() needs 6 fields (minutes hours day-of-month month day-of-week year), got {len(fields)}"
            )
        day_of_month, day_of_week = fields[2], fields[4]
        if (day_of_month == "?") == (day_of_week == "?"):
            raise ValueError("exactly one of day-of-month and day-of-week must be '?'")
        allowed = re.compile(r"^[0-9A-Za-z*?,/#LW-]+$")
        bad = [f for f in fields if not allowed.match(f)]
        if bad:
            raise ValueError(f"cron fields contain characters that are not allowed: {bad}")
        return expression
    if _AT.match(expression):
        return expression
    raise ValueError(
        "allowed forms: rate(<n> minute|minutes|hour|hours|day|days), cron(<6 fields>), at(yyyy-mm-ddThh:mm:ss)"
    )


def _cidr(value: str) -> str:
    try:
        network = ipaddress.IPv4Network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"not an IPv4 CIDR block with its host bits zero ({exc})") from None
    return str(network)


class StackSettings(BaseModel):
    """Everything a stack may configure. Field names are the camelCase config keys in snake_case."""

    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)

    # --- platform ---
    environment: Literal["dev", "prod"]
    vpc_cidr: str = "10.0.0.0/16"
    az_count: Annotated[int, Field(ge=2, le=4)] = 2
    nat_gateways: Annotated[int, Field(ge=1, le=4)] = 1
    ingress_cidrs: tuple[str, ...] = ()
    certificate_arn: str | None = None
    # WAFv2 web ACL on both ALBs; None means "on in prod, off in dev" (docs/security.md).
    waf_enabled: bool | None = None
    waf_rate_limit: Annotated[int, Field(ge=100, le=2_000_000_000)] = 2000
    deletion_protection: bool = False
    log_retention_days: int = 14
    # --- services (stage and prod use the same component) ---
    container_name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,255}$")] = "app"
    container_port: Annotated[int, Field(ge=1024, le=65535)] = 8080
    health_check_path: Annotated[str, Field(pattern=r"^/[A-Za-z0-9/_.-]*$", max_length=1024)] = "/ready"
    # ECR Public's copy of the official Python image, running foundation/hardening.py BOOTSTRAP_SERVER (no Docker Hub).
    bootstrap_image: Annotated[str, Field(min_length=1)] = "public.ecr.aws/docker/library/python:3.11-slim-bookworm"
    task_cpu: int = 512
    task_memory: int = 1024
    stage_desired_count: Annotated[int, Field(ge=1, le=50)] = 1
    stage_max_count: Annotated[int, Field(ge=1, le=100)] = 2
    prod_desired_count: Annotated[int, Field(ge=1, le=50)] = 1
    prod_max_count: Annotated[int, Field(ge=1, le=100)] = 4
    cpu_target_percent: Annotated[int, Field(ge=20, le=90)] = 60
    alarm_5xx_threshold: Annotated[int, Field(ge=1, alias="alarm5xxThreshold")] = 5
    alarm_p99_latency_ms: Annotated[int, Field(ge=1, le=60000)] = 250
    # --- alerts ---
    alert_emails: tuple[str, ...] = ()
    alert_sms_numbers: tuple[str, ...] = ()
    # --- storage ---
    model_key: Annotated[str, Field(pattern=r"^[A-Za-z0-9!_.*'()/-]+\.zip$")] = "model.zip"
    capture_retention_days: Annotated[int, Field(ge=1, le=3650)] = 30
    artifact_retention_days: Annotated[int, Field(ge=1, le=3650)] = 30
    image_retention_count: Annotated[int, Field(ge=1, le=1000)] = 30
    # --- pipeline ---
    source_provider: SourceProvider = "codecommit"
    # None: ``ml-delivery-<stack>`` (repository names are per account and region, and dev and prod may
    # share an account: issue #12, defect 8). See :func:`repository_name_for`.
    repository_name: Annotated[str, Field(pattern=r"^[\w.-]{1,100}$")] | None = None
    branch: Annotated[str, Field(pattern=r"^[A-Za-z0-9._/-]{1,255}$")] = "main"
    connection_arn: str | None = None
    full_repository_id: Annotated[str, Field(pattern=r"^[\w.-]+(/[\w.-]+)+$")] | None = None
    build_compute_type: Literal["BUILD_GENERAL1_SMALL", "BUILD_GENERAL1_MEDIUM", "BUILD_GENERAL1_LARGE"] = (
        "BUILD_GENERAL1_MEDIUM"
    )
    build_timeout_minutes: Annotated[int, Field(ge=5, le=480)] = 60
    # --- evaluation and approval (issue #16; evaluation/settings.py reads them as EVALUATION_*) ---
    evaluation_min_agreement: Annotated[float, Field(ge=0, le=1)] = 0.9
    evaluation_max_score_psi: Annotated[float, Field(ge=0, le=10)] = 0.2
    evaluation_max_segment_shift: Annotated[float, Field(ge=0, le=1)] = 0.1
    evaluation_max_stage_difference: Annotated[float, Field(ge=0, le=1)] = 0.0001
    evaluation_max_p99_latency_ms: Annotated[int, Field(ge=1, le=60000)] = 1000
    evaluation_replay_sample_size: Annotated[int, Field(ge=100, le=100_000)] = 2000
    evaluation_replay_window_hours: Annotated[int, Field(ge=1, le=2160)] = 168
    evaluation_smoke_requests: Annotated[int, Field(ge=1, le=1000)] = 30
    evaluation_timeout_minutes: Annotated[int, Field(ge=5, le=480)] = 30
    # CodePipeline User Guide, "Quotas": a manual approval times out after 7 days unless the action's
    # timeoutInMinutes (5 to 86400) says otherwise. A stale candidate is better rejected: one day.
    approval_timeout_minutes: Annotated[int, Field(ge=5, le=86400)] = 1440
    # --- retrain job ---
    retrain_schedule: str = "cron(0 3 ? * MON *)"
    schedule_timezone: Annotated[str, Field(min_length=1)] = "UTC"
    retrain_vcpu: float = 1.0
    retrain_memory_mib: int = 4096
    retrain_timeout_minutes: Annotated[int, Field(ge=10, le=1440)] = 120
    # The bucket key layout is defined once, in model_package.registry (the retrain job reads every data file
    # under this prefix: retrain/readers.py S3Reader).
    training_data_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9!_.*'()-]+(/[A-Za-z0-9!_.*'()-]+)*/$")] = (
        TRAINING_DATA_PREFIX
    )
    gate_metric: Literal["roc_auc", "log_loss", "lift"] = "roc_auc"
    gate_tolerance: Annotated[float, Field(ge=0, le=0.5)] = 0.005
    gate_floor: float = 0.6
    min_training_rows: Annotated[int, Field(ge=100)] = 500
    # --- monitoring and batch inference ---
    drift_schedule: str = "rate(1 day)"
    summary_schedule: str = "rate(10 minutes)"
    drift_retrain_enabled: bool = False
    alert_window_minutes: Annotated[int, Field(ge=1, le=10080)] = 360
    summary_min_count: Annotated[int, Field(ge=1)] = 1
    jobs_image_tag: Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")] = "bootstrap"
    jobs_vcpu: float = 1.0
    jobs_memory_mib: int = 4096

    @field_validator("vpc_cidr")
    @classmethod
    def _vpc_cidr(cls, value: str) -> str:
        network = ipaddress.IPv4Network(_cidr(value))
        if not 16 <= network.prefixlen <= 24:
            raise ValueError("a VPC CIDR must be between /16 and /24 (Amazon VPC User Guide, 'VPC CIDR blocks')")
        # The VPC is cut into 16 subnets (infra/foundation/network.py subnet_cidrs), and an ALB needs subnets of at
        # least /27 (ELB User Guide, "Subnets for your Application Load Balancer"): so /23 or larger.
        if network.prefixlen + SUBNET_SPLIT_BITS > MAX_SUBNET_PREFIX:
            raise ValueError(
                f"too small: its 16 subnets would be /{network.prefixlen + SUBNET_SPLIT_BITS}, and an ALB needs "
                f"subnets of at least /{MAX_SUBNET_PREFIX}; use /{MAX_SUBNET_PREFIX - SUBNET_SPLIT_BITS} or larger"
            )
        return str(network)

    @field_validator("schedule_timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        # EventBridge Scheduler takes IANA time zone names (ScheduleExpressionTimezone).
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError("not an IANA time zone name (e.g. UTC, Europe/Berlin, America/New_York)") from None
        return value

    @field_validator("ingress_cidrs")
    @classmethod
    def _ingress(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_cidr(v) for v in value)

    @field_validator("certificate_arn")
    @classmethod
    def _certificate(cls, value: str | None) -> str | None:
        if value is not None and not _ACM_ARN.match(value):
            raise ValueError("expected an ACM certificate ARN: arn:aws:acm:<region>:<account>:certificate/<uuid>")
        return value

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            raise ValueError(f"CloudWatch Logs accepts only {list(LOG_RETENTION_DAYS)}")
        return value

    @field_validator("task_cpu")
    @classmethod
    def _cpu(cls, value: int) -> int:
        if value not in FARGATE_MEMORY:
            raise ValueError(f"Fargate offers cpu units {sorted(FARGATE_MEMORY)}")
        return value

    @field_validator("branch")
    @classmethod
    def _branch(cls, value: str) -> str:
        # git check-ref-format rules that matter for a branch name in an event pattern.
        if value.startswith("/") or value.endswith("/") or "//" in value or ".." in value or value.endswith(".lock"):
            raise ValueError("not a valid git branch name (no leading/trailing '/', '//', '..' or '.lock' suffix)")
        return value

    @field_validator("retrain_schedule", "drift_schedule", "summary_schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        return validate_schedule_expression(value)

    @field_validator("retrain_vcpu", "jobs_vcpu")
    @classmethod
    def _vcpu(cls, value: float) -> float:
        if value not in BATCH_FARGATE_MEMORY:
            raise ValueError(f"AWS Batch on Fargate offers vCPU {sorted(BATCH_FARGATE_MEMORY)}")
        return value

    @field_validator("connection_arn")
    @classmethod
    def _connection(cls, value: str | None) -> str | None:
        if value is not None and not _CONNECTION_ARN.match(value):
            raise ValueError(
                "expected a CodeConnections ARN: arn:aws:codeconnections:<region>:<account>:connection/<uuid>"
            )
        return value

    @field_validator("alert_emails")
    @classmethod
    def _emails(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [v for v in value if not _EMAIL.match(v)]
        if bad:
            raise ValueError(f"not e-mail addresses: {bad}")
        return value

    @field_validator("alert_sms_numbers")
    @classmethod
    def _sms(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [v for v in value if not _E164.match(v)]
        if bad:
            raise ValueError(f"not E.164 phone numbers (+<country><number>): {bad}")
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> StackSettings:
        problems = [*self._sizing_problems(), *self._count_problems(), *self._prod_problems(),
                    *self._pipeline_and_gate_problems(), *self._exposure_problems()]  # fmt: skip
        if problems:
            raise ConfigError("\n".join(_describe(k, v, allowed) for k, v, allowed in problems))
        return self

    def _sizing_problems(self) -> list[tuple[str, Any, str]]:
        """Fargate offers fixed cpu/memory pairs, for ECS tasks and Batch jobs alike."""
        problems: list[tuple[str, Any, str]] = []
        if self.task_memory not in FARGATE_MEMORY.get(self.task_cpu, ()):
            allowed = FARGATE_MEMORY[self.task_cpu]
            problems.append(("taskMemory", self.task_memory,
                             f"with taskCpu {self.task_cpu} Fargate offers memory {allowed[0]}..{allowed[-1]} MiB "
                             f"in steps of {allowed[1] - allowed[0]}"))  # fmt: skip
        for key, vcpu, memory in (
            ("retrainMemoryMib", self.retrain_vcpu, self.retrain_memory_mib),
            ("jobsMemoryMib", self.jobs_vcpu, self.jobs_memory_mib),
        ):
            allowed = BATCH_FARGATE_MEMORY.get(vcpu, ())
            if allowed and memory not in allowed:
                problems.append((key, memory, f"with {vcpu} vCPU, Batch on Fargate offers memory {allowed[0]}.."
                                 f"{allowed[-1]} MiB in steps of {allowed[1] - allowed[0]}"))  # fmt: skip
        return problems

    def _count_problems(self) -> list[tuple[str, Any, str]]:
        problems: list[tuple[str, Any, str]] = []
        if self.nat_gateways > self.az_count:
            problems.append(("natGateways", self.nat_gateways, f"at most azCount ({self.az_count}), one per AZ"))
        for key, desired, maximum in (
            ("stageDesiredCount", self.stage_desired_count, self.stage_max_count),
            ("prodDesiredCount", self.prod_desired_count, self.prod_max_count),
        ):
            if key == "prodDesiredCount" and desired < self.minimum_desired_count:
                problems.append((key, desired, f"at least {self.minimum_desired_count} in a {self.environment} stack"))
            if maximum < desired:
                problems.append((key.replace("Desired", "Max"), maximum, f"at least {key} ({desired})"))
        if not self.ingress_cidrs:
            problems.append(("ingressCidrs", list(self.ingress_cidrs), "at least one CIDR allowed to reach the ALB"))
        return problems

    def _prod_problems(self) -> list[tuple[str, Any, str]]:
        if self.environment != "prod":
            return []
        problems: list[tuple[str, Any, str]] = []
        if self.nat_gateways < 2:
            problems.append(("natGateways", self.nat_gateways, "at least 2 in prod, so one AZ failing keeps egress"))
        if not self.deletion_protection:
            problems.append(("deletionProtection", self.deletion_protection, "true in prod"))
        if self.log_retention_days < 365:
            problems.append(("logRetentionDays", self.log_retention_days, "at least 365 in prod"))
        return problems

    def _pipeline_and_gate_problems(self) -> list[tuple[str, Any, str]]:
        problems: list[tuple[str, Any, str]] = []
        if self.source_provider == "codeconnections" and not (self.connection_arn and self.full_repository_id):
            problems.append(("sourceProvider", self.source_provider,
                             "codeconnections needs connectionArn and fullRepositoryId (owner/repo) too"))  # fmt: skip
        if self.gate_metric == "log_loss" and self.gate_floor <= 0:
            problems.append(("gateFloor", self.gate_floor, "a positive maximum log loss when gateMetric is log_loss"))
        if self.gate_metric == "roc_auc" and not 0.5 <= self.gate_floor <= 1:
            problems.append(("gateFloor", self.gate_floor, "between 0.5 and 1 when gateMetric is roc_auc"))
        return problems

    def _exposure_problems(self) -> list[tuple[str, Any, str]]:
        """HTTPS only where it matters: prod, and any stack open to the whole internet, needs a certificate."""
        if self.certificate_arn:
            return []
        if self.is_prod:
            return [("certificateArn", None, "an ACM certificate ARN in prod: prod serves HTTPS only "
                     "(HTTP redirects to it); docs/security.md")]  # fmt: skip
        if any(ipaddress.IPv4Network(c).prefixlen == 0 for c in self.ingress_cidrs):
            return [("certificateArn", None, "an ACM certificate ARN when ingressCidrs opens the ALB to "
                     "0.0.0.0/0: a stack facing the internet serves HTTPS only")]  # fmt: skip
        return []

    @property
    def waf(self) -> bool:
        """Whether the ALBs get the WAF web ACL: the explicit setting, else on in prod only."""
        return self.is_prod if self.waf_enabled is None else self.waf_enabled

    @property
    def minimum_desired_count(self) -> int:
        return 2 if self.environment == "prod" else 1

    @property
    def is_prod(self) -> bool:
        return self.environment == "prod"

    def repository_name_for(self, stack: str) -> str:
        """The CodeCommit repository name: the configured one, else stack-unique ``ml-delivery-<stack>``."""
        return self.repository_name or f"{NAMESPACE}-{stack}"


def _describe(key: str, value: Any, allowed: str) -> str:
    return f"{NAMESPACE}:{key} = {json.dumps(value)} is not allowed: {allowed}"


def _decode(value: Any) -> Any:
    """Pulumi hands structured config (lists, objects) to the program as JSON strings."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


SECRET_KEYS = frozenset({"sentryDsn", "captureHashKey"})


def parse_settings(raw_config: Mapping[str, Any]) -> StackSettings:
    """Parse ``{"ml-delivery:key": value}``; unknown keys and bad values raise one ConfigError."""
    values = {k.split(":", 1)[1]: _decode(v) for k, v in raw_config.items() if k.startswith(f"{NAMESPACE}:")}
    values = {k: v for k, v in values.items() if k not in SECRET_KEYS}
    known = {field.alias or name for name, field in StackSettings.model_fields.items()}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            "\n".join(
                _describe(key, values[key], f"unknown key; known keys are {sorted(known | SECRET_KEYS)}")
                for key in unknown
            )
        )
    try:
        return StackSettings.model_validate(values)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            if isinstance(error.get("ctx", {}).get("error"), ConfigError):
                lines.append(str(error["ctx"]["error"]))
                continue
            key = str(error["loc"][0]) if error["loc"] else "<stack>"
            field = StackSettings.model_fields.get(key)
            key = field.alias if field is not None and field.alias else key
            value = values.get(key, error.get("input"))
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "missing":
                message = "the key is required"
            lines.append(_describe(key, value, message))
        raise ConfigError("\n".join(lines)) from None


def current_raw_config() -> dict[str, Any]:
    """All config of the running program: the engine's environment plus anything set in-process (tests)."""
    from pulumi.runtime import config as runtime_config

    return {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}


def load_settings() -> StackSettings:
    return parse_settings(current_raw_config())


def capture_hash_key() -> pulumi.Output[str] | None:
    """The optional HMAC key of capture privacy (docs/app.md "Capture privacy"), only ever as a Pulumi secret
    (``pulumi config set --secret captureHashKey``); without it a ``hash`` capture policy refuses to start."""
    return pulumi.Config(NAMESPACE).get_secret("captureHashKey")


def sentry_dsn() -> pulumi.Output[str] | None:
    """The optional Sentry DSN, only ever as a Pulumi secret (``pulumi config set --secret sentryDsn``)."""
    return pulumi.Config(NAMESPACE).get_secret("sentryDsn")
