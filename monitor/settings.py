"""Environment of the scheduled jobs (set in the Batch job definitions; see docs/monitoring.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

from contracts.bucket_layout import DRIFT_REPORT_PREFIX, PROD_CAPTURE_PREFIX
from model_package.errors import JobConfigError

# Parallel capture GETs share one client, whose default pool holds 10 connections (botocore Config
# max_pool_connections); more threads would only wait for a connection.
MAX_READ_WORKERS = 10
TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off", ""}


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    if value.strip().lower() in TRUE:
        return True
    if value.strip().lower() in FALSE:
        return False
    raise JobConfigError(f"{name}={value!r}: expected one of true/false, 1/0, yes/no, on/off")


def env_int(name: str, default: int, minimum: int = 0) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise JobConfigError(f"{name}={value!r}: expected an integer") from None
    if number < minimum:
        raise JobConfigError(f"{name}={value!r}: must be at least {minimum}")
    return number


def env_str(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value else default


def require(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise JobConfigError(f"{name} is not set; the job needs it (see docs/monitoring.md)")
    return value


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
    def from_env(cls) -> MonitorSettings:
        settings = cls(
            model_bucket=require("MODEL_BUCKET"),
            model_key=env_str("MODEL_KEY"),
            capture_bucket=env_str("CAPTURE_BUCKET"),
            capture_prefix=env_str("CAPTURE_PREFIX", PROD_CAPTURE_PREFIX) or PROD_CAPTURE_PREFIX,
            capture_db_url=env_str("CAPTURE_DB_URL"),
            labels_uri=env_str("LABELS_URI"),
            report_prefix=env_str("REPORT_PREFIX", DRIFT_REPORT_PREFIX) or DRIFT_REPORT_PREFIX,
            alerts_topic_arn=env_str("ALERTS_TOPIC_ARN"),
            alert_window=timedelta(minutes=env_int("ALERT_WINDOW_MINUTES", 360)),
            retrain_enabled=env_bool("DRIFT_RETRAIN_ENABLED", False),
            retrain_job_queue=env_str("RETRAIN_JOB_QUEUE"),
            retrain_job_definition=env_str("RETRAIN_JOB_DEFINITION"),
            summary_min_count=env_int("SUMMARY_MIN_COUNT", 1),
            summary_window=timedelta(minutes=env_int("SUMMARY_WINDOW_MINUTES", 10, minimum=1)),
            thresholds_file=env_str("DRIFT_THRESHOLDS_FILE"),
            drift_window=timedelta(hours=hours) if (hours := env_int("DRIFT_WINDOW_HOURS", 0)) else None,
            drift_max_window=timedelta(hours=env_int("DRIFT_MAX_WINDOW_HOURS", 168, minimum=1)),
            capture_read_workers=env_int("CAPTURE_READ_WORKERS", 8, minimum=1),
            drift_max_rows=env_int("DRIFT_MAX_ROWS", 200_000, minimum=1),
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
