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

from jobs_common.capture import label_values
from jobs_common.columns import feature_columns
from model_package.archive import ModelPackage
from model_package.manifest import TASK_METRICS
from model_package.validation import SchemaValidator
from monitor.drift import DriftAnalysis
from monitor.metrics import quality
from monitor.thresholds import DriftThresholds

LOSS_METRIC = {"binary": "log_loss", "multiclass": "log_loss", "regression": "rmse"}
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

    def run(self, frame: pd.DataFrame, labels: np.ndarray | None = None) -> list[dict[str, Any]]:
        """``labels``: class indexes / values already read (``Observations.labels``); else the target column
        of ``frame`` in the model's own labels."""
        manifest = self.package.manifest
        if labels is None:
            if manifest.target not in frame.columns:
                raise ValueError(f"sensitivity needs labelled data: column {manifest.target!r} is missing")
            labels = label_values(frame[manifest.target].to_numpy(dtype=object), manifest.task, manifest.target)
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
        reference_loss = rows[0]["loss"]
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
                    harm[spec.name] = row["loss"]
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
        task = self.package.manifest.task
        predictions = self.predictor.predict(columns)
        drift = analysis.univariate(columns)
        flagged = [d.name for d in drift if d.drift]
        row: dict[str, Any] = {
            "scenario": scenario,
            "features": features,
            "scale": scale,
            "share_of_rows": share,
            "rows": len(y),
        }
        if task.type == "binary":
            metrics: dict[str, Any] = quality(y, predictions.positive_probability)
        else:
            from jobs_common.metrics import task_metrics

            computed = task_metrics(task, y.astype(np.int64) if task.is_classification else y, predictions)
            metrics = {m: computed.value(m) for m in TASK_METRICS[task.type]}
        # The loss the table ranks harm by: log loss for classifiers, RMSE for regression (lower is better).
        name = LOSS_METRIC[task.type]
        loss = float(metrics[name] or 0.0)
        row[name] = loss
        row[f"{name}_change_pct"] = 0.0 if reference_loss is None else 100 * (loss / reference_loss - 1)
        row |= {m: metrics[m] for m in TASK_METRICS[task.type] if m != name}
        row |= {"loss": loss, "drift_flagged": bool(flagged), "flagged_features": ",".join(flagged)}
        return row


def format_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table: the task's loss, its change, the other task metrics, and whether drift was flagged."""
    loss = "rmse" if "rmse" in rows[0] else "log_loss"
    others = [k for k in ("roc_auc", "lift", "macro_f1", "mae", "r2") if k in rows[0]]
    width = max(len(r["scenario"]) for r in rows)
    head = f"{'scenario':<{width}}  {loss:>9}  change%  " + "  ".join(f"{k:>8}" for k in others) + "  drift"
    lines = [head]
    for r in rows:
        values = "  ".join(f"{(r[k] if r[k] is not None else float('nan')):8.4f}" for k in others)
        lines.append(
            f"{r['scenario']:<{width}}  {r[loss]:9.4f}  {r[f'{loss}_change_pct']:+7.2f}  {values}  "
            f"{'yes' if r['drift_flagged'] else 'no'}"
        )
    return "\n".join(lines)
