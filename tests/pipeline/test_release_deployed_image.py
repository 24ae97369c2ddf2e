"""The Release step records what it deployed (SSM) and protects it from ECR expiry (keep/release tags).

Run as the buildspec runs them: ``python -m release deployed-image`` / ``image-tags`` in a subprocess against
moto (``AWS_ENDPOINT_URL``).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from contracts.exit_codes import ExitCode
from release.build_record import BuildRecordWriter, build_record
from release.contracts import deployed_image_parameter
from tests.pipeline.test_release_cli import GIT_SHA, run

ACCOUNT_REGISTRY = "123456789012.dkr.ecr.us-east-1.amazonaws.com"


@pytest.fixture
def key_arn(moto_server: Any) -> str:
    kms = boto3.client("kms", endpoint_url=moto_server.endpoint_url)
    return kms.create_key(Description="stack key")["KeyMetadata"]["Arn"]


def push_distinct(ecr: Any, repository: str, tag: str, content: str) -> str:
    """Push a manifest whose digest differs per ``content``; its digest."""
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": len(content),
                "digest": "sha256:" + hashlib.sha256(content.encode()).hexdigest(),
            },
            # moto derives the digest from the layer digests
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": 1,
                    "digest": "sha256:" + hashlib.sha256(f"layer {content}".encode()).hexdigest(),
                }
            ],
        }
    )
    image = ecr.put_image(repositoryName=repository, imageManifest=manifest, imageTag=tag)["image"]
    return image["imageId"]["imageDigest"]


def definitions(tmp_path: Path, uri: str) -> Path:
    path = tmp_path / "imagedefinitions.json"
    path.write_text(json.dumps([{"name": "app", "imageUri": uri}]))
    return path


def test_deployed_image_writes_both_services_as_secure_strings(tmp_path: Path, moto_server: Any, key_arn: str) -> None:
    stack = f"s{uuid.uuid4().hex[:8]}"
    image = f"{ACCOUNT_REGISTRY}/ml-delivery-app@sha256:{'e' * 64}"
    result = run(
        [
            "deployed-image",
            "--service",
            "stage",
            "--service",
            "prod",
            "--image-definitions",
            str(definitions(tmp_path, image)),
        ],
        moto_server.endpoint_url,
        STACK_NAME=stack,
        PARAMETER_KEY_ARN=key_arn,
    )
    assert result.returncode == 0, result.stderr
    ssm = boto3.client("ssm", endpoint_url=moto_server.endpoint_url)
    for service in ("stage", "prod"):
        name = deployed_image_parameter(stack, service)
        assert name in result.stdout
        parameter = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]
        assert parameter["Type"] == "SecureString"
        assert parameter["Value"] == image
        described = ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Values": [name]}])["Parameters"][0]
        assert described["KeyId"] == key_arn


@pytest.mark.parametrize(
    "uri",
    [
        f"{ACCOUNT_REGISTRY}/ml-delivery-app:abc-m7",  # a tag, not a digest
        f"public.ecr.aws/docker/library/python@sha256:{'e' * 64}",  # not the stack's ECR
    ],
)
def test_deployed_image_refuses_what_pulumi_would_refuse(
    tmp_path: Path, moto_server: Any, key_arn: str, uri: str
) -> None:
    stack = f"s{uuid.uuid4().hex[:8]}"
    result = run(
        ["deployed-image", "--service", "prod", "--image-definitions", str(definitions(tmp_path, uri))],
        moto_server.endpoint_url,
        STACK_NAME=stack,
        PARAMETER_KEY_ARN=key_arn,
    )
    assert result.returncode == ExitCode.CONFIG
    assert "@sha256:<64 hex>" in result.stderr and uri in result.stderr
    ssm = boto3.client("ssm", endpoint_url=moto_server.endpoint_url)
    with pytest.raises(ssm.exceptions.ParameterNotFound):
        ssm.get_parameter(Name=deployed_image_parameter(stack, "prod"))


def test_image_tags_move_keep_tags_and_add_the_release_tag(tmp_path: Path, moto_server: Any) -> None:
    ecr = boto3.client("ecr", endpoint_url=moto_server.endpoint_url)
    app_repo, jobs_repo = f"app-{uuid.uuid4().hex[:8]}", f"jobs-{uuid.uuid4().hex[:8]}"
    uris = {r: ecr.create_repository(repositoryName=r)["repository"]["repositoryUri"] for r in (app_repo, jobs_repo)}
    old_app = push_distinct(ecr, app_repo, "keep-prod", "previous")  # the image prod ran before this release
    app_digest = push_distinct(ecr, app_repo, f"{GIT_SHA}-m7", "candidate")
    jobs_digest = push_distinct(ecr, jobs_repo, GIT_SHA, "jobs")
    assert old_app != app_digest
    record = build_record(
        git_sha=GIT_SHA,
        model_name="churn",
        model_version=7,
        model_sha256="a" * 64,
        model_s3_version_id="v1",
        app_image_uri=f"{uris[app_repo]}:{GIT_SHA}-m7",
        app_image_digest=app_digest,
        jobs_image_uri=f"{uris[jobs_repo]}:{GIT_SHA}",
        jobs_image_digest=jobs_digest,
        built_at=datetime(2026, 12, 1, tzinfo=UTC),
    )
    BuildRecordWriter().write(tmp_path / "build-record.json", record)
    args = ["image-tags", "--build-record", str(tmp_path / "build-record.json"), "--at", "2026-12-01T13:05:09+00:00"]
    result = run(args, moto_server.endpoint_url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "release-20261201T130509Z"

    def tags(repository: str, tag: str) -> str:
        found = ecr.batch_get_image(repositoryName=repository, imageIds=[{"imageTag": tag}])["images"]
        return found[0]["imageId"]["imageDigest"]

    for tag in ("keep-stage", "keep-prod", "release-20261201T130509Z"):
        assert tags(app_repo, tag) == app_digest
    for tag in ("keep-batch", "release-20261201T130509Z"):
        assert tags(jobs_repo, tag) == jobs_digest
    # Running it again (a retried Release action) is not an error.
    assert run(args, moto_server.endpoint_url).returncode == 0
