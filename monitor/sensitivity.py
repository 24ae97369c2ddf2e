"""How much does drift hurt? Score a labelled holdout as is and under simulated shifts.

Single-feature scenarios multiply one numeric feature by 1 %, 3 %, 5 %, 10 %; multivariate ones
multiply the few features whose 10 % shift hurt most, on a growing share of rows. Each row of the
table also says whether the drift tests flag that scenario, so thresholds and retrain cadence can be
set from the trade-off between harm and detection rather than by feel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from model_package.archive import ModelPackage
from model_package.validation import SchemaValidator
from monitor.columns import feature_columns
from monitor.drift import DriftAnalysis
from monitor.metrics import quality
from monitor.thresholds import DriftThresholds

SCALES = (0.01, 0.03, 0.05, 0.10)
SHARES = (0.1, 0.25, 0.5, 1.0)
MULTI_FEATURES = 3
MULTI_SCALE = 0.10


@dataclass
class SensitivityStudy:
    package: ModelPackage
    predictor: Any
    thresholds: DriftThresholds
    scales: tuple[float, ...] = SCALES
    shares: tuple[float, ...] = SHARES
    seed: int = 0

    def run(self, frame: pd.DataFrame) -> list[dict[str, Any]]:
        manifest = self.package.manifest
        if manifest.target not in frame.columns:
            raise ValueError(f"sensitivity needs labelled data: column {manifest.target!r} is missing")
        labels = pd.to_numeric(frame[manifest.target], errors="coerce").to_numpy(dtype=np.float64)
        validated = SchemaValidator(manifest.features).validate_columns(
            feature_columns(frame, manifest.features), n_rows=len(frame)
        )
        keep = validated.row_ok & ~np.isnan(labels)
        if keep.sum() < 50:
            raise ValueError(f"only {int(keep.sum())} valid labelled rows; sensitivity needs at least 50")
        base = {name: column[keep] for name, column in validated.columns.items()}
        y = labels[keep]
        analysis = DriftAnalysis(self.package, self.thresholds, run_adversarial=False)
        rows = [
            self._row(
                scenario="as is",
                features="-",
                scale=0.0,
                share=1.0,
                columns=base,
                y=y,
                reference_loss=None,
                analysis=analysis,
            )
        ]
        reference_loss = rows[0]["log_loss"]
        numeric = [spec for spec in manifest.features if spec.is_numeric]
        harm: dict[str, float] = {}
        for spec in numeric:
            for scale in self.scales:
                shifted = dict(base)
                shifted[spec.name] = self._scale(base[spec.name], scale, spec.dtype == "int")
                row = self._row(
                    scenario=f"{spec.name} x{1 + scale:.2f}",
                    features=spec.name,
                    scale=scale,
                    share=1.0,
                    columns=shifted,
                    y=y,
                    reference_loss=reference_loss,
                    analysis=analysis,
                )
                rows.append(row)
                if scale == max(self.scales):
                    harm[spec.name] = row["log_loss"]
        worst = sorted(harm, key=lambda n: -harm[n])[:MULTI_FEATURES]
        rng = np.random.default_rng(self.seed)
        for share in self.shares:
            chosen = rng.random(len(y)) < share
            shifted = dict(base)
            for name in worst:
                column = base[name].copy()
                column[chosen] = self._scale(base[name][chosen], MULTI_SCALE, manifest.feature(name).dtype == "int")
                shifted[name] = column
            label = f"{'+'.join(worst)} x{1 + MULTI_SCALE:.2f} on {share:.0%} of rows"
            rows.append(
                self._row(
                    scenario=label,
                    features="+".join(worst),
                    scale=MULTI_SCALE,
                    share=share,
                    columns=shifted,
                    y=y,
                    reference_loss=reference_loss,
                    analysis=analysis,
                )
            )
        return rows

    @staticmethod
    def _scale(values: np.ndarray, scale: float, integer: bool) -> np.ndarray:
        out = values * (1 + scale)
        return np.round(out) if integer else out

    def _row(
        self,
        *,
        scenario: str,
        features: str,
        scale: float,
        share: float,
        columns: dict[str, np.ndarray],
        y: np.ndarray,
        reference_loss: float | None,
        analysis: DriftAnalysis,
    ) -> dict[str, Any]:
        scores = self.predictor.predict_proba(columns)
        metrics = quality(y, scores)
        drift = analysis.univariate(columns)
        flagged = [d.name for d in drift if d.drift]
        loss = float(metrics["log_loss"] or 0.0)
        return {
            "scenario": scenario,
            "features": features,
            "scale": scale,
            "share_of_rows": share,
            "rows": len(y),
            "log_loss": loss,
            "log_loss_change_pct": 0.0 if reference_loss is None else 100 * (loss / reference_loss - 1),
            "lift": metrics["lift"],
            "roc_auc": metrics["roc_auc"],
            "drift_flagged": bool(flagged),
            "flagged_features": ",".join(flagged),
        }


def format_table(rows: list[dict[str, Any]]) -> str:
    headers = ["scenario", "log_loss", "log_loss_change_pct", "lift", "roc_auc", "drift_flagged"]
    width = max(len(r["scenario"]) for r in rows)
    lines = [f"{'scenario':<{width}}  log_loss  change%    lift  roc_auc  drift"]
    for r in rows:
        lines.append(
            f"{r['scenario']:<{width}}  {r['log_loss']:8.4f}  {r['log_loss_change_pct']:+7.2f}  {r['lift']:6.3f}  "
            f"{r['roc_auc'] or float('nan'):7.4f}  {'yes' if r['drift_flagged'] else 'no'}"
        )
    del headers
    return "\n".join(lines)
