"""Issue #12 defects 4 and 5: the first release, done the way the README documents it, against moto.

The README's first release: upload a locally trained ``model.zip`` to the model key by hand (nothing writes
``models/<version>/model.zip``), the pipeline builds and deploys, and the Release step runs. Before it, the
Batch job definitions are Pulumi's revision 1 on the ``:bootstrap`` jobs image and the schedules are
DISABLED (created so by ``pulumi up``). After ``python -m release record`` (run as the buildspec runs it):
the package is archived under ``models/<version>/``, the record and champion exist, every job definition's
latest revision runs the built jobs image, and the schedules are ENABLED with everything else unchanged.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from contracts.bucket_layout import CHAMPION_KEY, versioned_model_key
from model_package import open_package
from tests.pipeline import packages
from tests.pipeline.test_release_cli import DIGEST, GIT_SHA, make_package, run

REGISTRY = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
SUBMIT_JOB = "arn:aws:scheduler:::aws-sdk:batch:submitJob"


@pytest.fixture
def first_release(moto_server: Any, tmp_path: Path) -> dict[str, Any]:
    endpoint = moto_server.endpoint_url
    s3 = boto3.client("s3", endpoint_url=endpoint)
    batch = boto3.client("batch", endpoint_url=endpoint)
    scheduler = boto3.client("scheduler", endpoint_url=endpoint, region_name="us-east-1")
    suffix = uuid.uuid4().hex[:10]
    bucket = f"models-first-{suffix}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    package = make_package(1)
    # README, "After the first pulumi up", step 3: aws s3 cp model.zip s3://<modelBucket>/model.zip
    version_id = s3.put_object(Bucket=bucket, Key="model.zip", Body=package)["VersionId"]
    names = [f"ml-delivery-t{suffix}-{job}" for job in ("drift", "retrain")]
    for name in names:
        batch.register_job_definition(
            jobDefinitionName=name,
            type="container",
            platformCapabilities=["FARGATE"],
            containerProperties={
                "image": f"{REGISTRY}/jobs:bootstrap",
                "command": ["monitor", "drift"],
                "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}],
                "executionRoleArn": "arn:aws:iam::123456789012:role/batch-exec",
            },
        )
    group = f"ml-delivery-t{suffix}-jobs"
    scheduler.create_schedule_group(Name=group)
    for job in ("drift", "retrain"):
        scheduler.create_schedule(
            Name=job,
            GroupName=group,
            ScheduleExpression="rate(1 day)",
            ScheduleExpressionTimezone="Europe/Berlin",
            Description=f"Submits the {job} job",
            FlexibleTimeWindow={"Mode": "OFF"},
            State="DISABLED",
            Target={
                "Arn": SUBMIT_JOB,
                "RoleArn": f"arn:aws:iam::123456789012:role/jobs-schedules-{job}-role",
                "Input": json.dumps({"JobDefinition": f"ml-delivery-t{suffix}-{job}"}),
                "RetryPolicy": {"MaximumEventAgeInSeconds": 3600, "MaximumRetryAttempts": 3},
            },
        )
    record = {
        "git_sha": GIT_SHA,
        "model_name": "churn",
        "model_version": 1,
        "model_sha256": open_package(package).sha256,
        "model_s3_version_id": version_id,
        "app_image_uri": f"{REGISTRY}/app:{GIT_SHA}-m1",
        "app_image_digest": DIGEST,
        "jobs_image_uri": f"{REGISTRY}/jobs:{GIT_SHA}",
        "jobs_image_digest": DIGEST,
        "built_at": "2026-03-01T00:00:00Z",
    }
    record_path = tmp_path / "BuildRecord" / "build-record.json"
    record_path.parent.mkdir()
    record_path.write_text(json.dumps(record))
    env = {
        "MODEL_BUCKET": bucket,
        "MODEL_KEY": "model.zip",
        "PIPELINE_EXECUTION_ID": "11111111-2222-3333-4444-555555555555",
        "JOB_DEFINITION_NAMES": ",".join(names),
        "SCHEDULE_NAMES": ",".join(f"{group}/{job}" for job in ("drift", "retrain")),
    }
    return {"s3": s3, "batch": batch, "scheduler": scheduler, "bucket": bucket, "package": package,
            "names": names, "group": group, "record": record_path, "env": env}  # fmt: skip


def test_first_release_from_a_hand_uploaded_model_zip(first_release: dict[str, Any], moto_server: Any) -> None:
    f = first_release
    result = run(["record", "--build-record", str(f["record"])], moto_server.endpoint_url, **f["env"])
    assert result.returncode == 0, result.stderr

    s3, bucket = f["s3"], f["bucket"]
    archived = s3.get_object(Bucket=bucket, Key=versioned_model_key(1))["Body"].read()
    assert archived == f["package"], "the release archives the package it released"
    champion = json.loads(s3.get_object(Bucket=bucket, Key=CHAMPION_KEY)["Body"].read())
    assert champion["package_key"] == versioned_model_key(1)

    pinned = f"{REGISTRY}/jobs@{DIGEST}"
    for name in f["names"]:
        revisions = f["batch"].describe_job_definitions(jobDefinitionName=name, status="ACTIVE")["jobDefinitions"]
        latest = max(revisions, key=lambda d: d["revision"])
        assert latest["containerProperties"]["image"] == pinned, name
        assert "bootstrap" not in latest["containerProperties"]["image"]

    for job in ("drift", "retrain"):
        schedule = f["scheduler"].get_schedule(Name=job, GroupName=f["group"])
        assert schedule["State"] == "ENABLED", job
        # Everything else is what pulumi up created (UpdateSchedule replaces the whole schedule).
        assert schedule["ScheduleExpression"] == "rate(1 day)"
        assert schedule["ScheduleExpressionTimezone"] == "Europe/Berlin"
        assert schedule["Description"] == f"Submits the {job} job"
        assert schedule["Target"]["RoleArn"].endswith(f"jobs-schedules-{job}-role")
        assert schedule["Target"]["RetryPolicy"] == {"MaximumEventAgeInSeconds": 3600, "MaximumRetryAttempts": 3}
        assert json.loads(schedule["Target"]["Input"])["JobDefinition"].endswith(job)

    # A re-run (e.g. the Release action retried) changes nothing and still succeeds.
    again = run(["record", "--build-record", str(f["record"])], moto_server.endpoint_url, **f["env"])
    assert again.returncode == 0, again.stderr
    for name in f["names"]:
        revisions = f["batch"].describe_job_definitions(jobDefinitionName=name, status="ACTIVE")["jobDefinitions"]
        assert len(revisions) == 2, "no redundant revision"


def test_an_archived_package_that_differs_still_stops_the_release(
    first_release: dict[str, Any], moto_server: Any
) -> None:
    f = first_release
    f["s3"].put_object(
        Bucket=f["bucket"], Key=versioned_model_key(1), Body=packages.make_package(1, git_sha=GIT_SHA, salt="other")
    )
    result = run(["record", "--build-record", str(f["record"])], moto_server.endpoint_url, **f["env"])
    assert result.returncode == 10
    assert "models/1/model.zip has package sha256" in result.stderr
    for job in ("drift", "retrain"):
        assert f["scheduler"].get_schedule(Name=job, GroupName=f["group"])["State"] == "DISABLED"


def test_a_schedule_that_does_not_exist_stops_the_release_before_any_write(
    first_release: dict[str, Any], moto_server: Any
) -> None:
    f = first_release
    env = {**f["env"], "SCHEDULE_NAMES": f"{f['group']}/drift,{f['group']}/no-such-schedule"}
    result = run(["record", "--build-record", str(f["record"])], moto_server.endpoint_url, **env)
    assert result.returncode == 10
    assert "no-such-schedule" in result.stderr and "does not exist" in result.stderr
    listing = f["s3"].list_objects_v2(Bucket=f["bucket"])
    assert sorted(o["Key"] for o in listing.get("Contents", [])) == ["model.zip"]


def test_schedule_names_are_validated(first_release: dict[str, Any], moto_server: Any) -> None:
    f = first_release
    env = {**f["env"], "SCHEDULE_NAMES": "just-a-name"}
    result = run(["record", "--build-record", str(f["record"])], moto_server.endpoint_url, **env)
    assert result.returncode == 8
    assert "SCHEDULE_NAMES" in result.stderr and "<group>/<name>" in result.stderr
