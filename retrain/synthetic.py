"""Deterministic synthetic churn data for the demo, the tests and the benchmarks.

The target is drawn from a known logistic model of the features, so a trained model has real signal
to find (holdout ROC AUC around 0.8) and a shifted generator produces drift the monitor can detect.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

CAMPAIGNS = ("C01", "C02", "C03", "C04", "C05", "C06")
_CAMPAIGN_WEIGHTS = (0.3, 0.25, 0.15, 0.12, 0.1, 0.08)
# Churn log-odds effect per campaign: some campaigns acquire customers who leave.
_CAMPAIGN_EFFECT = {"C01": -0.4, "C02": 0.0, "C03": 0.5, "C04": -0.2, "C05": 0.8, "C06": 0.2}
NUMERIC_FEATURES = (
    "tenure_months",
    "monthly_spend",
    "satisfaction_score",
    "engagement_score",
    "star_rating",
    "logins_30d",
    "support_tickets_90d",
)
TIME_COLUMN = "acquisition_date"
TARGET = "churn"


def generate_churn(
    rows: int,
    seed: int = 0,
    start: date = date(2026, 1, 1),
    days: int = 90,
    **shift: float | dict[str, float],
) -> pd.DataFrame:
    """``rows`` customers acquired over ``days`` days from ``start``; the same arguments give the same frame.

    ``shift`` simulates drift: a numeric feature name adds that offset to the feature (before the target
    is drawn, so the relationship holds: covariate shift); ``campaign_mix={"C05": 3.0}`` multiplies
    campaign weights; ``concept=0.0`` scales the true signal (1 = unchanged, 0 = noise: concept drift);
    ``null_rate=0.2`` raises the null rate of the nullable columns.
    """
    if rows < 1 or days < 1:
        raise ValueError(f"rows and days must be at least 1, got rows={rows}, days={days}")
    allowed = {*NUMERIC_FEATURES, "campaign_mix", "concept", "null_rate"}
    unknown = sorted(set(shift) - allowed)
    if unknown:
        raise ValueError(f"unknown shift {unknown}; allowed: {sorted(allowed)}")
    rng = np.random.default_rng(seed)
    offset = {name: float(shift.get(name, 0.0)) for name in NUMERIC_FEATURES}  # type: ignore[arg-type]

    tenure = np.clip(rng.gamma(2.0, 10.0, rows) + offset["tenure_months"], 0, 120).round()
    spend = np.clip(rng.normal(60, 20, rows) + offset["monthly_spend"], 5, None).round(2)
    satisfaction = np.clip(rng.normal(70, 15, rows) + offset["satisfaction_score"], 0, 100).round(1)
    engagement = np.clip(rng.beta(2, 3, rows) * 100 + offset["engagement_score"], 0, 100).round(1)
    stars = np.clip(np.round(1 + satisfaction / 25 + rng.normal(0, 0.7, rows)) + offset["star_rating"], 1, 5)
    logins = rng.poisson(np.clip(engagement / 5 + offset["logins_30d"], 0.1, None))
    tickets = rng.poisson(np.clip((100 - satisfaction) / 30 + offset["support_tickets_90d"], 0.05, None))

    mix = dict(zip(CAMPAIGNS, _CAMPAIGN_WEIGHTS, strict=True))
    for name, factor in dict(shift.get("campaign_mix", {})).items():  # type: ignore[arg-type]
        if name not in mix:
            raise ValueError(f"campaign_mix: unknown campaign {name!r}; allowed: {list(CAMPAIGNS)}")
        mix[name] *= float(factor)
    weights = np.array(list(mix.values()))
    campaign = rng.choice(np.array(CAMPAIGNS, dtype=object), size=rows, p=weights / weights.sum())

    concept = float(shift.get("concept", 1.0))  # type: ignore[arg-type]
    logit = (
        -0.5
        - 0.06 * (tenure - 20)
        + 0.02 * (spend - 60)
        - 0.04 * (satisfaction - 70)
        - 0.05 * (logins - 8)
        + 0.35 * tickets
        - 0.3 * (stars - 3)
        + np.array([_CAMPAIGN_EFFECT[c] for c in campaign])
    )
    churn = (rng.random(rows) < 1 / (1 + np.exp(-concept * logit))).astype(np.int64)

    acquired = pd.Timestamp(start) + pd.to_timedelta(np.sort(rng.integers(0, days, rows)), unit="D")
    frame = pd.DataFrame(
        {
            "tenure_months": tenure.astype(np.int64),
            "monthly_spend": spend,
            "satisfaction_score": satisfaction,
            "engagement_score": engagement,
            "star_rating": stars.astype(np.float64),
            "logins_30d": logins.astype(np.int64),
            "support_tickets_90d": tickets.astype(np.int64),
            "campaign_id": pd.Series(campaign, dtype=object),
            TIME_COLUMN: pd.Series(acquired).dt.date,
            TARGET: churn,
        }
    )
    # Real data has gaps: unrated customers and untracked campaigns.
    null_rate = float(shift.get("null_rate", 0.0))  # type: ignore[arg-type]
    frame.loc[rng.random(rows) < max(0.05, null_rate), "star_rating"] = np.nan
    frame.loc[rng.random(rows) < max(0.03, null_rate), "campaign_id"] = None
    return frame


MULTICLASS_TARGET = "plan"
PLANS = ("basic", "plus", "premium")
REGRESSION_TARGET = "lifetime_value"
ID_COLUMN = "customer_id"


def generate_task_frame(task: str, rows: int, seed: int = 0, *, with_id: bool = False, **shift: float) -> pd.DataFrame:
    """The churn features with a target for ``task``: ``binary`` (``churn`` 0/1), ``multiclass`` (``plan``:
    basic/plus/premium, text labels drawn from a known softmax of spend, engagement and tenure) or
    ``regression`` (``lifetime_value``, a known linear function of the features plus noise).

    ``with_id`` adds a unique text ``customer_id`` (an identifier, never a feature); ``shift`` as in
    :func:`generate_churn`, with ``concept`` scaling the signal of the new targets too.
    """
    # shift holds only drift knobs (generate_churn refuses any other name), never start/days; mypy cannot
    # see that from dict[str, float], so it would match the dict against every keyword parameter.
    frame = generate_churn(rows, seed=seed, **shift)  # type: ignore[arg-type]
    rng = np.random.default_rng(seed + 7919)
    concept = float(shift.get("concept", 1.0))
    spend = frame["monthly_spend"].to_numpy(dtype=np.float64)
    engagement = frame["engagement_score"].to_numpy(dtype=np.float64)
    tenure = frame["tenure_months"].to_numpy(dtype=np.float64)
    if task == "multiclass":
        logits = concept * np.column_stack(
            [
                -0.08 * (spend - 60),
                0.02 * (engagement - 40),
                0.08 * (spend - 60) + 0.03 * (tenure - 20),
            ]
        )
        probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        draws = (rng.random(rows)[:, None] > np.cumsum(probs, axis=1)).sum(axis=1)
        frame[MULTICLASS_TARGET] = pd.Series(np.array(PLANS, dtype=object)[np.minimum(draws, 2)], dtype=object)
        frame = frame.drop(columns=[TARGET])
    elif task == "regression":
        signal = 12.0 * tenure + 4.0 * spend + 1.5 * engagement - 20.0 * frame["support_tickets_90d"].to_numpy()
        value = 100.0 + concept * signal + rng.normal(0, 60, rows)
        frame[REGRESSION_TARGET] = np.round(value, 2)
        frame = frame.drop(columns=[TARGET])
    elif task != "binary":
        raise ValueError(f"task {task!r} is not known; allowed: binary, multiclass, regression")
    if with_id:
        frame.insert(0, ID_COLUMN, pd.Series([f"C{seed:03d}-{i:07d}" for i in range(rows)], dtype=object))
    return frame
