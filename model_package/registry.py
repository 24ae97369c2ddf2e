"""The release record and the ``champion`` pointer stored in the model bucket.

The pipeline's ``Release`` action writes a :class:`ReleaseRecord` and moves the champion pointer
after a prod deploy; the retrain gate and the batch inference job read the pointer. Keeping both
formats here means a writer and its readers cannot drift apart; where they live in the bucket is
``contracts.bucket_layout``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contracts.bucket_layout import CHAMPION_KEY
from model_package.errors import ManifestError

RecordT = TypeVar("RecordT", bound=BaseModel)


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


def parse_record(model: type[RecordT], body: bytes | str, source: str) -> RecordT:
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
