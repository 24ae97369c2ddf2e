"""What univariate tests cannot see: a changed correlation (adversarial classifier) and a changed
relation between features and target (live metrics from labels joined by uid)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from jobs_common.capture import attach_labels, observations_from_frame, observations_from_records, read_labels
from monitor.drift import DriftAnalysis
from tests.monitor.conftest import capture_records, fresh


def couple(frame: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    """Reorder ``b`` so it rises with ``a``: marginals exactly as before, correlation ~1 instead of ~0."""
    out = frame.copy()
    order = np.argsort(out[a].to_numpy(), kind="stable")
    values = np.sort(out[b].to_numpy())
    coupled = np.empty_like(values)
    coupled[order] = values
    out[b] = coupled
    return out


def test_changed_correlation_is_caught_only_by_the_adversarial_classifier(trained) -> None:
    frame = fresh(4000, seed=21)
    before = np.corrcoef(frame["monthly_spend"], frame["engagement_score"])[0, 1]
    shifted = couple(frame, "monthly_spend", "engagement_score")
    after = np.corrcoef(shifted["monthly_spend"], shifted["engagement_score"])[0, 1]
    assert abs(before) < 0.1 and after > 0.9
    report = DriftAnalysis(trained.package).run(observations_from_frame(shifted, trained.manifest))
    assert report.drifted_features == []  # no univariate test sees it: the marginals did not change
    assert report.adversarial is not None and report.adversarial.drift
    assert report.adversarial.auc >= 0.6
    assert report.dataset_drift
    separating = {t["feature"] for t in report.adversarial.top_features[:2]}
    assert separating == {"monthly_spend", "engagement_score"}


def _labels_file(tmp_path, records, labels) -> str:
    path = tmp_path / "labels.csv"
    pd.DataFrame({"uid": [r["uid"] for r in records], "churn": labels}).to_csv(path, index=False)
    return str(path)


def test_labels_following_a_changed_relationship_are_concept_drift(trained, tmp_path) -> None:
    frame = fresh(3000, seed=22)
    records = capture_records(frame, trained.package)
    analysis = DriftAnalysis(trained.package, run_adversarial=False)

    same = observations_from_records(records, "churn")
    attach_labels(same, read_labels(_labels_file(tmp_path, records, frame["churn"]), "churn"))
    unchanged = analysis.run(same)
    assert unchanged.concept.evaluated and not unchanged.concept_drift
    assert unchanged.dataset_drift is False

    # Same customers, same inputs: only the outcome now follows a different rule (high spenders
    # leave, nothing else matters), which no input-distribution test can see.
    changed = (frame["monthly_spend"] > frame["monthly_spend"].median()).astype(int)
    moved = observations_from_records(records, "churn")
    attach_labels(moved, read_labels(_labels_file(tmp_path, records, changed), "churn"))
    report = analysis.run(moved)
    assert report.dataset_drift is False
    assert report.concept_drift
    assert report.concept.live["roc_auc"] < trained.manifest.metrics.roc_auc - 0.05


def test_labels_for_only_a_few_predictions_are_not_judged(trained, tmp_path) -> None:
    frame = fresh(1000, seed=23)
    records = capture_records(frame, trained.package)
    observations = observations_from_records(records, "churn")
    attach_labels(observations, read_labels(_labels_file(tmp_path, records[:50], frame["churn"][:50]), "churn"))
    report = DriftAnalysis(trained.package, run_adversarial=False).run(observations)
    assert not report.concept.evaluated and not report.concept_drift
    assert "only 50 labelled" in report.concept.note
