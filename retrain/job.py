"""``python -m retrain run``: the AWS Batch retrain job.

read data -> validate -> (same inputs as the newest package? stop: "unchanged") -> refit the champion's
pipeline or train the default -> score candidate and champion on the same holdout -> gate -> upload or
not -> report JSON in the bucket + one notification. Bad data stops before training and uploads nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from alerting import Alert, AlertPublisher, S3DedupStore, Severity
from contracts.bucket_layout import versioned_model_key
from contracts.exit_codes import ExitCode
from jobs_common.errors import DataError, RetrainError
from jobs_common.gate import GatePolicy, decide
from jobs_common.metrics import task_metrics
from jobs_common.readers import DataReader, DataSet, LocalFileReader, S3Reader, SqlFiles, SqlReader
from jobs_common.store import ModelStore
from model_package.archive import ModelPackage, open_package
from model_package.errors import PackageError
from model_package.manifest import HIGHER_IS_BETTER, Metrics
from model_package.runtime import RuntimeName, load_predictor, load_skops_estimator
from retrain.datacheck import DataRequirements, check_training_frame
from retrain.settings import Settings
from retrain.training import DEFAULT_HYPERPARAMETERS, TrainingResult, fit_candidate

LOG = logging.getLogger(__name__)
SQL_DIR = Path(__file__).parent / "sql"  # SQL_NAME names <name>_{ddl,etl,test}.sql here (docs/retrain.md)
FINGERPRINT_METADATA = "fingerprint"  # S3 user metadata on models/<v>/model.zip (also manifest.lineage)


class Decision(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    UNCHANGED = "unchanged"
    BAD_DATA = "bad-data"
    FAILED = "failed"


_ALERTS = {
    Decision.ACCEPTED: ("candidate-accepted", Severity.INFO),
    Decision.REJECTED: ("candidate-rejected", Severity.WARNING),
    Decision.UNCHANGED: ("candidate-unchanged", Severity.INFO),
    Decision.BAD_DATA: ("bad-data", Severity.CRITICAL),
    Decision.FAILED: ("job-failed", Severity.CRITICAL),
}


@dataclass
class RunResult:
    decision: Decision
    reason: str
    exit_code: int
    report: dict[str, Any] = field(default_factory=dict)
    report_key: str | None = None


def make_reader(settings: Settings, s3_client: Any) -> DataReader:
    if settings.sql_name:
        return SqlReader(SqlFiles.load(settings.sql_name, SQL_DIR), settings.database_url or "")
    uri = settings.data_uri or ""
    if uri.startswith("s3://"):
        return S3Reader(uri, s3_client)
    return LocalFileReader(uri.removeprefix("file://"))


def fingerprint(data_sha256: str, champion_sha256: str | None, hyperparameters: Any, settings: Settings) -> str:
    """What determines the candidate: same data, champion, hyperparameters and code give the same model."""
    parts = {
        "data": data_sha256,
        "champion": champion_sha256 or "none",
        "hyperparameters": hyperparameters,
        "git_sha": settings.git_sha,
        "target": settings.target,
        "time_column": settings.time_column,
        "seed": settings.seed,
        "model_name": settings.model_name,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class RetrainJob:
    def __init__(
        self,
        settings: Settings,
        s3_client: Any,
        sns_client: Any = None,
        reader: DataReader | None = None,
        clock: Any = None,
    ) -> None:
        self.settings = settings.for_run()
        self.s3 = s3_client
        self.store = ModelStore(s3_client, settings.model_bucket or "", settings.model_key)
        self.reader = reader or make_reader(settings, s3_client)
        self.now = clock or (lambda: datetime.now(UTC))
        self.policy = GatePolicy(settings.gate_metric, settings.gate_tolerance, settings.gate_floor)
        self.publisher = AlertPublisher(
            sns_client,
            settings.alerts_topic_arn,
            S3DedupStore(s3_client, settings.model_bucket or ""),
            window=timedelta(minutes=settings.alert_window_minutes),
            clock=self.now,
        )
        self.run_id = uuid.uuid4().hex
        self.report: dict[str, Any] = {}

    def _step(self, number: int, text: str, **fields: Any) -> None:
        LOG.info("step %d/6: %s", number, text, extra={"run_id": self.run_id, "step": number, **fields})

    def run(self) -> RunResult:
        started = self.now()
        s = self.settings
        self.report = {
            "job": "retrain",
            "run_id": self.run_id,
            "started_at": started.isoformat(),
            "model_name": s.model_name,
            "git_sha": s.git_sha,
            "gate": {"metric": s.gate_metric, "tolerance": s.gate_tolerance, "floor": s.gate_floor},
            "candidate": None,
            "champion": None,
            "uploaded": None,
        }
        try:
            result = self._run()
        except DataError as exc:
            LOG.error("bad data, nothing uploaded: %s", exc, extra={"run_id": self.run_id})
            result = RunResult(Decision.BAD_DATA, str(exc), exc.exit_code)
        except (PackageError, RetrainError) as exc:
            LOG.exception("retrain failed: %s", exc, extra={"run_id": self.run_id})
            result = RunResult(Decision.FAILED, f"{type(exc).__name__}: {exc}", exc.exit_code)
        except Exception as exc:
            LOG.exception("retrain failed unexpectedly", extra={"run_id": self.run_id})
            result = RunResult(Decision.FAILED, f"{type(exc).__name__}: {exc}", ExitCode.UNEXPECTED)
        return self._finish(result, started)

    def _run(self) -> RunResult:
        s = self.settings
        champion_pointer = self.store.champion()
        self._step(1, "reading training data", champion=champion_pointer.model_version if champion_pointer else None)
        data: DataSet = self.reader.read()
        self.report["data"] = {"uri": data.uri, "sha256": data.sha256, "rows": len(data.frame)}

        champion: ModelPackage | None = None
        if champion_pointer is not None:
            champion = self.store.read_package(champion_pointer.package_key)
            if champion.sha256 != champion_pointer.model_sha256:
                raise PackageError(
                    f"{champion.source}: sha256 {champion.sha256} differs from champion.json's "
                    f"{champion_pointer.model_sha256}; refusing to refit an unknown model"
                )
            self.report["champion"] = {"version": champion.manifest.version, "sha256": champion.sha256}
            # Target, model name and time column not set in the environment come from the champion (issue #14).
            s = self.settings = s.for_champion(champion.manifest)
            self.report["model_name"] = s.model_name

        self._step(2, "validating training data", rows=len(data.frame))
        features = champion.manifest.features if champion else ()
        check_training_frame(
            data.frame,
            DataRequirements(
                s.target,
                s.min_rows,
                s.time_column,
                require_time=True,
                features=features,
                task=champion.manifest.task if champion else None,
                task_type=None if champion else s.task,
                positive=None if champion else s.positive_label,
                drop_null_target=s.drop_null_target,
                ignore=champion.manifest.columns.id_columns + champion.manifest.columns.excluded
                if champion
                else s.id_columns + s.exclude_columns,
            ),
        )

        hyperparameters = champion.manifest.hyperparameters.get("params") if champion else DEFAULT_HYPERPARAMETERS
        fp = fingerprint(data.sha256, champion.sha256 if champion else None, hyperparameters, s)
        self.report["fingerprint"] = fp
        self._step(3, "checking for an identical earlier run", fingerprint=fp)
        latest = self._latest_fingerprint()
        if latest is not None and latest[1] == fp:
            reason = (
                f"models/{latest[0]}/model.zip was built from the same data, champion, hyperparameters and code "
                f"(fingerprint {fp[:12]}); nothing to do"
            )
            return RunResult(Decision.UNCHANGED, reason, ExitCode.OK)

        version = self.store.next_version()
        self._step(4, f"training candidate v{version}", refit=champion is not None)
        candidate = fit_candidate(
            data.frame,
            s.target,
            name=s.model_name,
            version=version,
            data_uri=data.uri,
            data_sha256=data.sha256,
            git_sha=s.git_sha,
            time_column=s.time_column,
            seed=s.seed,
            features=features or None,
            champion_estimator=load_skops_estimator(champion) if champion else None,
            champion=champion.manifest if champion else None,
            task=s.task,
            positive=s.positive_label,
            id_columns=s.id_columns,
            exclude=s.exclude_columns,
            drop_null_target=s.drop_null_target,
            lineage={
                "parent_version": champion.manifest.version if champion else None,
                "parent_sha256": champion.sha256 if champion else None,
                "fingerprint": fp,
            },
            min_rows=s.min_rows,
            created_at=self.now(),
        )

        self._step(5, "scoring candidate and champion on the same holdout", holdout=candidate.split.how)
        candidate_metrics = self._score(candidate, None)
        champion_metrics = self._score(candidate, champion) if champion else None
        self.report["holdout"] = {"rows": len(candidate.holdout_y), "split": candidate.split.how}
        self.report["data"]["dropped_null_target"] = candidate.dropped_null_target
        self.report["task"] = candidate.manifest.task.model_dump()
        model_sha256 = open_package(candidate.data).sha256
        self.report["candidate"] = {
            "version": version,
            "model_sha256": model_sha256,
            "zip_sha256": hashlib.sha256(candidate.data).hexdigest(),
            "metrics": candidate_metrics.model_dump(),
            "pipeline": candidate.manifest.hyperparameters.get("pipeline"),
        }
        if champion is not None and champion_metrics is not None:
            self.report["champion"]["metrics"] = champion_metrics.model_dump()
        gate = decide(self.policy, candidate_metrics, champion_metrics)
        self.report["gate"].update(
            {
                "metric": s.gate_metric or candidate_metrics.primary_metric,
                "higher_is_better": candidate_metrics.higher_is_better
                if not s.gate_metric
                else HIGHER_IS_BETTER[s.gate_metric],
                "candidate": gate.candidate,
                "champion": gate.champion,
            }
        )
        if not gate.accepted:
            return RunResult(Decision.REJECTED, gate.reason, ExitCode.OK)

        self._step(6, f"uploading candidate v{version}")
        uploaded = self.store.upload(version, candidate.data, {FINGERPRINT_METADATA: fp, "model-sha256": model_sha256})
        self.report["uploaded"] = {
            "versioned_key": uploaded.versioned_key,
            "versioned_version_id": uploaded.versioned_version_id,
            "model_key": uploaded.model_key,
            "model_version_id": uploaded.model_version_id,
        }
        return RunResult(Decision.ACCEPTED, gate.reason, ExitCode.OK)

    def _latest_fingerprint(self) -> tuple[int, str] | None:
        from botocore.exceptions import ClientError

        versions = self.store.versions()
        if not versions:
            return None
        key = versioned_model_key(versions[-1])
        try:
            head = self.s3.head_object(Bucket=self.store.bucket, Key=key)
        except ClientError:
            return None
        return versions[-1], head.get("Metadata", {}).get(FINGERPRINT_METADATA, "")

    def _score(self, candidate: TrainingResult, package: ModelPackage | None) -> Metrics:
        """Both models through the serving runtime (ONNX), on exactly the same holdout rows."""
        target = package or open_package(candidate.data)
        runtime: RuntimeName = "onnx" if target.manifest.runtime.format == "onnx" else "skops"
        predictor = load_predictor(target, runtime=runtime)
        task = candidate.manifest.task
        return task_metrics(task, candidate.holdout_y, predictor.predict(candidate.holdout_columns))

    def _finish(self, result: RunResult, started: datetime) -> RunResult:
        finished = self.now()
        self.report.update(
            {
                "decision": str(result.decision),
                "reason": result.reason,
                "finished_at": finished.isoformat(),
                "duration_seconds": (finished - started).total_seconds(),
            }
        )
        result.report = self.report
        try:
            result.report_key = self.store.put_report(self.report, finished)
        except Exception:
            LOG.exception("could not write the report to s3://%s", self.store.bucket)
            result.exit_code = result.exit_code or ExitCode.UNEXPECTED
            return result
        report_uri = self.store.uri(result.report_key)
        LOG.info(
            "retrain %s: %s",
            result.decision,
            result.reason,
            extra={"run_id": self.run_id, "decision": str(result.decision), "report": report_uri},
        )
        self._notify(result, report_uri)
        return result

    def _notify(self, result: RunResult, report_uri: str) -> None:
        kind, severity = _ALERTS[result.decision]
        name = self.settings.model_name
        summaries = {
            Decision.ACCEPTED: f"new {name} model v{(self.report.get('candidate') or {}).get('version')} uploaded",
            Decision.REJECTED: f"{name} candidate rejected by the gate",
            Decision.UNCHANGED: f"{name}: same data and champion as the last run, nothing uploaded",
            Decision.BAD_DATA: f"{name} training data rejected, nothing uploaded",
            Decision.FAILED: f"{name} retrain failed, nothing uploaded",
        }
        dedup = self.report.get("fingerprint") or (self.report.get("data") or {}).get("sha256") or result.reason
        alert = Alert(
            source="retrain",
            kind=kind,
            severity=severity,
            summary=summaries[result.decision],
            where_to_look=f"{report_uri} ; CloudWatch Logs {self.settings.log_group} (run_id {self.run_id})",
            details={"reason": result.reason, "gate": self.report.get("gate"), "run_id": self.run_id},
            dedup_key=hashlib.sha256(str(dedup).encode()).hexdigest(),
        )
        try:
            self.publisher.publish(alert)
        except Exception:
            # The report is already stored; a failed notification must not turn a good run into a failure.
            LOG.exception("could not publish the %s notification", kind)
