"""The build record: what one Build action produced, handed to the Release action as an artifact.

It is validated when written, so a malformed record fails the build (where the cause is) rather
than the release (after a prod deploy). The Release action validates it again on read, because an
artifact is a file anyone with bucket access could have replaced. Format: ``docs/build.md``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from model_package import write_atomically
from release.errors import ConfigurationError, ReleaseError
from release.images import DIGEST_PATTERN, TAGGED_IMAGE_PATTERN, TaggedImage

GitSha = Annotated[str, Field(pattern=r"^[0-9a-f]{40}$")]
Digest = Annotated[str, Field(pattern=DIGEST_PATTERN)]
TaggedImageUri = Annotated[str, Field(pattern=TAGGED_IMAGE_PATTERN)]


class BuildRecord(BaseModel):
    """One build: the code (``git_sha``), the model baked in, and the two images by tag and digest."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    git_sha: GitSha
    model_name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
    model_version: Annotated[int, Field(ge=1)]
    model_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    model_s3_version_id: Annotated[str, Field(min_length=1, max_length=1024, pattern=r"^\S+$")]
    app_image_uri: TaggedImageUri
    app_image_digest: Digest
    jobs_image_uri: TaggedImageUri
    jobs_image_digest: Digest
    built_at: AwareDatetime

    @field_validator("model_s3_version_id")
    @classmethod
    def _versioned(cls, value: str) -> str:
        # "null" is what S3 reports for an object in an unversioned bucket: no lineage, so refused.
        if value == "null":
            raise ValueError("'null' means the model bucket is not versioned; the pipeline needs a real version id")
        return value

    @model_validator(mode="after")
    def _tags_follow_the_scheme(self) -> BuildRecord:
        # The tags are the human-readable half of the identity; a record whose tags disagree with its
        # own sha/version would send a reader to the wrong image.
        app_tag = TaggedImage.parse(self.app_image_uri).tag
        if app_tag != f"{self.git_sha}-m{self.model_version}":
            raise ValueError(f"app_image_uri tag {app_tag!r} must be '<git_sha>-m<model_version>'")
        jobs_tag = TaggedImage.parse(self.jobs_image_uri).tag
        if jobs_tag != self.git_sha:
            raise ValueError(f"jobs_image_uri tag {jobs_tag!r} must be the git sha {self.git_sha!r}")
        return self

    @property
    def app_image(self) -> TaggedImage:
        return TaggedImage.parse(self.app_image_uri)

    @property
    def jobs_image(self) -> TaggedImage:
        return TaggedImage.parse(self.jobs_image_uri)

    @property
    def pinned_app_image(self) -> str:
        return self.app_image.pinned(self.app_image_digest)

    @property
    def pinned_jobs_image(self) -> str:
        return self.jobs_image.pinned(self.jobs_image_digest)


def _problems(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors())


def build_record(**fields: object) -> BuildRecord:
    """Validate the fields of a new record; every problem is named in one ``ConfigurationError``."""
    try:
        return BuildRecord.model_validate(fields)
    except ValidationError as exc:
        raise ConfigurationError(f"the build record would be invalid: {_problems(exc)}") from exc


class BuildRecordWriter:
    """Writes the record atomically, so the artifact upload never picks up half a file."""

    def write(self, path: str | os.PathLike[str], record: BuildRecord) -> None:
        write_atomically(path, (record.model_dump_json(indent=2) + "\n").encode())


class BuildRecordReader:
    def read(self, path: str | os.PathLike[str]) -> BuildRecord:
        source = Path(path)
        try:
            raw = json.loads(source.read_bytes())
        except FileNotFoundError as exc:
            raise ReleaseError(
                f"{source}: no build record; the Release action's secondary input must be the Build action's "
                "BuildRecord artifact"
            ) from exc
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ReleaseError(f"{source}: the build record is not JSON: {exc}") from exc
        try:
            return BuildRecord.model_validate(raw)
        except ValidationError as exc:
            raise ReleaseError(f"{source}: not a valid build record: {_problems(exc)}") from exc
