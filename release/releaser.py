"""The Release action: record what went live, then move the ``champion`` pointer, then the Batch jobs.

Every check (the model objects in the bucket, the job definitions, the schedules) runs before the first
write, so a release that cannot complete changes nothing. The writes then go: the package archived under
``models/<version>/model.zip`` when nothing is there yet (a ``model.zip`` uploaded by hand, as the README's
first release does, has no archived copy: issue #12, defect 4), the record, the pointer (so the pointer
never names a record that does not exist), the job definitions, and last the schedules (created DISABLED
by the infra until the job definitions run a real jobs image: defect 5). The last two are the steps a
re-run repeats harmlessly (an unchanged image registers no revision, an enabled schedule stays as it is).

A retried action (CodePipeline's RetryStageExecution re-runs a failed Release action in the same execution)
finishes what the first attempt began: it finds the record and ledger entry that attempt wrote for its
pipeline execution and reuses them, so one execution is one release record and one "promotion" in the
ledger however often it runs, and the champion pointer and job definitions end up exactly as one run
leaves them. An execution whose records name a different build is refused.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from contracts.bucket_layout import (
    CHAMPION_KEY,
    RELEASES_PREFIX,
    release_key,
    release_key_suffix,
    versioned_model_key,
)
from model_package import ManifestError, PackageError, open_package
from model_package.registry import ChampionPointer, ReleaseRecord, parse_record
from release.build_record import BuildRecord
from release.errors import ReleaseStateError
from release.job_definitions import JobDefinitionUpdater, PlannedRevision
from release.ledger import Ledger, LedgerEntry, PromotionEvidence
from release.schedules import PlannedSchedule, ScheduleEnabler, ScheduleRef

LOG = logging.getLogger(__name__)
_MISSING_OBJECT_CODES = {"NoSuchKey", "NoSuchVersion", "InvalidArgument", "404", "NotFound"}


@dataclass(frozen=True)
class ReleaseOutcome:
    record_key: str
    record: ReleaseRecord
    champion: ChampionPointer
    job_definitions: list[str] = field(default_factory=list)
    archived_package: bool = False
    schedules: list[str] = field(default_factory=list)
    ledger_key: str | None = None


class ModelBucket:
    """Reads and writes of the model bucket that the release needs, behind one small class."""

    def __init__(self, s3_client: Any, bucket: str) -> None:
        self.s3, self.bucket = s3_client, bucket

    def read_if_exists(self, key: str) -> bytes | None:
        """The object, or ``None`` if there is none (the release role may ListBucket, so that is a 404)."""
        try:
            return self.read(key)
        except ReleaseStateError as exc:
            if isinstance(exc.__cause__, ClientError):
                return None
            raise

    def read(self, key: str, version_id: str | None = None) -> bytes:
        request = {"Bucket": self.bucket, "Key": key}
        if version_id is not None:
            request["VersionId"] = version_id
        where = f"s3://{self.bucket}/{key}" + (f" (version {version_id})" if version_id else "")
        try:
            body: bytes = self.s3.get_object(**request)["Body"].read()
            return body
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in _MISSING_OBJECT_CODES:
                raise ReleaseStateError(f"{where} does not exist ({code})") from exc
            raise

    def write_new(self, key: str, body: bytes, content_type: str = "application/json") -> None:
        """Create ``key``; refuse to replace an existing object (release records and archives are history)."""
        try:
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type, IfNoneMatch="*")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise ReleaseStateError(f"s3://{self.bucket}/{key} already exists; it is never replaced") from exc
            raise

    def write(self, key: str, body: bytes) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json")

    def keys(self, prefix: str, suffix: str = "") -> list[str]:
        """Every key under ``prefix`` that ends with ``suffix``, in key order."""
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", [])
                      if item["Key"].endswith(suffix))  # fmt: skip


def _build_of(record: ReleaseRecord | LedgerEntry) -> tuple[object, ...]:
    """What makes two releases the same build: code, model and the image digests."""
    return record.git_sha, record.model_name, record.model_version, record.model_sha256, record.image_digest


def _build_key(build: BuildRecord) -> tuple[object, ...]:
    return build.git_sha, build.model_name, build.model_version, build.model_sha256, build.app_image_digest


@dataclass(frozen=True)
class EarlierAttempt:
    """What an earlier attempt of the same pipeline execution already wrote."""

    record_key: str
    record: ReleaseRecord
    ledger_key: str | None


class Releaser:
    """Turns a build record into a release record, a champion pointer and new job definition revisions."""

    def __init__(
        self,
        bucket: ModelBucket,
        job_definitions: JobDefinitionUpdater,
        *,
        model_key: str,
        schedules: ScheduleEnabler | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        evidence: Callable[[str], PromotionEvidence] | None = None,
    ) -> None:
        self.bucket, self.job_definitions, self.model_key, self._now = bucket, job_definitions, model_key, clock
        self.schedules = schedules
        # Who approved and what the evaluation said (release.ledger.PipelineEvidenceReader.read); None
        # leaves those ledger fields empty (a release run outside the pipeline).
        self.evidence = evidence
        self.ledger = Ledger(bucket)

    def _check_package(self, build: BuildRecord, data: bytes, where: str) -> None:
        try:
            package = open_package(data)
        except PackageError as exc:
            raise ReleaseStateError(f"{where} is not a valid model package: {exc}") from exc
        if package.sha256 != build.model_sha256:
            raise ReleaseStateError(
                f"{where} has package sha256 {package.sha256}, the build record says {build.model_sha256}; "
                "the image would serve a different model than the one released"
            )
        manifest = package.manifest
        if (manifest.name, manifest.version) != (build.model_name, build.model_version):
            raise ReleaseStateError(
                f"{where} is model {manifest.name!r} version {manifest.version}, "
                f"the build record says {build.model_name!r} version {build.model_version}"
            )

    def verify(self, build: BuildRecord) -> tuple[str, bytes | None]:
        """Check the bucket holds the very package the build baked in. Returns the champion's package key
        and, when that key does not exist yet (a hand-uploaded model.zip), the bytes to archive there."""
        package_key = versioned_model_key(build.model_version)
        trigger = f"s3://{self.bucket.bucket}/{self.model_key} (version {build.model_s3_version_id})"
        released = self.bucket.read(self.model_key, build.model_s3_version_id)
        self._check_package(build, released, trigger)
        archived = self.bucket.read_if_exists(package_key)
        if archived is None:
            return package_key, released
        self._check_package(build, archived, f"s3://{self.bucket.bucket}/{package_key}")
        return package_key, None

    def _refuse_other_build(self, execution_id: str, found: ReleaseRecord | LedgerEntry, where: str,
                            build: BuildRecord) -> None:  # fmt: skip
        if _build_of(found) != _build_key(build):
            raise ReleaseStateError(
                f"pipeline execution {execution_id} already released {found.model_name!r} version "
                f"{found.model_version} (image {found.image_digest}, {where}), not version {build.model_version} "
                f"(image {build.app_image_digest}): one execution releases one build; start a new execution"
            )

    def earlier_attempt(self, build: BuildRecord, execution_id: str,
                        ledger: list[tuple[str, LedgerEntry]]) -> EarlierAttempt | None:  # fmt: skip
        """The record (and ledger entry, if it got that far) an earlier attempt of ``execution_id`` wrote."""
        own = [(key, entry) for key, entry in ledger
               if entry.event == "promotion" and entry.pipeline_execution_id == execution_id]  # fmt: skip
        for key, entry in own:
            self._refuse_other_build(execution_id, entry, f"s3://{self.bucket.bucket}/{key}", build)
        for key in self.bucket.keys(RELEASES_PREFIX, release_key_suffix(build.git_sha)):
            where = f"s3://{self.bucket.bucket}/{key}"
            try:
                record = parse_record(ReleaseRecord, self.bucket.read(key), where)
            except ManifestError as exc:
                raise ReleaseStateError(str(exc)) from exc
            if record.pipeline_execution_id != execution_id:
                continue
            self._refuse_other_build(execution_id, record, where, build)
            entry_key = next((k for k, e in own if e.release_key == key), None)
            return EarlierAttempt(record_key=key, record=record, ledger_key=entry_key)
        if own:
            raise ReleaseStateError(
                f"ledger entry {own[0][0]} says execution {execution_id} released {own[0][1].release_key}, "
                "which does not exist; the release history was changed by hand, so nothing is written"
            )
        return None

    def release(
        self,
        build: BuildRecord,
        *,
        pipeline_execution_id: str,
        job_definition_names: Sequence[str],
        schedule_names: Sequence[ScheduleRef] = (),
    ) -> ReleaseOutcome:
        package_key, to_archive = self.verify(build)
        planned: list[PlannedRevision] = self.job_definitions.plan(job_definition_names, build.pinned_jobs_image)
        if schedule_names and self.schedules is None:
            raise ReleaseStateError(f"schedules {[str(r) for r in schedule_names]} given but no scheduler client")
        schedules: list[PlannedSchedule] = self.schedules.plan(schedule_names) if self.schedules else []
        evidence = self.evidence(pipeline_execution_id) if self.evidence else None
        if evidence is None:
            LOG.warning("no pipeline to ask: the ledger entry of %s names no approver", pipeline_execution_id)
        ledger = self.ledger.entries()
        earlier = self.earlier_attempt(build, pipeline_execution_id, ledger)
        if earlier is not None and earlier.ledger_key is not None and ledger[-1][0] != earlier.ledger_key:
            raise ReleaseStateError(
                f"execution {pipeline_execution_id} was released ({earlier.ledger_key}) and later "
                f"{ledger[-1][0]} went live; re-running this release would put prod's records back on it"
            )
        if to_archive is not None:
            self.bucket.write_new(package_key, to_archive, content_type="application/zip")
            LOG.info("archived the released package as s3://%s/%s", self.bucket.bucket, package_key)
        if earlier is None:
            released_at = self._now()
            key = release_key(released_at, build.git_sha)
            record = ReleaseRecord(
                git_sha=build.git_sha,
                model_name=build.model_name,
                model_version=build.model_version,
                model_s3_version_id=build.model_s3_version_id,
                model_sha256=build.model_sha256,
                image_uri=build.app_image_uri,
                image_digest=build.app_image_digest,
                jobs_image_uri=build.jobs_image_uri,
                jobs_image_digest=build.jobs_image_digest,
                pipeline_execution_id=pipeline_execution_id,
                released_at=released_at,
            )
            self.bucket.write_new(key, (record.model_dump_json(indent=2) + "\n").encode())
            LOG.info("wrote release record s3://%s/%s", self.bucket.bucket, key)
        else:
            key, record, released_at = earlier.record_key, earlier.record, earlier.record.released_at
            LOG.info("a retry of execution %s: its release record s3://%s/%s stands", pipeline_execution_id,
                     self.bucket.bucket, key)  # fmt: skip
        if earlier is not None and earlier.ledger_key is not None:
            entry_key = earlier.ledger_key
        else:
            previous = ledger[-1] if ledger else None
            entry = LedgerEntry.from_release(
                "promotion", key, record, live_from=released_at, recorded_by="pipeline",
                replaces=previous[0] if previous else None, **(evidence.fields() if evidence else {}),
            )  # fmt: skip
            entry_key = self.ledger.append(entry)
        champion = ChampionPointer(
            model_name=build.model_name,
            model_version=build.model_version,
            package_key=package_key,
            model_sha256=build.model_sha256,
            release_key=key,
            updated_at=released_at,
        )
        self.bucket.write(CHAMPION_KEY, (champion.model_dump_json(indent=2) + "\n").encode())
        LOG.info("champion is now %s version %d (%s)", build.model_name, build.model_version, package_key)
        arns = self.job_definitions.apply(planned)
        enabled = self.schedules.apply(schedules) if self.schedules else []
        return ReleaseOutcome(record_key=key, record=record, champion=champion, job_definitions=arns,
                              archived_package=to_archive is not None, schedules=enabled,
                              ledger_key=entry_key)  # fmt: skip
