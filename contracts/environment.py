"""Each process's environment as a typed settings class: infra writes it, the process reads it.

Infra builds the class with the values it knows and writes :meth:`ProcessEnvironment.to_env` into the Batch
job definition (``infra/jobs_spec.py``); the job reads the same class with
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
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Final, Self

from pydantic import BeforeValidator, Field, ValidationError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

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
    """The variable's text: booleans as ``true``/``false`` (what the jobs and the docs use), lists comma-joined."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return ",".join(str(item) for item in value)
    return str(value)


class ProcessEnvironment(BaseSettings):
    """Base of every process's environment: ``to_env`` for infra, ``from_env`` for the process."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", case_sensitive=False, env_ignore_empty=True)

    # Named in "X is not set" errors: where the reader finds what the variable is for.
    DOCS: ClassVar[str] = "README.md"

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
                message = item["msg"].replace("Input should be", "expected")
                problems.append(f"{variable}={given.get(name)!r}: {message}")
        return "; ".join(problems)


# --- the scheduled jobs (Batch job definitions: infra/jobs_spec.py) ------------------------------------------


class JobEnvironment(ProcessEnvironment):
    """What every Batch job gets: the region, the model bucket and where alerts go."""

    aws_region: str | None = None  # read by boto3 itself
    model_bucket: str | None = None
    alerts_topic_arn: str | None = None
    # Alerts with the same key are sent once per window (alerting/).
    alert_window_minutes: Annotated[int, Field(ge=0)] = 360


class RetrainEnvironment(JobEnvironment):
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
    gate_floor: float | None = None  # None: the task's default floor (retrain/gate.py)
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


class MonitorEnvironment(JobEnvironment):
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
    # The drift job only: the prod runtime settings holding the capture privacy policy (monitor/privacy.py).
    capture_settings_source: str | None = None


class InferenceEnvironment(JobEnvironment):
    """``python -m inference run`` (inference/__main__.py; docs/inference.md). Flags win over these."""

    DOCS: ClassVar[str] = "docs/inference.md"

    model_ref: str = "champion"
    input_uri: str | None = None
    output_uri: str | None = None
    chunk_rows: Annotated[int, Field(ge=1)] | None = None  # None: inference.readers.DEFAULT_CHUNK_ROWS
    allow_pickle: bool = False
    alert_state_dir: str | None = None


# Which class each Batch job reads (the job names of infra/jobs_spec.py).
JOB_ENVIRONMENTS: Final[dict[str, type[JobEnvironment]]] = {
    "retrain": RetrainEnvironment,
    "drift": MonitorEnvironment,
    "summary": MonitorEnvironment,
    "inference": InferenceEnvironment,
}

__all__ = [
    "JOB_ENVIRONMENTS",
    "CommaList",
    "EnvironmentConfigError",
    "InferenceEnvironment",
    "JobEnvironment",
    "MonitorEnvironment",
    "ProcessEnvironment",
    "RetrainEnvironment",
]
