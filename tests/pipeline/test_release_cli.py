"""``python -m release`` as the buildspecs run it: a subprocess, AWS through ``AWS_ENDPOINT_URL`` (moto)."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from packaging.requirements import Requirement

from contracts.bucket_layout import versioned_model_key
from contracts.exit_codes import ExitCode
from model_package import extract_package, open_package
from model_package.registry import ChampionPointer, ReleaseRecord, parse_record
from tests.pipeline import packages

ROOT = Path(__file__).resolve().parents[2]
GIT_SHA = "fedcba9876543210fedcba9876543210fedcba98"
DIGEST = "sha256:" + "d" * 64


def make_package(version: int) -> bytes:
    return packages.make_package(version, git_sha=GIT_SHA)


def run(args: list[str], endpoint: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "AWS_ENDPOINT_URL": endpoint, **env}
    return subprocess.run(
        [sys.executable, "-m", "release", *args],
        check=False,
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def ecr(moto_server: Any) -> Any:
    return boto3.client("ecr", endpoint_url=moto_server.endpoint_url)


def push(ecr: Any, repository: str, tag: str) -> str:
    manifest = json.dumps(
        {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json", "layers": []}
    )
    return ecr.put_image(repositoryName=repository, imageManifest=manifest, imageTag=tag)["image"]["imageId"][
        "imageDigest"
    ]


def test_model_info_prints_sourceable_exports(tmp_path: Path, moto_server: Any) -> None:
    data = make_package(7)
    directory = extract_package(open_package(data), tmp_path / "model")
    result = run(["model-info", str(directory)], moto_server.endpoint_url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "export MODEL_NAME=churn",
        "export MODEL_VERSION=7",
        f"export MODEL_SHA256={open_package(data).sha256}",
    ]

    (directory / "model.onnx").write_bytes(b"tampered")
    result = run(["model-info", str(directory)], moto_server.endpoint_url)
    assert result.returncode == ExitCode.INTEGRITY
    assert "sha256 of model.onnx" in result.stderr
    assert result.stdout == ""


def test_image_digest_reads_ecr(ecr: Any, moto_server: Any) -> None:
    repository = f"app-{uuid.uuid4().hex[:8]}"
    uri = ecr.create_repository(repositoryName=repository, imageTagMutability="IMMUTABLE")["repository"][
        "repositoryUri"
    ]
    digest = push(ecr, repository, "t1")

    found = run(["image-digest", f"{uri}:t1"], moto_server.endpoint_url)
    assert (found.returncode, found.stdout.strip()) == (0, digest)
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest)

    missing_ok = run(["image-digest", "--missing-ok", f"{uri}:t2"], moto_server.endpoint_url)
    assert (missing_ok.returncode, missing_ok.stdout) == (0, "\n")
    missing = run(["image-digest", f"{uri}:t2"], moto_server.endpoint_url)
    assert missing.returncode == ExitCode.IMAGE_NOT_FOUND
    assert "is not in ECR" in missing.stderr
    no_repo = run(["image-digest", "--missing-ok", f"{uri}-absent:t1"], moto_server.endpoint_url)
    assert no_repo.returncode == ExitCode.RELEASE_FAILED
    assert "does not exist" in no_repo.stderr
    bad = run(["image-digest", "not a reference"], moto_server.endpoint_url)
    assert bad.returncode == ExitCode.CONFIG


def test_imagedefinitions(tmp_path: Path, moto_server: Any) -> None:
    out = tmp_path / "imagedefinitions.json"
    image = f"123456789012.dkr.ecr.us-east-1.amazonaws.com/app@{DIGEST}"
    result = run(["imagedefinitions", "--container-name", "app", "--image", image, "--out", str(out)], "http://x")
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text()) == [{"name": "app", "imageUri": image}]

    tagged = run(
        ["imagedefinitions", "--container-name", "app", "--image", image.replace(f"@{DIGEST}", ":v1"), "--out", "x"],
        "http://x",
    )
    assert tagged.returncode == ExitCode.CONFIG
    assert "pinned" in tagged.stderr
    spaced = run(["imagedefinitions", "--container-name", "a b", "--image", image, "--out", "x"], "x")
    assert spaced.returncode == ExitCode.CONFIG


def test_build_record_cli_validates_before_writing(tmp_path: Path) -> None:
    model = extract_package(open_package(make_package(2)), tmp_path / "model")
    out = tmp_path / "build-record.json"
    registry = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
    args = [
        "build-record",
        "--out",
        str(out),
        "--model-dir",
        str(model),
        "--git-sha",
        GIT_SHA,
        "--model-s3-version-id",
        "v-123",
        "--app-image",
        f"{registry}/app:{GIT_SHA}-m2",
        "--app-image-digest",
        DIGEST,
        "--jobs-image",
        f"{registry}/jobs:{GIT_SHA}",
        "--jobs-image-digest",
        DIGEST,
        "--built-at",
        "2026-03-01T00:00:00+00:00",
    ]
    result = run(args, "http://x")
    assert result.returncode == 0, result.stderr
    record = json.loads(out.read_text())
    assert record["model_version"] == 2
    assert record["model_sha256"] == open_package(model).sha256
    assert record["built_at"] == "2026-03-01T00:00:00Z"

    out.unlink()
    wrong_tag = [a.replace(f"{GIT_SHA}-m2", f"{GIT_SHA}-m9") for a in args]
    result = run(wrong_tag, "http://x")
    assert result.returncode == ExitCode.CONFIG
    assert "app_image_uri tag" in result.stderr
    assert not out.exists(), "a malformed record must not be written"


@pytest.fixture
def release_env(moto_server: Any, tmp_path: Path) -> dict[str, Any]:
    endpoint = moto_server.endpoint_url
    s3 = boto3.client("s3", endpoint_url=endpoint)
    bucket = f"models-cli-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    package = make_package(5)
    version_id = s3.put_object(Bucket=bucket, Key="incoming/model.zip", Body=package)["VersionId"]
    s3.put_object(Bucket=bucket, Key=versioned_model_key(5), Body=package)
    registry = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
    record = {
        "git_sha": GIT_SHA,
        "model_name": "churn",
        "model_version": 5,
        "model_sha256": open_package(package).sha256,
        "model_s3_version_id": version_id,
        "app_image_uri": f"{registry}/app:{GIT_SHA}-m5",
        "app_image_digest": DIGEST,
        "jobs_image_uri": f"{registry}/jobs:{GIT_SHA}",
        "jobs_image_digest": DIGEST,
        "built_at": "2026-03-01T00:00:00Z",
    }
    record_path = tmp_path / "BuildRecord" / "build-record.json"
    record_path.parent.mkdir()
    record_path.write_text(json.dumps(record))
    sns = boto3.client("sns", endpoint_url=endpoint)
    sqs = boto3.client("sqs", endpoint_url=endpoint)
    topic = sns.create_topic(Name=f"alerts-{uuid.uuid4().hex[:8]}")["TopicArn"]
    queue_url = sqs.create_queue(QueueName=f"alerts-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
    env = {
        "MODEL_BUCKET": bucket,
        "MODEL_KEY": "incoming/model.zip",
        "PIPELINE_EXECUTION_ID": "11111111-2222-3333-4444-555555555555",
        "JOB_DEFINITION_NAMES": "",
        "ALERTS_TOPIC_ARN": topic,
    }
    return {"s3": s3, "sqs": sqs, "queue": queue_url, "bucket": bucket, "record": record_path, "env": env}


def test_record_cli_writes_a_record_that_reads_back(release_env: dict[str, Any], moto_server: Any) -> None:
    result = run(
        ["record", "--build-record", str(release_env["record"])], moto_server.endpoint_url, **release_env["env"]
    )
    assert result.returncode == 0, result.stderr
    s3, bucket = release_env["s3"], release_env["bucket"]
    key = result.stdout.strip().removeprefix(f"s3://{bucket}/")
    assert re.fullmatch(rf"releases/\d{{8}}T\d{{6}}Z-{GIT_SHA[:12]}\.json", key)
    record = parse_record(ReleaseRecord, s3.get_object(Bucket=bucket, Key=key)["Body"].read(), key)
    assert record.pipeline_execution_id == "11111111-2222-3333-4444-555555555555"
    assert record.model_version == 5
    champion = parse_record(ChampionPointer, s3.get_object(Bucket=bucket, Key="champion.json")["Body"].read(), "c")
    assert (champion.release_key, champion.package_key) == (key, "models/5/model.zip")
    messages = release_env["sqs"].receive_message(QueueUrl=release_env["queue"], WaitTimeSeconds=0)
    assert messages.get("Messages", []) == [], "a successful release raises no alert"


def test_record_cli_failure_exits_non_zero_and_alerts(release_env: dict[str, Any], moto_server: Any) -> None:
    s3, bucket = release_env["s3"], release_env["bucket"]
    other = packages.make_package(5, git_sha=GIT_SHA, salt="another build")
    s3.put_object(Bucket=bucket, Key=versioned_model_key(5), Body=other)
    result = run(
        ["record", "--build-record", str(release_env["record"])], moto_server.endpoint_url, **release_env["env"]
    )

    assert result.returncode == ExitCode.RELEASE_STATE
    assert "models/5/model.zip has package sha256" in result.stderr
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="releases/")
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="champion.json")
    messages = release_env["sqs"].receive_message(QueueUrl=release_env["queue"], WaitTimeSeconds=5)["Messages"]
    assert len(messages) == 1
    assert "models/5/model.zip has package sha256" in messages[0]["Body"]
    assert "Where to look: CodePipeline execution 11111111-2222-3333-4444-555555555555" in messages[0]["Body"]


def test_record_cli_configuration_error(release_env: dict[str, Any], moto_server: Any) -> None:
    env = {**release_env["env"], "MODEL_BUCKET": ""}
    result = run(["record", "--build-record", str(release_env["record"])], moto_server.endpoint_url, **env)
    assert result.returncode == ExitCode.CONFIG
    assert "MODEL_BUCKET" in result.stderr


def _imports(tree: ast.AST) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names += [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
    return names


def _module_level(tree: ast.Module) -> ast.Module:
    """The statements that run at import (not function bodies, not ``if TYPE_CHECKING``)."""
    body = [n for n in tree.body if not (isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test))]
    return ast.Module(body=[n for n in body if not isinstance(n, ast.FunctionDef | ast.ClassDef)], type_ignores=[])


def _third_party_imports(package: str) -> set[str]:
    """Top-level third-party modules ``package`` imports anywhere, plus those imported at module level by the
    first-party modules it reaches (transitively)."""
    first_party = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    found: set[str] = set()
    seen: set[Path] = set()
    pending = [(path, True) for path in (ROOT / package).glob("*.py")]
    while pending:
        path, whole = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        tree = ast.parse(path.read_text())
        for name in _imports(tree if whole else _module_level(tree)):
            top = name.split(".")[0]
            if top in first_party:
                parts = name.split(".")
                for depth in range(1, len(parts) + 1):
                    base = ROOT.joinpath(*parts[:depth])
                    for candidate in (base / "__init__.py", base.with_suffix(".py")):
                        if candidate.exists():
                            pending.append((candidate, top == package))
            elif top not in sys.stdlib_module_names and top != "__future__":
                found.add(top)
    return found


def test_release_requirements_pin_the_whole_closure_at_dev_lock_versions() -> None:
    def pins(path: Path) -> dict[str, str]:
        found = {}
        for raw in path.read_text().splitlines():
            line = raw.split("#", 1)[0].strip()
            if "==" in line:
                name, version = line.split("==", 1)
                found[Requirement(name).name.lower().replace("_", "-")] = version.strip()
        return found

    release, lock = pins(ROOT / "release" / "requirements.txt"), pins(ROOT / "requirements" / "dev.lock")
    assert {name: lock.get(name) for name in release} == release

    # The roots are what the release code really imports (the Release CodeBuild runs it in a venv holding only
    # this file): every third-party import in release/, and the module-level ones of the first-party modules
    # it reaches. A hard-coded root list missed pydantic-settings when contracts/ began to need it, and only
    # the twin's RecordRelease (ModuleNotFoundError) noticed.
    distributions = importlib.metadata.packages_distributions()
    roots = sorted({dist for module in _third_party_imports("release") for dist in distributions[module]})
    assert {"boto3", "pydantic", "pydantic-settings"} <= {name.lower() for name in roots}
    closure, pending = set(), list(roots)
    while pending:
        name = pending.pop().lower().replace("_", "-")
        if name in closure:
            continue
        closure.add(name)
        for spec in importlib.metadata.requires(name) or []:
            requirement = Requirement(spec)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    assert closure == set(release), (
        "release/requirements.txt is installed with --no-deps: it must list every dependency"
    )
