"""The job's settings: read from the environment once (the Batch job definition), flags override.

Every value is checked here, so a typo in the job definition fails at start with the variable's name
and what is allowed, instead of half-way through a run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from contracts.bucket_layout import DEFAULT_MODEL_KEY
from contracts.environment import RetrainEnvironment
from jobs_common.errors import ConfigError
from model_package.errors import ManifestError
from model_package.manifest import HIGHER_IS_BETTER, TASK_TYPES, Manifest, check_name


@dataclass(frozen=True)
class Settings:
    data_uri: str | None = None
    database_url: str | None = None
    sql_name: str | None = None
    target: str = "churn"
    time_column: str = "acquisition_date"
    model_bucket: str | None = None
    model_key: str = DEFAULT_MODEL_KEY
    model_name: str = "churn"
    alerts_topic_arn: str | None = None
    alert_window_minutes: int = 360
    gate_metric: str | None = None
    gate_tolerance: float = 0.005
    gate_floor: float | None = None
    task: str | None = None
    positive_label: str | None = None
    id_columns: tuple[str, ...] = ()
    exclude_columns: tuple[str, ...] = ()
    drop_null_target: bool = False
    min_rows: int = 500
    git_sha: str = "unknown"
    seed: int = 0
    log_group: str = "/aws/batch/job"
    # The fields set by the environment or a flag (from_env); None: every field that differs from its default.
    # A refit takes what was not set from the champion's manifest (:meth:`for_champion`).
    explicit: frozenset[str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Environment first, then non-None ``overrides`` (command-line flags); validated."""
        # The variables, their types and defaults: contracts.environment.RetrainEnvironment, the class infra
        # writes the job definition from. Only the variables actually set are taken from it.
        environment = RetrainEnvironment.from_env(env, error=ConfigError)
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {name: getattr(environment, name) for name in environment.model_fields_set & known}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"unknown settings {unknown}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values, explicit=frozenset(values)).validated()

    def for_champion(self, champion: Manifest) -> Settings:
        """A refit's settings: the target, model name and time column come from the champion's manifest (its
        column roles) unless set, so one job definition refits a binary, multiclass or regression champion
        without naming its columns (issue #14). Format 1 packages recorded no time column: the setting stays."""
        explicit = self.explicit
        if explicit is None:
            explicit = frozenset(f.name for f in fields(self) if getattr(self, f.name) != f.default)
        from_champion: dict[str, Any] = {"target": champion.target, "model_name": champion.name}
        if champion.format_version >= 2 and champion.columns.time_column:
            from_champion["time_column"] = champion.columns.time_column
        return self.replace(**{k: v for k, v in from_champion.items() if k not in explicit})

    def validated(self) -> Settings:
        problems = []
        try:
            check_name(self.model_name)
        except ManifestError as exc:
            problems.append(f"MODEL_NAME: {exc}")
        if self.task is not None and self.task not in TASK_TYPES:
            problems.append(f"TASK={self.task!r}; allowed: {list(TASK_TYPES)} (or unset: inferred from the target)")
        if self.gate_metric is not None and self.gate_metric not in HIGHER_IS_BETTER:
            problems.append(f"GATE_METRIC={self.gate_metric!r}; allowed: {sorted(HIGHER_IS_BETTER)}")
        if self.gate_tolerance < 0:
            problems.append(f"GATE_TOLERANCE={self.gate_tolerance} must be >= 0")
        if self.min_rows < 1:
            problems.append(f"MIN_ROWS={self.min_rows} must be >= 1")
        if self.alert_window_minutes < 0:
            problems.append(f"ALERT_WINDOW_MINUTES={self.alert_window_minutes} must be >= 0")
        if not self.model_key or self.model_key.startswith("/"):
            problems.append(f"MODEL_KEY={self.model_key!r} must be a relative S3 key such as model.zip")
        if problems:
            raise ConfigError("invalid settings: " + "; ".join(problems))
        return self

    def for_run(self) -> Settings:
        """The extra requirements of ``retrain run``: a bucket and exactly one data source."""
        problems = []
        if not self.model_bucket:
            problems.append("MODEL_BUCKET is required (the bucket holding models/, champion.json, reports/)")
        if bool(self.data_uri) == bool(self.sql_name):
            problems.append("set exactly one of DATA_URI (s3://... or a path) and SQL_NAME (a query in retrain/sql)")
        if self.sql_name and not self.database_url:
            problems.append("SQL_NAME needs DATABASE_URL (e.g. postgresql://user@host/db or sqlite:///file.db)")
        if problems:
            raise ConfigError("invalid settings: " + "; ".join(problems))
        return self

    def replace(self, **changes: Any) -> Settings:
        return replace(self, **changes).validated()
