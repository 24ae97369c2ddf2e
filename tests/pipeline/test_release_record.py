"""The Release action against a real moto server: record, champion pointer, job definitions.

Each test gets its own bucket and job definition names, so tests share the session's moto server
without resetting it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from contracts.bucket_layout import CHAMPION_KEY, release_key, versioned_model_key
from model_package import open_package
from model_package.registry import ChampionPointer, ReleaseRecord, parse_record, read_champion
from release.build_record import BuildRecord, BuildRecordReader, BuildRecordWriter, build_record
from release.errors import ConfigurationError, ReleaseError, ReleaseStateError
from release.job_definitions import JobDefinitionUpdater, parse_names
from release.releaser import ModelBucket, Releaser
from release.settings import ReleaseSettings
from tests.pipeline import packages

GIT_SHA = "0123456789abcdef0123456789abcdef01234567"
REGISTRY = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
APP_DIGEST = "sha256:" + "a" * 64
JOBS_DIGEST = "sha256:" + "b" * 64
T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def make_package(version: int, *, salt: str = "") -> bytes:
    return packages.make_package(version, git_sha=GIT_SHA, salt=salt)


@dataclass
class Env:
    """One test's slice of the moto server: a versioned bucket, job definitions, a build record."""

    endpoint: str
    bucket: str
    s3: Any
    batch: Any
    job_names: list[str]
    package: bytes
    model_s3_version_id: str

    def build(self, **overrides: Any) -> BuildRecord:
        fields: dict[str, Any] = {
            "git_sha": GIT_SHA,
            "model_name": "churn",
            "model_version": 3,
            "model_sha256": open_package(self.package).sha256,
            "model_s3_version_id": self.model_s3_version_id,
            "app_image_uri": f"{REGISTRY}/app:{GIT_SHA}-m3",
            "app_image_digest": APP_DIGEST,
            "jobs_image_uri": f"{REGISTRY}/jobs:{GIT_SHA}",
            "jobs_image_digest": JOBS_DIGEST,
            "built_at": T0,
        }
        fields.update(overrides)
        return build_record(**fields)

    def releaser(self, clock: Callable[[], datetime] = lambda: T0) -> Releaser:
        return Releaser(
            ModelBucket(self.s3, self.bucket), JobDefinitionUpdater(self.batch), model_key="model.zip", clock=clock
        )

    def object_keys(self, prefix: str = "") -> list[str]:
        listing = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return sorted(o["Key"] for o in listing.get("Contents", []))

    def revisions(self, name: str) -> list[dict[str, Any]]:
        defs = self.batch.describe_job_definitions(jobDefinitionName=name, status="ACTIVE")["jobDefinitions"]
        return sorted(defs, key=lambda d: d["revision"])


def register_job_definition(batch: Any, name: str, image: str) -> None:
    batch.register_job_definition(
        jobDefinitionName=name,
        type="container",
        platformCapabilities=["FARGATE"],
        containerProperties={
            "image": image,
            "command": ["python", "-m", "monitor"],
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}],
            "environment": [{"name": "MODEL_BUCKET", "value": "x"}],
            "executionRoleArn": "arn:aws:iam::123456789012:role/batch-exec",
        },
        retryStrategy={"attempts": 2},
        timeout={"attemptDurationSeconds": 3600},
        tags={"project": "ml-delivery"},
    )


@pytest.fixture
def env(moto_server: Any) -> Env:
    endpoint = moto_server.endpoint_url
    s3 = boto3.client("s3", endpoint_url=endpoint)
    batch = boto3.client("batch", endpoint_url=endpoint)
    suffix = uuid.uuid4().hex[:10]
    bucket = f"models-{suffix}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    package = make_package(3)
    version_id = s3.put_object(Bucket=bucket, Key="model.zip", Body=package)["VersionId"]
    s3.put_object(Bucket=bucket, Key=versioned_model_key(3), Body=package)
    names = [f"monitor-{suffix}", f"inference-{suffix}"]
    for name in names:
        register_job_definition(batch, name, f"{REGISTRY}/jobs:old")
    return Env(endpoint, bucket, s3, batch, names, package, version_id)


def test_release_writes_record_then_champion_then_job_definitions(env: Env) -> None:
    outcome = env.releaser().release(env.build(), pipeline_execution_id="exec-1", job_definition_names=env.job_names)

    assert outcome.record_key == release_key(T0, GIT_SHA) == f"releases/20260301T120000Z-{GIT_SHA[:12]}.json"
    body = env.s3.get_object(Bucket=env.bucket, Key=outcome.record_key)["Body"].read()
    record = parse_record(ReleaseRecord, body, outcome.record_key)
    assert record.git_sha == GIT_SHA
    assert (record.model_name, record.model_version) == ("churn", 3)
    assert record.model_s3_version_id == env.model_s3_version_id
    assert record.model_sha256 == open_package(env.package).sha256
    assert record.image_uri == f"{REGISTRY}/app:{GIT_SHA}-m3"
    assert record.image_digest == APP_DIGEST
    assert record.pipeline_execution_id == "exec-1"
    assert record.released_at == T0

    champion = read_champion(env.s3, env.bucket)
    assert champion == ChampionPointer(
        model_name="churn",
        model_version=3,
        package_key="models/3/model.zip",
        model_sha256=record.model_sha256,
        release_key=outcome.record_key,
        updated_at=T0,
    )
    # The pointer's package key opens to the very package the record names.
    packaged = env.s3.get_object(Bucket=env.bucket, Key=champion.package_key)["Body"].read()
    assert open_package(packaged).sha256 == champion.model_sha256

    for name, arn in zip(env.job_names, outcome.job_definitions, strict=True):
        old, new = env.revisions(name)
        assert new["jobDefinitionArn"] == arn
        assert new["containerProperties"]["image"] == f"{REGISTRY}/jobs@{JOBS_DIGEST}"
        assert old["containerProperties"]["image"] == f"{REGISTRY}/jobs:old"
        # Everything but the image carries over from the infra's revision.
        for key in ("command", "resourceRequirements", "environment", "executionRoleArn"):
            assert new["containerProperties"][key] == old["containerProperties"][key]
        assert new["retryStrategy"] == {"attempts": 2}
        assert new["timeout"] == {"attemptDurationSeconds": 3600}
        assert new["platformCapabilities"] == ["FARGATE"]
        assert new["tags"] == {"project": "ml-delivery"}


def test_a_second_release_keeps_history_and_registers_no_redundant_revision(env: Env) -> None:
    first = env.releaser().release(env.build(), pipeline_execution_id="exec-1", job_definition_names=env.job_names)
    later = T0 + timedelta(hours=1)
    second = env.releaser(lambda: later).release(
        env.build(), pipeline_execution_id="exec-2", job_definition_names=env.job_names
    )

    assert env.object_keys("releases/") == sorted([first.record_key, second.record_key])
    assert read_champion(env.s3, env.bucket).release_key == second.record_key  # type: ignore[union-attr]
    for name in env.job_names:
        assert len(env.revisions(name)) == 2, "the same jobs image must not register another revision"
    assert second.job_definitions == first.job_definitions


def test_a_record_is_never_replaced_and_the_champion_stays(env: Env) -> None:
    env.releaser().release(env.build(), pipeline_execution_id="exec-1", job_definition_names=[])
    before = env.s3.get_object(Bucket=env.bucket, Key=CHAMPION_KEY)["Body"].read()

    with pytest.raises(ReleaseStateError, match="never replaced"):
        env.releaser().release(env.build(), pipeline_execution_id="exec-other", job_definition_names=[])

    assert env.s3.get_object(Bucket=env.bucket, Key=CHAMPION_KEY)["Body"].read() == before
    body = env.s3.get_object(Bucket=env.bucket, Key=release_key(T0, GIT_SHA))["Body"].read()
    assert parse_record(ReleaseRecord, body, "record").pipeline_execution_id == "exec-1"


def _assert_nothing_written(env: Env) -> None:
    assert env.object_keys("releases/") == []
    assert CHAMPION_KEY not in env.object_keys()
    for name in env.job_names:
        assert len(env.revisions(name)) == 1


def test_versioned_package_with_another_sha_fails_before_any_write(env: Env) -> None:
    env.s3.put_object(Bucket=env.bucket, Key=versioned_model_key(3), Body=make_package(3, salt="other"))

    with pytest.raises(ReleaseStateError, match=r"models/3/model.zip has package sha256 .* the build record says"):
        env.releaser().release(env.build(), pipeline_execution_id="exec-1", job_definition_names=env.job_names)
    _assert_nothing_written(env)


def test_build_record_naming_another_model_version_fails_before_any_write(env: Env) -> None:
    with pytest.raises(ReleaseStateError, match=r"is model 'churn' version 3, the build record says 'churn' version 4"):
        env.releaser().release(
            env.build(model_version=4, app_image_uri=f"{REGISTRY}/app:{GIT_SHA}-m4"),
            pipeline_execution_id="exec-1",
            job_definition_names=env.job_names,
        )
    _assert_nothing_written(env)
    assert env.object_keys("models/") == [versioned_model_key(3)]


def test_missing_versioned_package_is_archived_from_the_released_upload(env: Env) -> None:
    """Issue #12, defect 4: a hand-uploaded model.zip has no models/<version>/ copy; the release makes it."""
    env.s3.delete_object(Bucket=env.bucket, Key=versioned_model_key(3))
    outcome = env.releaser().release(env.build(), pipeline_execution_id="exec-1", job_definition_names=env.job_names)
    assert outcome.archived_package is True
    archived = env.s3.get_object(Bucket=env.bucket, Key=versioned_model_key(3))
    assert archived["Body"].read() == env.package and archived["ContentType"] == "application/zip"
    assert outcome.champion.package_key == versioned_model_key(3)
    again = env.releaser(clock=lambda: T0 + timedelta(minutes=1)).release(
        env.build(), pipeline_execution_id="exec-2", job_definition_names=env.job_names
    )
    assert again.archived_package is False


def test_trigger_version_id_that_names_another_upload_fails(env: Env) -> None:
    other = env.s3.put_object(Bucket=env.bucket, Key="model.zip", Body=make_package(3, salt="newer"))["VersionId"]

    with pytest.raises(ReleaseStateError, match=r"model.zip \(version .*\) has package sha256"):
        env.releaser().release(
            env.build(model_s3_version_id=other), pipeline_execution_id="e", job_definition_names=env.job_names
        )
    with pytest.raises(ReleaseStateError, match="does not exist"):
        env.releaser().release(
            env.build(model_s3_version_id="no-such-version"), pipeline_execution_id="e", job_definition_names=[]
        )
    _assert_nothing_written(env)


def test_unknown_job_definition_fails_before_any_write(env: Env) -> None:
    with pytest.raises(ReleaseStateError, match="no ACTIVE revision"):
        env.releaser().release(
            env.build(), pipeline_execution_id="exec-1", job_definition_names=[*env.job_names, "no-such-job-def"]
        )
    _assert_nothing_written(env)


def test_build_record_round_trip_and_rejections(tmp_path: Path, env: Env) -> None:
    record = env.build()
    path = tmp_path / "build-record.json"
    BuildRecordWriter().write(path, record)
    assert BuildRecordReader().read(path) == record
    assert record.pinned_app_image == f"{REGISTRY}/app@{APP_DIGEST}"

    with pytest.raises(ConfigurationError, match=r"app_image_uri tag .* must be '<git_sha>-m<model_version>'"):
        env.build(app_image_uri=f"{REGISTRY}/app:latest")
    with pytest.raises(ConfigurationError, match="jobs_image_uri tag"):
        env.build(jobs_image_uri=f"{REGISTRY}/jobs:{GIT_SHA}-m3")
    with pytest.raises(ConfigurationError, match="model_s3_version_id"):
        env.build(model_s3_version_id="null")
    with pytest.raises(ConfigurationError, match="git_sha"):
        env.build(git_sha="abc")
    with pytest.raises(ConfigurationError, match="app_image_digest"):
        env.build(app_image_digest="sha256:xyz")
    with pytest.raises(ConfigurationError, match="built_at"):
        env.build(built_at=datetime(2026, 1, 1))  # naive: the error under test

    raw = json.loads(path.read_text())
    raw["unexpected"] = 1
    path.write_text(json.dumps(raw))
    with pytest.raises(ReleaseError, match="unexpected"):
        BuildRecordReader().read(path)
    path.write_text("{not json")
    with pytest.raises(ReleaseError, match="not JSON"):
        BuildRecordReader().read(path)
    with pytest.raises(ReleaseError, match="no build record"):
        BuildRecordReader().read(tmp_path / "absent.json")


def test_settings_from_env() -> None:
    settings = ReleaseSettings.from_env(
        {
            "MODEL_BUCKET": "models-1",
            "PIPELINE_EXECUTION_ID": "e-1",
            "JOB_DEFINITION_NAMES": " monitor, inference ,,",
        }
    )
    assert settings.model_key == "model.zip"
    assert settings.job_definition_names == ("monitor", "inference")
    assert settings.alerts_topic_arn is None
    with pytest.raises(ConfigurationError, match="MODEL_BUCKET"):
        ReleaseSettings.from_env({"PIPELINE_EXECUTION_ID": "e"})
    with pytest.raises(ConfigurationError, match="PIPELINE_EXECUTION_ID"):
        ReleaseSettings.from_env({"MODEL_BUCKET": "models-1", "PIPELINE_EXECUTION_ID": "#{codepipeline.X}"})
    with pytest.raises(ConfigurationError, match="ALERTS_TOPIC_ARN"):
        ReleaseSettings.from_env({"MODEL_BUCKET": "models-1", "PIPELINE_EXECUTION_ID": "e", "ALERTS_TOPIC_ARN": "t"})
    with pytest.raises(ConfigurationError, match="JOB_DEFINITION_NAMES"):
        parse_names("ok,not ok")
