"""The three comparisons of the Evaluate stage, each a list of :class:`Check` plus the numbers behind it.

(a) ``labelled``: candidate and champion on the latest labelled rows, judged by the retrain gate itself
(:func:`jobs_common.gate.decide`, direction-aware); (b) ``replay``: both models in-process on a sample of
recent prod capture (agreement, score PSI and KS, per-segment mean score); (c) ``smoke``: the live
stage service answers like the in-process candidate, reports the candidate's version, and is fast enough.
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from jobs_common.columns import feature_columns
from jobs_common.errors import DataError
from jobs_common.gate import GatePolicy, decide
from jobs_common.metrics import holdout_metrics, psi_of_fractions
from model_package.archive import ModelPackage
from model_package.errors import PackageError
from model_package.runtime import Predictor
from model_package.validation import SchemaValidator

Status = Literal["pass", "fail", "skipped"]
# Equal-width score bins for the PSI of two score distributions (scores live in [0, 1]).
SCORE_BINS = np.linspace(0.0, 1.0, 11)


@dataclass(frozen=True)
class Check:
    """One line of the verdict: what was measured, against which bound, and why it passed or failed."""

    name: str
    status: Status
    reason: str
    value: float | None = None
    threshold: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Section:
    checks: list[Check] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


def score(predictor: Predictor, package: ModelPackage, frame: pd.DataFrame) -> np.ndarray:
    """P(target) for every row of ``frame`` through the serving runtime, from the package's own features."""
    return np.asarray(predictor.predict_proba(feature_columns(frame, package.manifest.features)), dtype=np.float64)


def labelled_comparison(
    policy: GatePolicy,
    candidate: tuple[ModelPackage, Predictor],
    champion: tuple[ModelPackage, Predictor] | None,
    frame: pd.DataFrame | None,
    source: str,
) -> Section:
    """Both models on the same latest labelled rows; the retrain gate decides (no second copy of its rule)."""
    section = Section(details={"source": source})
    if frame is None or frame.empty:
        section.checks.append(Check("labelled.gate", "skipped", f"no labelled data at {source}"))
        return section
    package, predictor = candidate
    y = frame[package.manifest.target].to_numpy()
    try:
        candidate_metrics = holdout_metrics(y, score(predictor, package, frame))
        champion_metrics = holdout_metrics(y, score(champion[1], champion[0], frame)) if champion else None
    except DataError as exc:  # e.g. one class only: no AUC to compare; say so instead of crashing
        section.checks.append(Check("labelled.gate", "skipped", f"{len(frame)} labelled rows at {source}: {exc}"))
        return section
    except PackageError as exc:
        section.checks.append(Check("labelled.score", "fail", f"a model cannot score the labelled rows: {exc}"))
        return section
    decision = decide(policy, candidate_metrics, champion_metrics)
    section.details.update(
        {
            "rows": len(frame),
            "candidate": candidate_metrics.model_dump(),
            "champion": champion_metrics.model_dump() if champion_metrics else None,
        }
    )
    section.checks.append(
        Check(
            "labelled.gate", "pass" if decision.accepted else "fail", decision.reason, decision.candidate,
            decision.champion,
        )
    )  # fmt: skip
    return section


def _psi(a: np.ndarray, b: np.ndarray) -> float:
    """PSI of the candidate's scores (``b``) against the champion's (``a``), on fixed score bins."""
    expected = np.histogram(a, SCORE_BINS)[0] / max(len(a), 1)
    actual = np.histogram(b, SCORE_BINS)[0] / max(len(b), 1)
    return psi_of_fractions(expected, actual)


def _segments(frame: pd.DataFrame, package: ModelPackage, min_rows: int) -> dict[str, np.ndarray]:
    """``feature=value`` -> row mask, for every categorical feature value with at least ``min_rows`` rows."""
    out: dict[str, np.ndarray] = {}
    for spec in package.manifest.features:
        if spec.is_numeric or spec.name not in frame.columns:
            continue
        values = frame[spec.name].astype(object).where(frame[spec.name].notna(), None).to_numpy()
        for value in sorted({v for v in values if v is not None}, key=str):
            mask = values == value
            if mask.sum() >= min_rows:
                out[f"{spec.name}={value}"] = mask
    return out


def replay_comparison(
    candidate: tuple[ModelPackage, Predictor],
    champion: tuple[ModelPackage, Predictor] | None,
    inputs: pd.DataFrame | None,
    *,
    source: str,
    threshold: float,
    min_agreement: float,
    max_psi: float,
    max_segment_shift: float,
    min_segment_rows: int,
) -> Section:
    """Captured prod requests scored in-process by both models: how differently would prod have answered?"""
    from scipy.stats import ks_2samp

    section = Section(details={"source": source})
    if inputs is None or inputs.empty:
        section.checks.append(Check("replay", "skipped", f"no prod capture at {source} in the window"))
        return section
    if champion is None:
        section.checks.append(Check("replay", "skipped", "no champion yet: nothing to compare the replay with"))
        return section
    try:
        new = score(candidate[1], candidate[0], inputs)
    except PackageError as exc:
        section.checks.append(Check("replay.score", "fail", f"the candidate cannot score captured payloads: {exc}"))
        return section
    old = score(champion[1], champion[0], inputs)
    agreement = float(np.mean((new >= threshold) == (old >= threshold)))
    psi = _psi(old, new)
    ks = ks_2samp(old, new)
    segments: list[dict[str, Any]] = []
    for name, mask in _segments(inputs, candidate[0], min_segment_rows).items():
        segments.append(
            {
                "segment": name,
                "rows": int(mask.sum()),
                "champion_mean": float(old[mask].mean()),
                "candidate_mean": float(new[mask].mean()),
                "shift": float(new[mask].mean() - old[mask].mean()),
                "agreement": float(np.mean((new[mask] >= threshold) == (old[mask] >= threshold))),
            }
        )
    segments.sort(key=lambda s: -abs(s["shift"]))
    section.details.update(
        {
            "rows": len(inputs),
            "agreement": agreement,
            "score_psi": psi,
            "score_ks": float(ks.statistic),
            "score_ks_p_value": float(ks.pvalue),
            "champion_mean": float(old.mean()),
            "candidate_mean": float(new.mean()),
            "segments": segments,
        }
    )
    section.checks.append(
        Check("replay.agreement", "pass" if agreement >= min_agreement else "fail",
              f"candidate and champion give the same decision (threshold {threshold}) on {agreement:.1%} of "
              f"{len(inputs)} captured requests; at least {min_agreement:.1%} required", agreement, min_agreement)
    )  # fmt: skip
    section.checks.append(
        Check("replay.score_psi", "pass" if psi <= max_psi else "fail",
              f"PSI of the candidate's scores against the champion's is {psi:.4f}; at most {max_psi} allowed "
              f"(KS {ks.statistic:.4f})", psi, max_psi)
    )  # fmt: skip
    worst = segments[0] if segments else None
    if worst is None:
        section.checks.append(
            Check("replay.segments", "skipped", f"no categorical segment has {min_segment_rows} or more rows")
        )
    else:
        shift = abs(worst["shift"])
        section.checks.append(
            Check("replay.segments", "pass" if shift <= max_segment_shift else "fail",
                  f"largest mean-score shift is {worst['shift']:+.4f} in {worst['segment']} ({worst['rows']} rows); "
                  f"at most {max_segment_shift} allowed", shift, max_segment_shift)
        )  # fmt: skip
    return section


def json_records(frame: pd.DataFrame, package: ModelPackage) -> list[dict[str, Any]]:
    """Rows as the app's JSON request records: the manifest's features only, NaN as null."""
    out = []
    for row in frame.to_dict(orient="records"):
        record: dict[str, Any] = {}
        for spec in package.manifest.features:
            value = row.get(spec.name)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                record[spec.name] = None
            elif isinstance(value, np.generic):
                record[spec.name] = value.item()
            else:
                record[spec.name] = value
        out.append(record)
    return out


def _post(url: str, payload: Any, timeout: float) -> tuple[int, Any]:
    # S310: the URL's scheme is checked (http/https only) by EvaluationSettings.validated.
    request = urllib.request.Request(  # noqa: S310
        f"{url.rstrip('/')}/predict", data=json.dumps(payload).encode(), method="POST",
        headers={"content-type": "application/json", "accept": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (scheme checked)
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")[:500]


def smoke_test(
    url: str,
    candidate: tuple[ModelPackage, Predictor],
    inputs: pd.DataFrame,
    *,
    requests: int,
    max_difference: float,
    max_p99_ms: float,
    timeout: float = 10.0,
) -> Section:
    """The live stage service: health, the candidate's version, the same answers as in-process, latency."""
    package, predictor = candidate
    manifest = package.manifest
    section = Section(details={"url": url})
    sample = inputs.head(max(requests, 1)).reset_index(drop=True)
    records = json_records(sample, package)
    # Only rows the candidate's schema accepts: the smoke compares answers, the schema has its own tests.
    valid = np.asarray(SchemaValidator(manifest.features).validate_records(records).row_ok, dtype=bool)
    section.details["rows_rejected_by_schema"] = int((~valid).sum())
    records = [r for r, ok in zip(records, valid, strict=True) if ok]
    sample = sample[valid].reset_index(drop=True)
    if not records:
        section.checks.append(Check("smoke.inputs", "fail", "no sampled row passes the candidate's schema"))
        return section
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=timeout) as response:  # noqa: S310
            health = response.status
    except OSError as exc:
        section.checks.append(Check("smoke.health", "fail", f"{url}/health did not answer: {exc}"))
        return section
    status, body = _post(url, records, timeout)
    if status != 200 or not isinstance(body, Mapping):
        section.checks.append(Check("smoke.predict", "fail", f"POST {url}/predict answered {status}: {body}"))
        return section
    served = (body.get("model_name"), body.get("model_version"))
    section.details.update({"health_status": health, "served_model": list(served), "rows": len(records)})
    expected = (manifest.name, manifest.version)
    section.checks.append(
        Check("smoke.model_version", "pass" if served == expected else "fail",
              f"stage serves {served[0]} v{served[1]}; the candidate is {expected[0]} v{expected[1]}")
    )  # fmt: skip
    live = np.array([p.get("probability", np.nan) for p in body.get("predictions", [])], dtype=np.float64)
    local = score(predictor, package, sample)
    if len(live) != len(local):
        section.checks.append(
            Check("smoke.answers", "fail", f"stage returned {len(live)} predictions for {len(local)} records")
        )
    else:
        difference = float(np.nanmax(np.abs(live - local))) if len(live) else 0.0
        if np.isnan(live).any():
            difference = math.inf
        section.details["max_difference"] = difference
        section.checks.append(
            Check("smoke.answers", "pass" if difference <= max_difference else "fail",
                  f"largest difference between the stage's and the in-process candidate's probability on "
                  f"{len(local)} records is {difference:.2e}; at most {max_difference:.0e} allowed",
                  difference, max_difference)
        )  # fmt: skip
    latencies = _latencies(url, records, requests, timeout)
    p50, p99 = float(np.percentile(latencies, 50)), float(np.percentile(latencies, 99))
    section.details.update({"latency_ms": {"requests": len(latencies), "p50": p50, "p99": p99}})
    section.checks.append(
        Check("smoke.latency", "pass" if p99 <= max_p99_ms else "fail",
              f"p99 of {len(latencies)} single-record requests is {p99:.1f} ms (p50 {p50:.1f}); at most "
              f"{max_p99_ms:.0f} ms allowed", p99, max_p99_ms)
    )  # fmt: skip
    return section


def _latencies(url: str, records: Sequence[dict[str, Any]], requests: int, timeout: float) -> list[float]:
    """Wall time of ``requests`` one-record requests, cycling through the records; errors count as failures."""
    out = []
    for i in range(requests):
        started = time.perf_counter()
        status, _ = _post(url, records[i % len(records)], timeout)
        elapsed = (time.perf_counter() - started) * 1000
        out.append(elapsed if status == 200 else math.inf)
    return out
