"""The scheduled drift job: read capture, analyse, store reports, alert, maybe submit a retrain.

Alerts go only through ``alerting.AlertPublisher`` (one topic, de-duplicated within the window). A
retrain submission is gated by the same de-duplication store, so a drifted model triggers one retrain
per window, not one per run.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from alerting import Alert, AlertPublisher, Severity
from jobs_common.capture import Observations
from model_package.errors import InputDataError, InsufficientDataError
from model_package.manifest import Manifest
from monitor.drift import DriftAnalysis, DriftReport
from monitor.render import render_drift_report
from monitor.sinks import ReportSink
from monitor.thresholds import MIN_ROWS_ENV

LOG = logging.getLogger(__name__)
SOURCE = "monitor.drift"


def check_window(observations: Observations, manifest: Manifest, min_rows: int, source: str) -> None:
    """Refuse what cannot be judged, before any report or alert exists.

    A file that parses into one column (wrong delimiter) or carries none of the model's features would
    otherwise report every feature missing -> "100% drifted, retrain warranted"; a window below
    ``min_rows`` would report "no drift" from no evidence.
    """
    columns = [str(c) for c in observations.inputs.columns]
    features = list(manifest.feature_names)
    if len(columns) == 1 and len(features) > 1:
        raise InputDataError(
            f"{source}: parses into one column {columns[0][:120]!r}; the model needs {len(features)} features. "
            "A CSV must be comma-separated with a header naming the features (wrong delimiter?)"
        )
    if columns and not set(columns) & set(features):
        raise InputDataError(f"{source}: none of the model's features {features} is a column; found {columns[:10]}")
    if observations.rows < min_rows:
        raise InsufficientDataError(
            f"{source}: {observations.rows} row(s); drift needs at least {min_rows} (thresholds min_rows, "
            f"{MIN_ROWS_ENV}) to conclude anything, so no report was written. Widen the window or wait for traffic"
        )


@dataclass
class RetrainTrigger:
    """Submits the retrain Batch job; ``None`` in place of this means retrain on drift is disabled."""

    batch_client: Any
    job_queue: str
    job_definition: str

    def submit(self, report: DriftReport, reasons: list[str]) -> str:
        name = f"retrain-{report.model['name']}-drift-{datetime.now(UTC):%Y%m%dT%H%M%S}"
        response = self.batch_client.submit_job(
            jobName=name,
            jobQueue=self.job_queue,
            jobDefinition=self.job_definition,
            containerOverrides={
                "environment": [
                    {"name": "RETRAIN_REASON", "value": "drift: " + "; ".join(reasons)[:900]},
                    {"name": "DRIFT_REPORT_URI", "value": report.locations.get("json", "")},
                ]
            },
        )
        return str(response["jobId"])


def drift_alerts(report: DriftReport) -> list[Alert]:
    model = report.model
    where = report.locations.get("html", "the drift report")
    alerts: list[Alert] = []
    if report.dataset_drift:
        auc = report.adversarial.auc if report.adversarial else None
        parts = [f"{len(report.drifted_features)} of {len(report.features)} features drifted"]
        if report.adversarial and report.adversarial.drift:
            parts.append(f"adversarial AUC {auc:.2f}")
        alerts.append(
            Alert(
                source=SOURCE,
                kind="data-drift",
                severity=Severity.CRITICAL if report.retrain_reasons() else Severity.WARNING,
                summary=f"{model['name']} v{model['version']}: " + ", ".join(parts),
                where_to_look=where,
                details={
                    "drifted_features": report.drifted_features,
                    "adversarial_auc": auc,
                    "rows": report.rows,
                    "report_json": report.locations.get("json"),
                },
                dedup_key=f"{model['name']}:v{model['version']}",
            )
        )
    if report.concept_drift:
        alerts.append(
            Alert(
                source=SOURCE,
                kind="concept-drift",
                severity=Severity.CRITICAL,
                summary=f"{model['name']} v{model['version']}: " + "; ".join(report.concept.reasons),
                where_to_look=where,
                details={"live": report.concept.live, "holdout": report.concept.holdout},
                dedup_key=f"{model['name']}:v{model['version']}",
            )
        )
    return alerts


class DriftJob:
    def __init__(
        self,
        analysis: DriftAnalysis,
        sink: ReportSink,
        publisher: AlertPublisher,
        retrain: RetrainTrigger | None = None,
    ) -> None:
        self.analysis, self.sink, self.publisher, self.retrain = analysis, sink, publisher, retrain

    def run(self, observations: Observations, window: dict[str, str | None] | None = None) -> DriftReport:
        source = ", ".join(f"{k}={v}" for k, v in (window or {}).items() if v) or "the drift window"
        # The same minimum below which a feature is not tested (thresholds.min_rows): one number.
        check_window(observations, self.analysis.manifest, self.analysis.thresholds.min_rows, source)
        report = self.analysis.run(observations, window)
        # HTML first so the JSON can name it; both before any alert, so alerts point at something real.
        report.locations["html"] = self.sink.write(
            "report.html", render_drift_report(report.to_dict()).encode(), "text/html; charset=utf-8"
        )
        data = report.to_dict()
        report.locations["json"] = self.sink.write(
            "report.json", (json.dumps(data, indent=2, default=str) + "\n").encode(), "application/json"
        )
        sent = [self.publisher.publish(alert) for alert in drift_alerts(report)]
        LOG.info(
            "drift report %s: dataset_drift=%s concept_drift=%s alerts sent=%s",
            report.locations["json"],
            report.dataset_drift,
            report.concept_drift,
            sent,
        )
        self._maybe_retrain(report)
        return report

    def _maybe_retrain(self, report: DriftReport) -> None:
        reasons = report.retrain_reasons()
        if not reasons:
            return
        model = report.model
        decision = Alert(
            source=SOURCE,
            kind="retrain-submitted" if self.retrain else "retrain-recommended",
            severity=Severity.WARNING,
            summary=f"{model['name']} v{model['version']}: retrain "
            + ("submitted" if self.retrain else "recommended (DRIFT_RETRAIN_ENABLED is false)"),
            where_to_look=report.locations.get("html", ""),
            details={"reasons": reasons},
            dedup_key=f"{model['name']}:v{model['version']}",
        )
        if self.retrain is not None:
            last = self.publisher.store.last_sent(decision.fingerprint)
            if last is not None and datetime.now(UTC) - last < self.publisher.window:
                LOG.info("retrain already submitted at %s for this model; not again within the window", last)
                return
            job_id = self.retrain.submit(report, reasons)
            decision = Alert(**{**decision.__dict__, "details": {"reasons": reasons, "batch_job_id": job_id}})
        self.publisher.publish(decision)
