"""The key layout of the model, capture and report buckets: every writer and reader takes its keys here.

Model bucket (the pipeline's source and the jobs' store):

    model.zip                         the uploaded package (the pipeline's trigger; ``DEFAULT_MODEL_KEY``)
    models/<version>/model.zip        immutable copy of every uploaded package
    champion.json                     the model now serving production (``model_package.registry``)
    releases/<time>-<sha>.json        one release record per prod deploy
    ledger/<time>-<event>-<exec>.json the promotion ledger (write-once)
    training-data/                    the retrain job's input (every CSV/Parquet object under it)
    reports/<job>/                    retrain, drift and summary reports; reports/evaluation/<exec>/report.*
    alerts/sent/                      the alert publisher's dedup markers
    batch-inference/{input,output}/   batch inference reads and writes only here

Capture bucket, written by the app, read by the drift and summary jobs and by Athena:

    capture/<service>/dt=YYYY-MM-DD/hour=HH/<YYYYmmddTHHMMSSffffff>Z-<worker>-<uid>.jsonl

``dt``/``hour`` are the UTC time of the batch's first record. A reader of the window [since, until)
lists only the hour prefixes that window touches (:func:`hour_prefixes`), so the cost of a run grows
with the window, never with the bucket's history. A batch spans at most the app's flush interval, so
records of the window's first hour can sit in an object whose key is a few seconds earlier: readers
list whole hour partitions and filter records by their own ``time``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final, Literal

# Model bucket.
DEFAULT_MODEL_KEY: Final = "model.zip"
CHAMPION_KEY: Final = "champion.json"
RELEASES_PREFIX: Final = "releases/"
REPORTS_PREFIX: Final = "reports/"
MODELS_PREFIX: Final = "models/"
# Where the retrain job reads its training data (every CSV/Parquet object under it); the infra's
# ``trainingDataPrefix`` default and the job's DATA_URI, and the README's "put training data under".
TRAINING_DATA_PREFIX: Final = "training-data/"
# The Evaluate stage's reports (evaluation/): one JSON and one HTML per evaluated candidate.
EVALUATION_REPORTS_PREFIX: Final = f"{REPORTS_PREFIX}evaluation/"
# The promotion ledger (release/ledger.py): one write-once JSON object per promotion or rollback.
LEDGER_PREFIX: Final = "ledger/"
# alerting/publisher.py's S3DedupStore.
ALERTS_SENT_PREFIX: Final = "alerts/sent/"
ReportJob = Literal["retrain", "drift", "summary"]
# The scheduled jobs' reports, one prefix per job.
REPORT_PREFIXES: Final[dict[ReportJob, str]] = {
    "retrain": f"{REPORTS_PREFIX}retrain/",
    "drift": f"{REPORTS_PREFIX}drift/",
    "summary": f"{REPORTS_PREFIX}summary/",
}
# The drift job's REPORT_PREFIX (written without the trailing slash, as the job joins it with "/").
DRIFT_REPORT_PREFIX: Final = REPORT_PREFIXES["drift"].rstrip("/")
INFERENCE_INPUT_PREFIX: Final = "batch-inference/input/"
INFERENCE_OUTPUT_PREFIX: Final = "batch-inference/output/"

# Capture bucket.
CAPTURE_ROOT: Final = "capture/"

CAPTURE_SUFFIX: Final = ".jsonl"
HOUR: Final = timedelta(hours=1)


def capture_prefix(service: str) -> str:
    """``capture/<service>``: one service's captured predictions (its Glue table's location)."""
    return f"{CAPTURE_ROOT}{service}"


# What the drift, summary and evaluation jobs read by default: production's capture.
PROD_CAPTURE_PREFIX: Final = capture_prefix("prod")


def versioned_model_key(version: int) -> str:
    """Immutable copy of every uploaded package; the model key itself is the pipeline's trigger."""
    return f"{MODELS_PREFIX}{version}/{DEFAULT_MODEL_KEY}"


def release_key(released_at: datetime, git_sha: str) -> str:
    """One release record per prod deploy, time-ordered."""
    return f"{RELEASES_PREFIX}{released_at.strftime('%Y%m%dT%H%M%SZ')}{release_key_suffix(git_sha)}"


def release_key_suffix(git_sha: str) -> str:
    """How every release record of ``git_sha`` ends (a retried Release action looks for its own by it)."""
    return f"-{git_sha[:12]}.json"


def evaluation_report_keys(pipeline_execution_id: str) -> tuple[str, str]:
    """``(json_key, html_key)`` of the evaluation of one pipeline execution. Keyed by the execution id, so
    the approval alert (which knows only the event's execution id) links the very report; a retried
    Evaluate action replaces it (the bucket is versioned, the earlier one stays as a version)."""
    stem = f"{EVALUATION_REPORTS_PREFIX}{pipeline_execution_id}/report"
    return f"{stem}.json", f"{stem}.html"


def console_object_url(region: str, bucket: str, key: str) -> str:
    """The S3 console page of one object: a stable link for a person (a presigned URL would expire)."""
    return f"https://{region}.console.aws.amazon.com/s3/object/{bucket}?region={region}&prefix={key}"


def ledger_key(at: datetime, event: str, pipeline_execution_id: str) -> str:
    """Time-ordered (keys list in time order) and unique per execution and event (write-once)."""
    return f"{LEDGER_PREFIX}{at.strftime('%Y%m%dT%H%M%S%fZ')}-{event}-{pipeline_execution_id}.json"


def _utc(when: datetime) -> datetime:
    """``when`` in UTC; a naive time is taken as UTC (the capture records' own stamps are UTC)."""
    return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)


def hour_prefix(prefix: str, when: datetime) -> str:
    """``<prefix>/dt=YYYY-MM-DD/hour=HH/``: the partition holding batches that start in ``when``'s hour."""
    when = _utc(when)
    return f"{prefix.strip('/')}/dt={when:%Y-%m-%d}/hour={when:%H}/"


def capture_key(prefix: str, when: datetime, worker: str, uid: str) -> str:
    """The object key of one batch whose first record was made at ``when`` (idempotent for a replay)."""
    when = _utc(when)
    return f"{hour_prefix(prefix, when)}{when:%Y%m%dT%H%M%S%f}Z-{worker}-{uid}{CAPTURE_SUFFIX}"


def hour_prefixes(prefix: str, since: datetime, until: datetime) -> list[str]:
    """Every hour partition that can hold records of [since, until), oldest first."""
    since, until = _utc(since), _utc(until)
    if until <= since:
        return []
    hour = since.replace(minute=0, second=0, microsecond=0)
    prefixes: list[str] = []
    while hour < until:
        prefixes.append(hour_prefix(prefix, hour))
        hour += HOUR
    return prefixes
