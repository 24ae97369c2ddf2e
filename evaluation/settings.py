"""The Evaluate action's settings: read once from the environment the infra gives the CodeBuild project.

Every value is checked here, so a typo fails at start naming the variable and what is allowed. The
``EVALUATION_*`` thresholds are the stack's ``evaluation*`` keys (infra/settings.py); the gate metric,
tolerance and floor are the retrain gate's own keys, so the labelled comparison here and the retrain
gate can never judge one candidate by two different rules.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from contracts.bucket_layout import DEFAULT_MODEL_KEY, PROD_CAPTURE_PREFIX, TRAINING_DATA_PREFIX
from contracts.environment import EvaluateEnvironment
from contracts.exit_codes import ExitCode
from jobs_common.gate import GatePolicy
from model_package.errors import JobConfigError
from model_package.manifest import HIGHER_IS_BETTER


class ConfigError(JobConfigError):
    """A bad or missing setting; the message names the variable and what is allowed (exits CONFIG)."""


# Exit status of ``python -m evaluation run`` (the buildspec passes it on; CodeBuild fails the action on != 0).
# Exit statuses from the one table (contracts/exit_codes.py, docs/exit-codes.md).
EXIT_PASSED = ExitCode.OK
EXIT_UNEXPECTED = ExitCode.UNEXPECTED
EXIT_CONFIG = ExitCode.CONFIG
EXIT_REJECTED = ExitCode.CANDIDATE_REJECTED

# EvaluationSettings field -> EvaluateEnvironment field (contracts.environment: the variables, their types and
# defaults, which infra writes the Evaluate action's environment from).
_FROM_ENVIRONMENT = {
    "region": "aws_region",
    "min_agreement": "evaluation_min_agreement",
    "max_score_psi": "evaluation_max_score_psi",
    "max_segment_shift": "evaluation_max_segment_shift",
    "max_stage_difference": "evaluation_max_stage_difference",
    "max_p99_latency_ms": "evaluation_max_p99_latency_ms",
    "replay_sample_size": "evaluation_replay_sample_size",
    "replay_window_hours": "evaluation_replay_window_hours",
    "smoke_requests": "evaluation_smoke_requests",
    "decision_threshold": "evaluation_decision_threshold",
    "min_segment_rows": "evaluation_min_segment_rows",
}


@dataclass(frozen=True)
class EvaluationSettings:
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
    region: str = "us-east-1"
    # None: the candidate task's primary metric and default floor (jobs_common/gate.py), as in retrain (issue #14).
    gate_metric: str | None = None
    gate_tolerance: float = 0.005
    gate_floor: float | None = None
    min_agreement: float = 0.9
    max_score_psi: float = 0.2
    max_segment_shift: float = 0.1
    max_stage_difference: float = 1e-4
    max_p99_latency_ms: float = 1000.0
    replay_sample_size: int = 2000
    replay_window_hours: int = 168
    smoke_requests: int = 30
    decision_threshold: float = 0.5
    min_segment_rows: int = 30

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> EvaluationSettings:
        read = EvaluateEnvironment.from_env(env, error=ConfigError)
        values: dict[str, Any] = {
            name: getattr(read, _FROM_ENVIRONMENT.get(name, name))
            for name in (f.name for f in fields(cls))
            if _FROM_ENVIRONMENT.get(name, name) in read.model_fields_set
        }
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"unknown settings {unknown}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values).validated()

    @property
    def gate(self) -> GatePolicy:
        return GatePolicy(self.gate_metric, self.gate_tolerance, self.gate_floor)

    @property
    def labelled_uri(self) -> str:
        return self.labelled_data_uri or f"s3://{self.model_bucket}/{TRAINING_DATA_PREFIX}"

    def thresholds(self) -> dict[str, Any]:
        """What the report shows next to each check: the rules the candidate was judged by."""
        return {
            "gate": {"metric": self.gate_metric, "tolerance": self.gate_tolerance, "floor": self.gate_floor},
            "min_agreement": self.min_agreement,
            "max_score_psi": self.max_score_psi,
            "max_segment_shift": self.max_segment_shift,
            "max_stage_difference": self.max_stage_difference,
            "max_p99_latency_ms": self.max_p99_latency_ms,
        }

    def validated(self) -> EvaluationSettings:
        problems = []
        if not self.model_bucket:
            problems.append("MODEL_BUCKET is required (the bucket holding champion.json, models/ and reports/)")
        if not self.stage_url.startswith(("http://", "https://")):
            problems.append(f"STAGE_URL={self.stage_url!r}: the stage service's base URL (http:// or https://)")
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,100}", self.pipeline_execution_id):
            problems.append(
                f"PIPELINE_EXECUTION_ID={self.pipeline_execution_id!r}: letters, digits, '.', '_', '-' "
                "(#{codepipeline.PipelineExecutionId} in the pipeline)"
            )
        if self.gate_metric is not None and self.gate_metric not in HIGHER_IS_BETTER:
            problems.append(f"GATE_METRIC={self.gate_metric!r}; allowed: {sorted(HIGHER_IS_BETTER)}")
        if self.gate_tolerance < 0:
            problems.append(f"GATE_TOLERANCE={self.gate_tolerance} must be >= 0")
        for var, value in (("EVALUATION_MIN_AGREEMENT", self.min_agreement),
                           ("EVALUATION_DECISION_THRESHOLD", self.decision_threshold)):  # fmt: skip
            if not 0 <= value <= 1:
                problems.append(f"{var}={value} must be between 0 and 1")
        for var, value in (("EVALUATION_MAX_SCORE_PSI", self.max_score_psi),
                           ("EVALUATION_MAX_SEGMENT_SHIFT", self.max_segment_shift),
                           ("EVALUATION_MAX_STAGE_DIFFERENCE", self.max_stage_difference)):  # fmt: skip
            if value < 0:
                problems.append(f"{var}={value} must be >= 0")
        for var, value in (("EVALUATION_MAX_P99_LATENCY_MS", self.max_p99_latency_ms),
                           ("EVALUATION_REPLAY_SAMPLE_SIZE", self.replay_sample_size),
                           ("EVALUATION_REPLAY_WINDOW_HOURS", self.replay_window_hours),
                           ("EVALUATION_SMOKE_REQUESTS", self.smoke_requests),
                           ("EVALUATION_MIN_SEGMENT_ROWS", self.min_segment_rows)):  # fmt: skip
            if value <= 0:
                problems.append(f"{var}={value} must be > 0")
        if problems:
            raise ConfigError("invalid settings: " + "; ".join(problems))
        return self
