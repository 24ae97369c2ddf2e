"""Each process's environment as a typed settings class: infra writes it, the process reads it.

Infra builds the class with the values it knows and writes :meth:`ProcessEnvironment.to_env` into the Batch
job definition (``infra/jobs/jobs_spec.py``); the job reads the same class with
:meth:`ProcessEnvironment.from_env`. A variable name, its type and its default therefore exist once, here:
renaming a field breaks infra and the job together, at type-check and test time, instead of a job silently
falling back to a default in production.

The variable of a field is its name in upper case (``model_bucket`` -> ``MODEL_BUCKET``). An empty value
counts as unset (a job definition cannot delete a variable, only blank it). ``to_env`` writes only the
fields that were given, so a job definition carries exactly what infra decided, and the job's defaults
stay the job's.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Final, Literal, Self

from pydantic import BeforeValidator, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from contracts.bucket_layout import DEFAULT_MODEL_KEY, DRIFT_REPORT_PREFIX, PROD_CAPTURE_PREFIX


class EnvironmentConfigError(ValueError):
    """A variable is missing or invalid; the message names the variable, the value and what is allowed."""


def _comma_list(value: Any) -> Any:
    """``"a, b,,c"`` -> ``("a", "b", "c")``: columns are listed comma-separated in one variable."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


# A comma-separated list (not JSON, which pydantic-settings would otherwise expect for a sequence field).
CommaList = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_comma_list)]


def _text(value: Any) -> str:
    """The variable's text: booleans as ``true``/``false`` (what the jobs and the docs use), lists comma-joined,
    whole floats without ``.0``. A secret is never written as a plain variable."""
    if isinstance(value, SecretStr):
        raise ValueError("a secret is injected through the task's `secrets` (Secrets Manager), never to_env")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return ",".join(str(item) for item in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # 30.0 seconds is written "30", as infra always wrote it
    return str(value)


class ProcessEnvironment(BaseSettings):
    """Base of every process's environment: ``to_env`` for infra, ``from_env`` for the process."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid", case_sensitive=False, env_ignore_empty=True)

    # Named in "X is not set" errors: where the reader finds what the variable is for.
    DOCS: ClassVar[str] = "README.md"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only the values passed in. Infra constructs these classes to *write* a task, job or CodeBuild
        definition, and the environment of whoever runs ``pulumi up`` must never leak into it (it did:
        the operator's AWS_REGION appeared in the Evaluate project). ``from_env`` reads the environment
        explicitly (pydantic-settings docs, "Customise settings sources")."""
        return (init_settings,)

    @classmethod
    def variable(cls, field: str) -> str:
        """The environment variable of ``field``."""
        if field not in cls.model_fields:
            raise KeyError(f"{cls.__name__} has no field {field!r}")
        return field.upper()

    @classmethod
    def variables(cls) -> tuple[str, ...]:
        """Every variable this process reads."""
        return tuple(cls.variable(name) for name in cls.model_fields)

    def to_env(self) -> dict[str, str]:
        """The variables of the fields that were given (not the defaults), as a job definition holds them."""
        return {
            self.variable(name): _text(value)
            for name in sorted(self.model_fields_set)
            if (value := getattr(self, name)) is not None
        }

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, error: type[Exception] = EnvironmentConfigError
    ) -> Self:
        """The process's settings from ``environ`` (default ``os.environ``); a bad or missing variable raises
        ``error`` naming every variable at fault, its value and what is allowed."""
        source = os.environ if environ is None else environ
        present = {
            name: source[variable]
            for name in cls.model_fields
            if (variable := cls.variable(name)) in source and source[variable].strip()
        }
        try:
            return cls.model_validate(present)
        except ValidationError as exc:
            raise error(cls.describe(exc, present)) from None

    @classmethod
    def describe(cls, exc: ValidationError, given: Mapping[str, Any]) -> str:
        """``VAR='value': what is allowed`` per problem, ``VAR is not set`` for a missing required one."""
        problems = []
        for item in exc.errors():
            name = str(item["loc"][0]) if item["loc"] else ""
            variable = name.upper() or "<environment>"
            if item["type"] == "missing":
                problems.append(f"{variable} is not set; the process needs it (see {cls.DOCS})")
            else:
                # A validator's own ValueError already says what is allowed: drop pydantic's "Value error, ".
                message = item["msg"].replace("Input should be", "expected").removeprefix("Value error, ")
                problems.append(f"{variable}={given.get(name)!r}: {message}")
        return "; ".join(problems)


# --- variables read by a shared library in whichever process loads it --------------------------------------------
# Each is its own small class, so the library reads only its variable (it does not know which process it is in);
# the processes that honour it inherit the class, so their ``variables()`` list it and infra could write it.

_SIZE = re.compile(r"^\s*(\d+)\s*([KMG]i?B?)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}
DEFAULT_MAX_DATA_BYTES: Final = 2 * 1024**3


def _size(value: Any) -> Any:
    """``500M``, ``2G``, ``1073741824`` -> bytes; anything else is refused with the forms allowed."""
    if isinstance(value, str):
        match = _SIZE.fullmatch(value)
        if not match or int(match[1]) < 1:
            raise ValueError("expected a positive size in bytes, e.g. 2G, 500M, 1048576")
        return int(match[1]) * _SIZE_UNITS[(match[2] or "")[:1].upper()]
    return value


class DataSizeEnvironment(ProcessEnvironment):
    """The training-data size cap of ``jobs_common/datasize.py`` (retrain and the Evaluate stage read data
    through ``jobs_common.readers``; docs/retrain.md)."""

    DOCS: ClassVar[str] = "docs/retrain.md"

    max_data_bytes: Annotated[int, NoDecode, BeforeValidator(_size), Field(ge=1)] = DEFAULT_MAX_DATA_BYTES


class OnnxRuntimeEnvironment(ProcessEnvironment):
    """onnxruntime's intra-op threads (``model_package/runtime.py`` ``OnnxPredictor``; docs/model-package.md)."""

    DOCS: ClassVar[str] = "docs/model-package.md"

    # 1: servers run several workers and the batch job several chunks, oversubscription costs more than it
    # gains. 0 is onnxruntime's own default (one per core), as before.
    ort_threads: Annotated[int, Field(ge=0)] = 1


class CapturePrivacyEnvironment(ProcessEnvironment):
    """The capture HMAC key (``model_package/capture_privacy.py``: the app hashes, the drift job hashes the
    baseline alike; docs/app.md "Capture privacy"). A secret: ECS/Batch inject it from Secrets Manager
    through the definition's ``secrets`` under :meth:`variable`'s name, so it is never in ``to_env``."""

    DOCS: ClassVar[str] = "docs/app.md"

    capture_hash_key: SecretStr | None = None


# --- the scheduled jobs (Batch job definitions: infra/jobs/jobs_spec.py) ------------------------------------------


class JobEnvironment(ProcessEnvironment):
    """What every Batch job gets: the region, the model bucket and where alerts go."""

    aws_region: str | None = None  # read by boto3 itself
    model_bucket: str | None = None
    alerts_topic_arn: str | None = None
    # Alerts with the same key are sent once per window (alerting/).
    alert_window_minutes: Annotated[int, Field(ge=0)] = 360


class RetrainEnvironment(JobEnvironment, DataSizeEnvironment):
    """``python -m retrain run`` (retrain/settings.py; docs/retrain.md)."""

    DOCS: ClassVar[str] = "docs/retrain.md"

    data_uri: str | None = None
    database_url: str | None = None
    sql_name: str | None = None
    target: str = "churn"
    time_column: str = "acquisition_date"
    model_key: str = DEFAULT_MODEL_KEY
    model_name: str = "churn"
    gate_metric: str | None = None  # None: the task's primary metric
    gate_tolerance: float = 0.005
    gate_floor: float | None = None  # None: the task's default floor (jobs_common/gate.py)
    # First model only (a refit reads all of these from the champion's manifest):
    task: str | None = None
    positive_label: str | None = None
    id_columns: CommaList = ()
    exclude_columns: CommaList = ()
    drop_null_target: bool = False
    min_rows: int = 500
    git_sha: str = "unknown"
    seed: int = 0
    # Only named in the job's alerts ("where to look").
    log_group: str = "/aws/batch/job"


class MonitorEnvironment(JobEnvironment, CapturePrivacyEnvironment):
    """``python -m monitor drift`` and ``python -m monitor summary`` (monitor/settings.py; docs/monitoring.md)."""

    DOCS: ClassVar[str] = "docs/monitoring.md"

    # No default: without it the monitor reads the champion pointer (the model serving prod).
    model_key: str | None = None
    capture_bucket: str | None = None
    capture_prefix: str = PROD_CAPTURE_PREFIX
    capture_db_url: str | None = None
    labels_uri: str | None = None
    # The summary job writes next to it, under reports/summary (monitor/__main__.py).
    report_prefix: str = DRIFT_REPORT_PREFIX
    drift_retrain_enabled: bool = False
    retrain_job_queue: str | None = None
    retrain_job_definition: str | None = None
    summary_min_count: Annotated[int, Field(ge=0)] = 1
    summary_window_minutes: Annotated[int, Field(ge=1)] = 10
    drift_thresholds_file: str | None = None
    drift_window_hours: Annotated[int, Field(ge=0)] = 0  # 0: since the last successful report
    drift_max_window_hours: Annotated[int, Field(ge=1)] = 168
    capture_read_workers: Annotated[int, Field(ge=1)] = 8
    drift_max_rows: Annotated[int, Field(ge=1)] = 200_000
    # Overrides the thresholds' min_rows; its bounds are the thresholds' own (monitor/thresholds.py).
    drift_min_rows: int | None = None
    # The drift job only: the prod runtime settings holding the capture privacy policy (monitor/privacy.py).
    capture_settings_source: str | None = None


class InferenceEnvironment(JobEnvironment, OnnxRuntimeEnvironment):
    """``python -m inference run`` (inference/__main__.py; docs/inference.md). Flags win over these."""

    DOCS: ClassVar[str] = "docs/inference.md"

    model_ref: str = "champion"
    input_uri: str | None = None
    output_uri: str | None = None
    chunk_rows: Annotated[int, Field(ge=1)] | None = None  # None: inference.readers.DEFAULT_CHUNK_ROWS
    allow_pickle: bool = False
    alert_state_dir: str | None = None


# --- the serving app (the ECS task definition: infra/service/model_service.py) ---


def _stripped(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _upper(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


def _flag_01(value: Any) -> Any:
    """The app's flags: 1/0, true/false, yes/no (the wider pydantic set would accept "on", "t", "y")."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("1", "true", "yes"):
            return True
        if text in ("", "0", "false", "no"):
            return False
    return value


Flag = Annotated[bool, BeforeValidator(_flag_01)]
Stripped = Annotated[str, BeforeValidator(_stripped)]


def _range(low: float, high: float) -> Any:
    return Field(ge=low, le=high)


class AppEnvironment(CapturePrivacyEnvironment, OnnxRuntimeEnvironment):
    """``python -m app`` (app/config.py; docs/app.md has the table). Errors keep the app's wording:
    ``PORT='x' is not an integer; allowed 1..65535``, ``WORKERS=99 is out of range; allowed 1..64``."""

    DOCS: ClassVar[str] = "docs/app.md"

    aws_region: str | None = None  # read by boto3 itself
    model_dir: Stripped = "/opt/model"
    port: Annotated[int, _range(1, 65535)] = 8080
    workers: Annotated[int, _range(1, 64)] = 2
    service_name: Annotated[Literal["stage", "prod", "local"], BeforeValidator(_stripped)] = "local"
    capture_s3_uri: Annotated[str, BeforeValidator(_stripped)] | None = None
    capture_db_url: Stripped | None = None
    # Inside the container /tmp is the task's own ephemeral storage, not a shared world-writable dir.
    spool_dir: Stripped = "/tmp/capture-spool"  # noqa: S108
    settings_source: Stripped | None = None
    settings_refresh_seconds: Annotated[float, _range(0.05, 86400)] = 30.0
    sentry_dsn: Stripped | None = None
    # Also read by the SageMaker handler shim (app/core.py load_model) when not passed.
    allow_pickle: Flag = False
    model_runtime: Annotated[Literal["onnx", "skops", "pickle"], BeforeValidator(_stripped)] | None = None
    max_batch_size: Annotated[int, _range(1, 4096)] = 64
    max_batch_wait_ms: Annotated[float, _range(0.0, 1000.0)] = 2.0
    max_body_bytes: Annotated[int, _range(1024, 1 << 30)] = 1 << 20
    log_level: Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], BeforeValidator(_upper)] = "INFO"
    capture_flush_records: Annotated[int, _range(1, 1_000_000)] = 1000
    capture_flush_seconds: Annotated[float, _range(0.01, 3600)] = 5.0
    capture_queue_size: Annotated[int, _range(10, 10_000_000)] = 100_000
    capture_retry_max_seconds: Annotated[float, _range(0.05, 3600)] = 30.0
    capture_spool_max_bytes: Annotated[int, _range(1 << 20, 1 << 40)] = 1 << 30
    capture_spool_overflow: Annotated[Literal["drop_oldest", "drop_newest"], BeforeValidator(_lower)] = "drop_oldest"
    capture_unhealthy_seconds: Annotated[float, _range(1.0, 86400)] = 300.0
    # What /ready does when capture fails too long (docs/app.md).
    capture_failure_policy: Annotated[Literal["alarm", "drain"], BeforeValidator(_lower)] = "alarm"
    capture_emf_seconds: Annotated[float, _range(0.0, 3600)] = 0.0
    max_records_per_request: Annotated[int, _range(1, 100_000)] = 1000
    http_max_header_bytes: Annotated[int, _range(1024, 1 << 20)] = 16384
    http_header_timeout_seconds: Annotated[float, _range(0.1, 3600)] = 10.0
    http_body_timeout_seconds: Annotated[float, _range(0.1, 3600)] = 30.0
    http_keepalive_seconds: Annotated[float, _range(0.1, 3600)] = 5.0
    http_max_connections: Annotated[int, _range(1, 100_000)] = 1000
    # contracts.prediction_metrics.SERVICE_NAME_ENV: the service named in the score-shift EMF lines (unset: off).
    prediction_metrics_service: Stripped | None = None

    @classmethod
    def _bounds(cls, name: str) -> str:
        low = high = None
        for item in cls.model_fields[name].metadata:
            low = getattr(item, "ge", low)
            high = getattr(item, "le", high)
        if low is not None and high is not None:
            return f"{low:g}..{high:g}"
        return f"{low:g} or more" if low is not None else ""

    @classmethod
    def describe(cls, exc: ValidationError, given: Mapping[str, Any]) -> str:
        """The app's wording: the variable, its value and the allowed range or choices."""
        problems = []
        for item in exc.errors():
            name = str(item["loc"][0]) if item["loc"] else ""
            variable, raw = name.upper(), given.get(name)
            kind = item["type"]
            if kind == "int_parsing":
                problems.append(f"{variable}={raw!r} is not an integer; allowed {cls._bounds(name)}")
            elif kind == "float_parsing":
                problems.append(f"{variable}={raw!r} is not a number; allowed {cls._bounds(name)}")
            elif kind in ("greater_than_equal", "less_than_equal"):
                problems.append(f"{variable}={item['input']} is out of range; allowed {cls._bounds(name)}")
            elif kind == "literal_error":
                allowed = item.get("ctx", {}).get("expected", "")
                problems.append(f"{variable}={item['input']!r}: allowed {allowed}")
            elif kind == "bool_parsing":
                problems.append(f"{variable}={raw!r}: allowed 1/0 (or true/false)")
            else:
                problems.append(f"{variable}={raw!r}: {item['msg']}")
        return "; ".join(problems)


# --- the pipeline's CodeBuild actions (infra/pipeline.py) ---------------------------------------------------


class EvaluateEnvironment(DataSizeEnvironment):
    """``python -m evaluation run``, the Evaluate stage (evaluation/settings.py; docs/pipeline.md). Range rules
    that span values stay in ``EvaluationSettings.validated``; here are the names, types and defaults."""

    DOCS: ClassVar[str] = "docs/pipeline.md"

    aws_region: str = "us-east-1"
    model_bucket: str = ""
    model_key: str = DEFAULT_MODEL_KEY
    capture_bucket: str | None = None
    capture_prefix: str = PROD_CAPTURE_PREFIX
    # None: every data file under the model bucket's training-data prefix (what retrain trains on).
    labelled_data_uri: str | None = None
    stage_url: str = ""
    git_sha: str = "unknown"
    # The report's key (contracts.bucket_layout.evaluation_report_keys); a local run names its own.
    pipeline_execution_id: str = "local"
    gate_metric: str | None = None  # None: the candidate task's primary metric
    gate_tolerance: float = 0.005
    gate_floor: float | None = None  # None: the task's default floor (jobs_common/gate.py)
    evaluation_min_agreement: float = 0.9
    evaluation_max_score_psi: float = 0.2
    evaluation_max_segment_shift: float = 0.1
    evaluation_max_stage_difference: float = 1e-4
    evaluation_max_p99_latency_ms: float = 1000.0
    evaluation_replay_sample_size: int = 2000
    evaluation_replay_window_hours: int = 168
    evaluation_smoke_requests: int = 30
    evaluation_decision_threshold: float = 0.5
    evaluation_min_segment_rows: int = 30


class ReleaseEnvironment(ProcessEnvironment):
    """``python -m release``, the Release action (release/settings.py; docs/release-record.md). Formats (bucket
    name, ARN, pipeline name) are checked in ``ReleaseSettings.from_env`` with the wording operators know."""

    DOCS: ClassVar[str] = "docs/release-record.md"

    model_bucket: str = ""
    model_key: str = DEFAULT_MODEL_KEY
    pipeline_execution_id: str = ""
    alerts_topic_arn: str | None = None
    job_definition_names: str = ""  # comma-separated (release/job_definitions.py parse_names)
    schedule_names: str = ""  # comma-separated (release/schedules.py parse_schedule_names)
    # The pipeline whose ListActionExecutions says who approved (release/ledger.py); unset outside it.
    pipeline_name: str | None = None
    # `release deployed-image`: the stack whose SSM parameters record what runs, and the key they are
    # encrypted with (release/contracts.py deployed_image_parameter; docs/pipeline.md "Who owns the image").
    stack_name: str | None = None
    parameter_key_arn: str | None = None
    # CodeBuild's own variable (CodeBuild User Guide, "Environment variables in build environments"), never
    # written by infra: `release test-record write` names the build that passed.
    codebuild_build_id: str | None = None


class DemoEnvironment(ProcessEnvironment):
    """``python -m retrain.demo`` (docs/retrain.md): where the local demo writes everything."""

    DOCS: ClassVar[str] = "docs/retrain.md"

    demo_dir: str = "out/demo"


# Which class each Batch job reads (the job names of infra/jobs/jobs_spec.py).
JOB_ENVIRONMENTS: Final[dict[str, type[JobEnvironment]]] = {
    "retrain": RetrainEnvironment,
    "drift": MonitorEnvironment,
    "summary": MonitorEnvironment,
    "inference": InferenceEnvironment,
}

__all__ = [
    "DEFAULT_MAX_DATA_BYTES",
    "JOB_ENVIRONMENTS",
    "AppEnvironment",
    "CapturePrivacyEnvironment",
    "CommaList",
    "DataSizeEnvironment",
    "DemoEnvironment",
    "EnvironmentConfigError",
    "EvaluateEnvironment",
    "InferenceEnvironment",
    "JobEnvironment",
    "MonitorEnvironment",
    "OnnxRuntimeEnvironment",
    "ProcessEnvironment",
    "ReleaseEnvironment",
    "RetrainEnvironment",
]
