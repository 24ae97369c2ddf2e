"""Drift thresholds: one place, documented in docs/monitoring.md, overridable per run.

A test flags drift only when it is both *significant* (p-value below ``p_value``) and *large*
(an effect size at or above its minimum). Significance alone is useless at production volumes: with
a million rows a KS test rejects a 0.5 % shift nobody cares about. The effect-size floors are the
conventional ones (KS distance 0.1, PSI 0.2 = "significant shift" in credit-risk practice, a mean
moved by 0.2 standard deviations = Cohen's "small" effect), chosen
before measuring, not tuned to any test; docs/monitoring.md gives the sensitivity they produce.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contracts.environment import MonitorEnvironment
from model_package.errors import JobConfigError

# The environment form of ``min_rows`` (a Batch job definition sets variables more easily than files).
MIN_ROWS_ENV = MonitorEnvironment.variable("drift_min_rows")


class DriftThresholds(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    p_value: float = Field(0.01, gt=0, lt=1, description="significance level for KS, chi-square and null-rate tests")
    ks_statistic: float = Field(0.1, gt=0, le=1, description="minimum KS distance (numeric) to call drift")
    psi: float = Field(0.2, gt=0, description="minimum population stability index (numeric and categorical)")
    mean_shift: float = Field(
        0.2, gt=0, description="minimum |mean change| in baseline standard deviations (Cohen's d 'small')"
    )
    tvd: float = Field(0.1, gt=0, le=1, description="minimum total variation distance (categorical)")
    unseen_share: float = Field(0.01, gt=0, le=1, description="share of unseen categories that is drift")
    null_rate_change: float = Field(0.05, gt=0, le=1, description="minimum absolute change of the null rate")
    adversarial_auc: float = Field(0.6, gt=0.5, le=1, description="adversarial ROC AUC at or above = drift")
    min_rows: int = Field(
        100, ge=10, description="fewer production rows than this: the window is refused, a feature is not tested"
    )
    concept_auc_drop: float = Field(0.05, gt=0, le=1, description="ROC AUC drop vs holdout = concept drift")
    concept_log_loss_rise: float = Field(0.2, gt=0, description="relative log-loss rise vs holdout = concept drift")
    min_labelled_rows: int = Field(200, ge=10, description="fewer labelled rows: live metrics are not judged")
    retrain_drifted_share: float = Field(
        0.3, gt=0, le=1, description="share of drifted features at or above which retrain is submitted"
    )
    retrain_adversarial_auc: float = Field(0.7, gt=0.5, le=1, description="adversarial AUC that asks for retrain")

    @classmethod
    def from_file(cls, path: str | Path | None) -> DriftThresholds:
        """Defaults, overridden by a JSON object of the fields above; unknown fields are an error."""
        if path is None:
            return cls()
        try:
            raw = json.loads(Path(path).read_text())
            return cls.model_validate(raw)
        except (OSError, json.JSONDecodeError) as exc:
            raise JobConfigError(f"thresholds file {path}: cannot be read as JSON: {exc}") from exc
        except ValidationError as exc:
            allowed = ", ".join(cls.model_fields)
            message = f"thresholds file {path}: {exc.errors()[0]['msg']} (allowed fields: {allowed})"
            raise JobConfigError(message) from exc

    def with_env(self, env: Mapping[str, str] | None = None) -> DriftThresholds:
        """``DRIFT_MIN_ROWS`` when set overrides ``min_rows``: one value for the window and the tests."""
        value = MonitorEnvironment.from_env(env, error=JobConfigError).drift_min_rows
        if value is None:
            return self
        try:  # the bounds are min_rows' own, in one place
            return type(self).model_validate({**self.model_dump(), "min_rows": value})
        except ValidationError as exc:
            raise JobConfigError(f"{MIN_ROWS_ENV}={value!r}: {exc.errors()[0]['msg']}") from exc
