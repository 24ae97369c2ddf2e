"""The drift analysis: schema violations, per-feature tests, adversarial classifier, live metrics.

Pure computation on what the readers return; the job (``monitor.drift_job``) does the I/O,
the alerting and the retrain decision. Kept apart so the benchmark and the sensitivity study run
exactly the code the scheduled job runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from jobs_common.capture import Observations
from jobs_common.columns import feature_columns
from jobs_common.reference import reference_frame
from model_package.archive import ModelPackage
from model_package.manifest import FeatureSpec, Manifest
from model_package.validation import SchemaValidator
from monitor.adversarial import AdversarialClassifier, AdversarialResult
from monitor.metrics import ConceptResult, concept_drift
from monitor.privacy import CapturePrivacyView
from monitor.thresholds import DriftThresholds
from monitor.univariate import FeatureDrift, categorical_drift, missing_feature, numeric_drift


def prediction_drift(
    manifest: Manifest, score: np.ndarray | None, matrix: np.ndarray | None, t: DriftThresholds
) -> FeatureDrift | None:
    """What the model answers, against its holdout answers (``manifest.prediction_baseline``), per task.

    binary: P(positive) (numeric tests); multiclass: the predicted-label distribution (categorical tests on
    the baseline named ``label``); regression: the value distribution (numeric tests on ``value``).
    """
    baseline = manifest.prediction_baseline
    if baseline is None or score is None:
        return None
    if manifest.task.type == "multiclass":
        if matrix is None:
            return None
        labels = manifest.task.labels
        known = ~np.isnan(matrix).any(axis=1)
        predicted = np.full(len(matrix), None, dtype=object)
        predicted[known] = [str(labels[i]) for i in np.argmax(matrix[known], axis=1)]
        spec = FeatureSpec(name="label", dtype="string", nullable=True)
        return categorical_drift(spec, baseline, predicted, t)
    spec = FeatureSpec(name=baseline.name, dtype="float", nullable=True)
    return numeric_drift(spec, baseline, score, t)


@dataclass
class DriftReport:
    """Everything the JSON and HTML reports show; ``to_dict`` is the ``report.json`` shape."""

    model: dict[str, Any]
    rows: int
    features: list[FeatureDrift]
    violations: list[dict[str, Any]]
    adversarial: AdversarialResult | None
    concept: ConceptResult
    prediction: FeatureDrift | None
    thresholds: DriftThresholds
    timeline: list[dict[str, Any]] = field(default_factory=list)
    window: dict[str, str | None] = field(default_factory=dict)
    generated_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    locations: dict[str, str] = field(default_factory=dict)
    privacy: list[str] = field(default_factory=list)  # capture privacy hook: one line per feature it changes

    @property
    def drifted_features(self) -> list[str]:
        return [f.name for f in self.features if f.drift]

    @property
    def drift_share(self) -> float:
        return len(self.drifted_features) / len(self.features) if self.features else 0.0

    @property
    def dataset_drift(self) -> bool:
        return bool(self.drifted_features) or bool(self.adversarial and self.adversarial.drift)

    @property
    def concept_drift(self) -> bool:
        return self.concept.drift

    def retrain_reasons(self) -> list[str]:
        """Why a retrain is warranted under the configured retrain thresholds (empty = not warranted)."""
        t, reasons = self.thresholds, []
        if self.features and self.drift_share >= t.retrain_drifted_share:
            reasons.append(f"{self.drift_share:.0%} of features drifted (>= {t.retrain_drifted_share:.0%})")
        auc = self.adversarial.auc if self.adversarial else None
        if auc is not None and auc >= t.retrain_adversarial_auc:
            reasons.append(f"adversarial AUC {auc:.3f} (>= {t.retrain_adversarial_auc})")
        if self.concept.drift:
            reasons.append("concept drift: " + "; ".join(self.concept.reasons))
        return reasons

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "generated_at": self.generated_at,
            "window": self.window,
            "rows": self.rows,
            "dataset_drift": self.dataset_drift,
            "concept_drift": self.concept_drift,
            "drifted_features": self.drifted_features,
            "drift_share": self.drift_share,
            "retrain": {"warranted": bool(self.retrain_reasons()), "reasons": self.retrain_reasons()},
            "features": [f.to_dict() for f in self.features],
            "violations": self.violations,
            "adversarial": self.adversarial.to_dict() if self.adversarial else None,
            "concept": self.concept.to_dict(),
            "prediction": self.prediction.to_dict() if self.prediction else None,
            "timeline": self.timeline,
            "thresholds": self.thresholds.model_dump(),
            "locations": self.locations,
            "privacy": self.privacy,
        }


@dataclass
class SchemaCheck:
    """Coerced columns, rows without errors, and one violation entry per (feature, kind) with exact counts."""

    columns: dict[str, np.ndarray]
    row_ok: np.ndarray
    violations: list[dict[str, Any]]


def check_schema(manifest: Manifest, raw: dict[str, np.ndarray], n_rows: int, extra: list[str]) -> SchemaCheck:
    """Validate one feature at a time, so each count is exact for its feature (the validator counts per
    kind over all features and keeps only a few examples; a report needs "how many, in which column")."""
    violations: list[dict[str, Any]] = []
    columns: dict[str, np.ndarray] = {}
    row_ok = np.ones(n_rows, dtype=bool)
    for spec in manifest.features:
        result = SchemaValidator([spec], out_of_range="warn", max_reported=1).validate_columns(
            {spec.name: raw[spec.name]} if spec.name in raw else {}, n_rows=n_rows
        )
        columns[spec.name] = result.columns[spec.name]
        row_ok &= result.row_ok
        examples = {v.kind: v for v in [*result.errors, *result.warnings]}
        for kind, count in sorted(result.counts().items()):
            example = examples.get(kind)
            violations.append(
                {
                    "feature": spec.name,
                    "kind": kind,
                    "count": count,
                    "example": example.value if example else None,
                    "expected": example.expected if example else "",
                }
            )
    violations += [
        {
            "feature": name,
            "kind": "extra_feature",
            "count": 1,
            "example": None,
            "expected": "only the manifest's features",
        }
        for name in extra
    ]
    return SchemaCheck(columns, row_ok, sorted(violations, key=lambda v: (v["kind"], v["feature"])))


def timeline(observations: Observations, freq: str = "h") -> list[dict[str, Any]]:
    """Volume and mean prediction per period, for the report's over-time plot."""
    if observations.time is None or observations.time.isna().all():
        return []
    frame = pd.DataFrame(
        {
            "time": observations.time.to_numpy(),
            "probability": observations.probability if observations.probability is not None else np.nan,
        }
    ).dropna(subset=["time"])
    grouped = frame.set_index("time").resample(freq)["probability"].agg(["count", "mean"])
    return [
        {"period": ts.isoformat(), "count": int(row["count"]), "mean_probability": _float(row["mean"])}
        for ts, row in grouped.iterrows()
        if row["count"] > 0
    ]


def _float(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


class DriftAnalysis:
    """Runs every check of one report. ``predictor`` scores rows that arrive without a probability."""

    def __init__(
        self,
        package: ModelPackage,
        thresholds: DriftThresholds | None = None,
        predictor: Any | None = None,
        adversarial: AdversarialClassifier | None = None,
        run_adversarial: bool = True,
        *,
        privacy: CapturePrivacyView | None = None,
    ) -> None:
        self.package = package
        self.manifest: Manifest = package.manifest
        self.thresholds = thresholds or DriftThresholds()
        self.predictor = predictor
        self.privacy = privacy
        if privacy is not None:  # capture privacy hook (monitor/privacy.py): judge what capture can show
            self.manifest = privacy.manifest(self.manifest)
            self.predictor = None  # the model cannot score hashed rows; the captured probability is used
        self.adversarial = adversarial or AdversarialClassifier(self.thresholds.adversarial_auc)
        self.run_adversarial = run_adversarial

    def univariate(self, columns: dict[str, np.ndarray]) -> list[FeatureDrift]:
        results = []
        for spec in self.manifest.features:
            baseline = self.manifest.baseline_for(spec.name)
            if spec.name not in columns:
                results.append(missing_feature(spec))
            elif baseline is None:
                kind = "numeric" if spec.is_numeric else "categorical"
                results.append(FeatureDrift(spec.name, kind, "none", False, reasons=["no baseline in the manifest"]))
            elif spec.is_numeric:
                results.append(numeric_drift(spec, baseline, columns[spec.name], self.thresholds))
            else:
                results.append(categorical_drift(spec, baseline, columns[spec.name], self.thresholds))
        return results

    def run(self, observations: Observations, window: dict[str, str | None] | None = None) -> DriftReport:
        manifest, t = self.manifest, self.thresholds
        if self.privacy is not None:  # capture privacy hook: hashed-numeric columns are not compared
            observations = self.privacy.observations(observations)
        raw = feature_columns(observations.inputs, manifest.features)
        # Id, excluded and time columns are the package's own roles (manifest.columns), not unexpected extras.
        roles = {*manifest.columns.id_columns, *manifest.columns.excluded, manifest.columns.time_column}
        extra = sorted(set(observations.inputs.columns) - set(manifest.feature_names) - roles)
        validated = check_schema(manifest, raw, observations.rows, extra)
        violations = validated.violations
        present = {name: validated.columns[name] for name in raw}
        features = self.univariate(present)

        probability, matrix = observations.probability, observations.class_probabilities
        if probability is None and self.predictor is not None and len(present) == len(manifest.features):
            probability = np.full(observations.rows, np.nan)
            ok = validated.row_ok
            if manifest.task.type == "multiclass":
                matrix = np.full((observations.rows, len(manifest.task.labels)), np.nan)
            if ok.any():
                scored = self.predictor.predict({n: c[ok] for n, c in validated.columns.items()})
                probability[ok] = scored.score
                if matrix is not None and scored.probabilities is not None:
                    matrix[ok] = scored.probabilities
            observations.probability, observations.class_probabilities = probability, matrix
        prediction = prediction_drift(manifest, probability, matrix, t)

        adversarial = None
        if self.run_adversarial:
            reference = reference_frame(self.package)
            if self.privacy is not None:  # capture privacy hook: the reference as capture would hold it
                reference = self.privacy.frame(reference, already_hashed=False)
            adversarial = self.adversarial.run(reference, observations.inputs, manifest)
        concept = concept_drift(
            observations.labels, probability, manifest.metrics, t, task=manifest.task, class_probabilities=matrix
        )
        model = {"name": manifest.name, "version": manifest.version, "sha256": self.package.sha256}
        return DriftReport(
            model=model,
            rows=observations.rows,
            features=features,
            violations=violations,
            adversarial=adversarial,
            concept=concept,
            prediction=prediction,
            thresholds=t,
            timeline=timeline(observations),
            window=window or {},
            privacy=self.privacy.notes() if self.privacy is not None else [],
        )
