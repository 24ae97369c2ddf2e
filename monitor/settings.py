"""Environment of the scheduled jobs (set in the Batch job definitions; see docs/monitoring.md)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from contracts.environment import MonitorEnvironment
from model_package.errors import JobConfigError

# Parallel capture GETs share one client, whose default pool holds 10 connections (botocore Config
# max_pool_connections); more threads would only wait for a connection.
MAX_READ_WORKERS = 10


@dataclass(frozen=True)
class MonitorSettings:
    model_bucket: str
    model_key: str | None
    capture_bucket: str | None
    capture_prefix: str
    capture_db_url: str | None
    labels_uri: str | None
    report_prefix: str
    alerts_topic_arn: str | None
    alert_window: timedelta
    retrain_enabled: bool
    retrain_job_queue: str | None
    retrain_job_definition: str | None
    summary_min_count: int
    summary_window: timedelta
    thresholds_file: str | None
    drift_window: timedelta | None = None  # None: since the last successful report (monitor.window)
    drift_max_window: timedelta = timedelta(hours=168)
    capture_read_workers: int = 8
    drift_max_rows: int = 200_000

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> MonitorSettings:
        """The job's settings from its environment (``contracts.environment.MonitorEnvironment``, the class
        infra writes the job definition from), plus the rules that span variables."""
        env = MonitorEnvironment.from_env(environ, error=JobConfigError)
        if not env.model_bucket:
            raise JobConfigError("MODEL_BUCKET is not set; the job needs it (see docs/monitoring.md)")
        settings = cls(
            model_bucket=env.model_bucket,
            model_key=env.model_key,
            capture_bucket=env.capture_bucket,
            capture_prefix=env.capture_prefix,
            capture_db_url=env.capture_db_url,
            labels_uri=env.labels_uri,
            report_prefix=env.report_prefix,
            alerts_topic_arn=env.alerts_topic_arn,
            alert_window=timedelta(minutes=env.alert_window_minutes),
            retrain_enabled=env.drift_retrain_enabled,
            retrain_job_queue=env.retrain_job_queue,
            retrain_job_definition=env.retrain_job_definition,
            summary_min_count=env.summary_min_count,
            summary_window=timedelta(minutes=env.summary_window_minutes),
            thresholds_file=env.drift_thresholds_file,
            drift_window=timedelta(hours=env.drift_window_hours) if env.drift_window_hours else None,
            drift_max_window=timedelta(hours=env.drift_max_window_hours),
            capture_read_workers=env.capture_read_workers,
            drift_max_rows=env.drift_max_rows,
        )
        if settings.capture_bucket is None and settings.capture_db_url is None:
            raise JobConfigError("set CAPTURE_BUCKET (S3 capture) or CAPTURE_DB_URL (SQL capture): the job has no data")
        if settings.capture_read_workers > MAX_READ_WORKERS:
            raise JobConfigError(
                f"CAPTURE_READ_WORKERS={settings.capture_read_workers}: at most {MAX_READ_WORKERS} "
                "(botocore's default connection pool)"
            )
        if settings.retrain_enabled and not (settings.retrain_job_queue and settings.retrain_job_definition):
            raise JobConfigError(
                "DRIFT_RETRAIN_ENABLED is true: RETRAIN_JOB_QUEUE and RETRAIN_JOB_DEFINITION are required"
            )
        return settings
