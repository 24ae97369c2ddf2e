"""Where packages, releases and reports live in the model bucket, and the ``champion`` pointer.

The pipeline's ``Release`` action writes a :class:`ReleaseRecord` and moves the champion pointer
after a prod deploy; the retrain gate and the batch inference job read the pointer. Keeping the
key layout and both formats here means a writer and its readers cannot drift apart.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from model_package.errors import ManifestError

DEFAULT_MODEL_KEY = "model.zip"
CHAMPION_KEY = "champion.json"
RELEASES_PREFIX = "releases/"
REPORTS_PREFIX = "reports/"
MODELS_PREFIX = "models/"
# Where the retrain job reads its training data (every CSV/Parquet object under it); the infra's
# ``trainingDataPrefix`` default and the job's DATA_URI, and the README's "put training data under".
TRAINING_DATA_PREFIX = "training-data/"
# The Evaluate stage's reports (evaluation/): one JSON and one HTML per evaluated candidate.
EVALUATION_REPORTS_PREFIX = f"{REPORTS_PREFIX}evaluation/"
# The promotion ledger (release/ledger.py): one write-once JSON object per promotion or rollback.
LEDGER_PREFIX = "ledger/"


def versioned_model_key(version: int) -> str:
    """Immutable copy of every uploaded package; the model key itself is the pipeline's trigger."""
    return f"{MODELS_PREFIX}{version}/model.zip"


def release_key(released_at: datetime, git_sha: str) -> str:
    return f"{RELEASES_PREFIX}{released_at.strftime('%Y%m%dT%H%M%SZ')}-{git_sha[:12]}.json"


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


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ReleaseRecord(_Record):
    """What is live after a prod deploy: which code, which model, which image. Documented in docs/release-record.md."""

    git_sha: str
    model_name: str
    model_version: Annotated[int, Field(ge=1)]
    model_s3_version_id: str
    model_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    image_uri: str
    image_digest: Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")]
    jobs_image_uri: str | None = None
    jobs_image_digest: Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")] | None = None
    pipeline_execution_id: str
    released_at: datetime


class ChampionPointer(_Record):
    """The model now serving production. ``package_key`` is the immutable ``models/<version>/model.zip``."""

    model_name: str
    model_version: Annotated[int, Field(ge=1)]
    package_key: str
    model_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    release_key: str
    updated_at: datetime


def parse_record(model: type[BaseModel], body: bytes | str, source: str) -> Any:
    """Parse a record, naming the object and field on failure."""
    try:
        return model.model_validate(json.loads(body))
    except (json.JSONDecodeError, UnicodeDecodeError, ValidationError) as exc:
        raise ManifestError(f"{source}: not a valid {model.__name__}: {exc}") from exc


def read_champion(s3_client: Any, bucket: str) -> ChampionPointer | None:
    """The current champion, or ``None`` before the first release."""
    try:
        body = s3_client.get_object(Bucket=bucket, Key=CHAMPION_KEY)["Body"].read()
    except s3_client.exceptions.NoSuchKey:
        return None
    return parse_record(ChampionPointer, body, f"s3://{bucket}/{CHAMPION_KEY}")
