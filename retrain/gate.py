"""The promotion gate: a candidate is uploaded only if it is not worse than the champion by more than the
tolerance and clears an absolute floor, both on the configured metric and the same holdout rows."""

from __future__ import annotations

from dataclasses import dataclass

from model_package.manifest import HIGHER_IS_BETTER, Metrics
from retrain.metrics import metric_value


@dataclass(frozen=True)
class GatePolicy:
    metric: str = "roc_auc"
    tolerance: float = 0.005
    floor: float = 0.6

    def __post_init__(self) -> None:
        if self.metric not in HIGHER_IS_BETTER:
            raise ValueError(f"gate metric {self.metric!r} is not known; allowed: {sorted(HIGHER_IS_BETTER)}")


@dataclass(frozen=True)
class GateDecision:
    accepted: bool
    reason: str
    candidate: float
    champion: float | None


def decide(policy: GatePolicy, candidate: Metrics, champion: Metrics | None) -> GateDecision:
    """``floor`` is a bound in the "better" direction (minimum AUC/lift, maximum log loss); ``tolerance``
    is how much worse than the champion the candidate may be."""
    higher = HIGHER_IS_BETTER[policy.metric]
    cand = metric_value(candidate, policy.metric)
    name = policy.metric
    clears_floor = cand >= policy.floor if higher else cand <= policy.floor
    if not clears_floor:
        relation = "below the floor" if higher else "above the ceiling"
        return GateDecision(False, f"candidate {name} {cand:.4f} is {relation} {policy.floor}", cand, None)
    if champion is None:
        return GateDecision(
            True, f"first model: no champion; candidate {name} {cand:.4f} clears {policy.floor}", cand, None
        )
    champ = metric_value(champion, policy.metric)
    bound = champ - policy.tolerance if higher else champ + policy.tolerance
    ok = cand >= bound if higher else cand <= bound
    verdict = "within" if ok else "worse than"
    reason = (
        f"candidate {name} {cand:.4f} vs champion {champ:.4f} on the same {candidate.holdout_rows} holdout rows: "
        f"{verdict} the tolerance {policy.tolerance} ({'>=' if higher else '<='} {bound:.4f} required)"
    )
    return GateDecision(ok, reason, cand, champ)
