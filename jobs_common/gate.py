"""The promotion gate: a candidate is uploaded only if it is not worse than the champion by more than the
tolerance and clears an absolute floor, both on the gate metric and the same holdout rows.

Direction-aware: the gate metric defaults to the task's primary metric (binary ``roc_auc`` higher is
better, multiclass ``log_loss`` and regression ``rmse`` lower is better). ``floor`` is a bound in the
"better" direction; when it is not set, each task has its own default (docs/retrain.md):

- binary: ROC AUC >= 0.6;
- multiclass: log loss <= ln(K), i.e. better than guessing every class with equal probability;
- regression: R^2 > 0, i.e. RMSE below that of always predicting the holdout mean (an RMSE bound in the
  target's units cannot have a default).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from jobs_common.errors import ConfigError
from jobs_common.metrics import metric_value
from model_package.manifest import HIGHER_IS_BETTER, PRIMARY_METRIC, TASK_METRICS, Metrics

BINARY_DEFAULT_FLOOR = 0.6


@dataclass(frozen=True)
class GatePolicy:
    metric: str | None = None  # None: the task's primary metric
    tolerance: float = 0.005
    floor: float | None = None  # None: the task's default floor

    def __post_init__(self) -> None:
        if self.metric is not None and self.metric not in HIGHER_IS_BETTER:
            raise ValueError(f"gate metric {self.metric!r} is not known; allowed: {sorted(HIGHER_IS_BETTER)}")


@dataclass(frozen=True)
class GateDecision:
    accepted: bool
    reason: str
    candidate: float
    champion: float | None


def _task(metrics: Metrics) -> str:
    return next(task for task, name in PRIMARY_METRIC.items() if name == metrics.primary_metric)


def _floor_problem(policy: GatePolicy, name: str, cand: float, candidate: Metrics) -> str | None:
    """Why the candidate fails the absolute bound, or None."""
    higher = HIGHER_IS_BETTER[name]
    if policy.floor is not None:
        ok = cand >= policy.floor if higher else cand <= policy.floor
        relation = "below the floor" if higher else "above the ceiling"
        return None if ok else f"candidate {name} {cand:.4f} is {relation} {policy.floor}"
    task = _task(candidate)
    if task == "binary" and name == "roc_auc":
        ok = cand >= BINARY_DEFAULT_FLOOR
        return None if ok else f"candidate roc_auc {cand:.4f} is below the floor {BINARY_DEFAULT_FLOOR}"
    if task == "multiclass" and candidate.per_class_recall and candidate.log_loss is not None:
        bound = math.log(len(candidate.per_class_recall))
        ok = candidate.log_loss <= bound
        return (
            None
            if ok
            else (
                f"candidate log_loss {candidate.log_loss:.4f} is above ln({len(candidate.per_class_recall)}) = "
                f"{bound:.4f}, no better than guessing every class equally"
            )
        )
    if task == "regression" and candidate.r2 is not None:
        ok = candidate.r2 > 0
        return None if ok else f"candidate r2 {candidate.r2:.4f} <= 0: no better than predicting the holdout mean"
    return None


def decide(policy: GatePolicy, candidate: Metrics, champion: Metrics | None) -> GateDecision:
    """``tolerance`` is how much worse than the champion the candidate may be, in the metric's units."""
    name = policy.metric or candidate.primary_metric
    higher = HIGHER_IS_BETTER[name]
    try:
        cand = metric_value(candidate, name)
    except ValueError as exc:
        raise ConfigError(
            f"GATE_METRIC={name}: {exc}; a {_task(candidate)} model has {list(TASK_METRICS[_task(candidate)])}"
        ) from None
    if problem := _floor_problem(policy, name, cand, candidate):
        return GateDecision(False, problem, cand, None)
    if champion is None:
        return GateDecision(True, f"first model: no champion; candidate {name} {cand:.4f} clears the floor", cand, None)
    champ = metric_value(champion, name)
    bound = champ - policy.tolerance if higher else champ + policy.tolerance
    ok = cand >= bound if higher else cand <= bound
    verdict = "within" if ok else "worse than"
    reason = (
        f"candidate {name} {cand:.4f} vs champion {champ:.4f} on the same {candidate.holdout_rows} holdout rows "
        f"({'higher' if higher else 'lower'} is better): {verdict} the tolerance {policy.tolerance} "
        f"({'>=' if higher else '<='} {bound:.4f} required)"
    )
    return GateDecision(ok, reason, cand, champ)
