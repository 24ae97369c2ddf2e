"""``python -m evaluation run``: read candidate, champion, labelled data and capture; compare; report; verdict.

The report (JSON for machines, HTML for the approver) is written to the model bucket under
``contracts.bucket_layout.EVALUATION_REPORTS_PREFIX`` whatever the verdict, so a rejected candidate's
report says why. ``exported_variables`` is what the buildspec exports to the pipeline (the Approval's
``CustomData`` and ``ExternalEntityLink``).
"""

from __future__ import annotations

import html
import json
import logging
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from contracts.bucket_layout import console_object_url, evaluation_report_keys
from evaluation.checks import Check, Section, labelled_comparison, replay_comparison, smoke_test
from evaluation.settings import EXIT_PASSED, EXIT_REJECTED, EvaluationSettings
from jobs_common import evaluation_contract as contract
from jobs_common.capture import S3CaptureReader, observations_from_records
from jobs_common.errors import DataError
from jobs_common.holdout import split_holdout
from jobs_common.readers import S3Reader
from jobs_common.reference import reference_frame
from jobs_common.store import ModelStore
from model_package.archive import ModelPackage, open_package
from model_package.runtime import Predictor, load_predictor

LOG = logging.getLogger(__name__)
# The manual approval's CustomData is at most 500 characters (CodePipeline User Guide, "Manual approval
# action" configuration); the summary must fit with the sentence infra/pipeline/pipeline.py puts around it.
SUMMARY_LIMIT = 300


@dataclass
class EvaluationResult:
    verdict: str
    summary: str
    report: dict[str, Any]
    json_key: str
    html_key: str
    exit_code: int
    checks: list[Check] = field(default_factory=list)


def exported_variables(result: EvaluationResult, settings: EvaluationSettings) -> dict[str, str]:
    """The Evaluate action's output variables (buildspec ``exported-variables``)."""
    return {
        contract.VERDICT: result.verdict,
        contract.SUMMARY: result.summary,
        contract.REPORT_URI: f"s3://{settings.model_bucket}/{result.html_key}",
        contract.REPORT_URL: console_object_url(settings.region, settings.model_bucket, result.html_key),
    }


def shell_exports(variables: dict[str, str]) -> str:
    return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in variables.items())


class EvaluationJob:
    def __init__(
        self,
        settings: EvaluationSettings,
        s3_client: Any,
        candidate_location: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings, self.s3, self.candidate_location, self.now = settings, s3_client, candidate_location, clock
        self.store = ModelStore(s3_client, settings.model_bucket, settings.model_key)

    def _load(self, package: ModelPackage) -> tuple[ModelPackage, Predictor]:
        return package, load_predictor(package, runtime="onnx")

    def _champion(self) -> tuple[ModelPackage, Predictor] | None:
        pointer = self.store.champion()
        if pointer is None:
            return None
        package = self.store.read_package(pointer.package_key)
        if package.sha256 != pointer.model_sha256:
            raise DataError(
                f"{package.source}: sha256 {package.sha256} differs from champion.json's {pointer.model_sha256}"
            )
        return self._load(package)

    def _labelled(self, candidate: ModelPackage) -> pd.DataFrame | None:
        """The latest labelled rows: the time-ordered holdout split retrain uses, of all labelled data."""
        try:
            frame = S3Reader(self.settings.labelled_uri, self.s3).read().frame
        except DataError as exc:
            LOG.info("no labelled data: %s", exc)
            return None
        target = candidate.manifest.target
        if target not in frame.columns:
            LOG.warning("labelled data at %s has no %r column", self.settings.labelled_uri, target)
            return None
        frame = frame[frame[target].notna()].reset_index(drop=True)
        if frame.empty:
            return None
        y = frame[target].to_numpy()
        split = split_holdout(frame, y, candidate.manifest.training_data.time_column)
        return frame.iloc[split.holdout].reset_index(drop=True)

    def _capture(self) -> pd.DataFrame | None:
        s = self.settings
        if not s.capture_bucket:
            return None
        since = self.now() - timedelta(hours=s.replay_window_hours)
        records = S3CaptureReader(self.s3, s.capture_bucket, s.capture_prefix).read(None, since)
        if not records:
            return None
        records = records[-s.replay_sample_size :]  # the most recent ones (keys and lines are in time order)
        return observations_from_records(records).inputs

    def run(self) -> EvaluationResult:
        s = self.settings
        started = self.now()
        candidate = self._load(open_package(self.candidate_location))
        manifest = candidate[0].manifest
        champion = self._champion()
        labelled = self._labelled(candidate[0])
        capture = self._capture()
        sections: dict[str, Section] = {
            "labelled": labelled_comparison(s.gate, candidate, champion, labelled, s.labelled_uri),
            "replay": replay_comparison(
                candidate, champion, capture,
                source=f"s3://{s.capture_bucket}/{s.capture_prefix}" if s.capture_bucket else "(no capture bucket)",
                threshold=s.decision_threshold, min_agreement=s.min_agreement, max_psi=s.max_score_psi,
                max_segment_shift=s.max_segment_shift, min_segment_rows=s.min_segment_rows,
            ),
        }  # fmt: skip
        smoke_inputs = capture if capture is not None else labelled
        if smoke_inputs is None or smoke_inputs.empty:
            smoke_inputs = reference_frame(candidate[0])
        sections["smoke"] = smoke_test(
            s.stage_url, candidate, smoke_inputs, requests=s.smoke_requests,
            max_difference=s.max_stage_difference, max_p99_ms=s.max_p99_latency_ms,
        )  # fmt: skip
        checks = [c for section in sections.values() for c in section.checks]
        failed = [c for c in checks if c.status == "fail"]
        verdict = "fail" if failed else "pass"
        json_key, html_key = evaluation_report_keys(s.pipeline_execution_id)
        summary = _summary(verdict, manifest.name, manifest.version, champion, checks)
        report = {
            "job": "evaluation",
            "evaluated_at": started.isoformat(),
            "git_sha": s.git_sha,
            "pipeline_execution_id": s.pipeline_execution_id,
            "candidate": {"name": manifest.name, "version": manifest.version, "sha256": candidate[0].sha256},
            "champion": None
            if champion is None
            else {"name": champion[0].manifest.name, "version": champion[0].manifest.version,
                  "sha256": champion[0].sha256},
            "verdict": verdict,
            "summary": summary,
            "reasons": [c.reason for c in failed],
            "checks": [c.to_dict() for c in checks],
            "thresholds": s.thresholds(),
            "sections": {name: section.details for name, section in sections.items()},
            "report_keys": {"json": json_key, "html": html_key},
        }  # fmt: skip
        body = json.dumps(_finite(report), indent=2, sort_keys=True)
        self.s3.put_object(Bucket=s.model_bucket, Key=json_key, Body=body.encode(), ContentType="application/json")
        self.s3.put_object(Bucket=s.model_bucket, Key=html_key, Body=render_html(report).encode(),
                           ContentType="text/html; charset=utf-8")  # fmt: skip
        LOG.info("evaluation %s: %s (s3://%s/%s)", verdict, summary, s.model_bucket, html_key)
        for check in failed:
            LOG.error("evaluation check %s failed: %s", check.name, check.reason)
        return EvaluationResult(verdict, summary, report, json_key, html_key,
                                EXIT_PASSED if verdict == "pass" else EXIT_REJECTED, checks)  # fmt: skip


def _summary(
    verdict: str, name: str, version: int, champion: tuple[ModelPackage, Predictor] | None, checks: list[Check]
) -> str:
    """One line for the approver: verdict, versions, counts, and the first failed reason."""
    against = f"champion v{champion[0].manifest.version}" if champion else "no champion"
    counts = {status: sum(c.status == status for c in checks) for status in ("pass", "fail", "skipped")}
    text = (
        f"{verdict.upper()}: {name} v{version} vs {against}; {counts['pass']} passed, {counts['fail']} failed, "
        f"{counts['skipped']} skipped"
    )
    gate = next((c for c in checks if c.name == "labelled.gate" and c.status != "skipped"), None)
    first_failed = next((c for c in checks if c.status == "fail"), None)
    detail = first_failed or gate
    if detail is not None:
        text += f". {detail.name}: {detail.reason}"
    return text if len(text) <= SUMMARY_LIMIT else text[: SUMMARY_LIMIT - 1] + "…"


def _finite(value: Any) -> Any:
    """JSON has no Infinity/NaN: they become null (the check's reason still says what happened)."""
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def render_html(report: dict[str, Any]) -> str:
    """A self-contained page: the verdict first, then each check, then the numbers behind them."""
    e = html.escape
    rows = "".join(
        f"<tr class='{e(c['status'])}'><td>{e(c['name'])}</td><td>{e(c['status'].upper())}</td>"
        f"<td>{e(str(c['value']))}</td><td>{e(str(c['threshold']))}</td><td>{e(c['reason'])}</td></tr>"
        for c in report["checks"]
    )
    details = e(json.dumps(_finite(report["sections"]), indent=2, sort_keys=True))
    candidate, champion = report["candidate"], report["champion"]
    against = f"champion v{champion['version']}" if champion else "no champion"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Evaluation {e(candidate["name"])} v{candidate["version"]}</title>
<style>body{{font-family:sans-serif;margin:2em}} .fail{{background:#fdd}} .pass{{background:#dfd}}
.skipped{{background:#eee}} td,th{{padding:4px 8px;border:1px solid #ccc;vertical-align:top}}</style></head>
<body>
<h1 class="{e(report["verdict"])}">Verdict: {e(report["verdict"].upper())}</h1>
<p>{e(candidate["name"])} v{candidate["version"]} (sha256 {e(candidate["sha256"])}) vs {e(against)};
git {e(report["git_sha"])}; pipeline execution {e(report["pipeline_execution_id"])}; {e(report["evaluated_at"])}</p>
<p>{e(report["summary"])}</p>
<table><tr><th>check</th><th>status</th><th>value</th><th>bound</th><th>reason</th></tr>{rows}</table>
<h2>Details</h2><pre>{details}</pre>
</body></html>
"""
