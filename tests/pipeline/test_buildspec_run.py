"""Runs buildspec.yml's commands the way CodeBuild does, with fakes for docker/aws/make, against moto ECR.

CodeBuild (buildspec 0.2) runs every command of every phase in order in one bash shell, so
variables carry over, and stops at the first failing command of a phase whose ``on-failure`` is
ABORT. This harness does the same in a sandbox copy of the repo's Python packages. ``docker`` is
a fake that records builds and pushes images to the moto ECR repository (a pushed image there is
what ``python -m release image-digest`` reads back), so the test proves the shell wiring: tags,
digests, the skip of an existing jobs image, ``imagedefinitions.json`` and the build record.
The real ``make test`` and ``python -m retrain verify`` are replaced by recorders; both are
tested where they live.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from contracts.exit_codes import ExitCode
from infra.lib.images import BUILDKIT_IMAGE, PYTHON_BASE_IMAGE
from infra.pipeline.registry import CACHE_TAG
from model_package import extract_package, open_package
from release.contracts import deployed_image_parameter
from tests.pipeline import packages

ROOT = Path(__file__).resolve().parents[2]
PHASES = ("install", "pre_build", "build", "post_build")
GIT_SHA = "89abcdef0123456789abcdef0123456789abcdef"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="the buildspec's shell is bash")

FAKE_DOCKER = r"""
import hashlib, json, os, re, sys
from pathlib import Path
import boto3

state_path = Path(os.environ["FAKE_STATE"])
state = json.loads(state_path.read_text()) if state_path.exists() else {"local": {}, "registry": {}}
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(["docker", *sys.argv[1:]]) + "\n")
args = sys.argv[1:]
command = args.pop(0)

def save():
    state_path.write_text(json.dumps(state))

if command == "login":
    if not sys.stdin.read().strip() or "--password-stdin" not in args:
        sys.exit("docker login: no password on stdin")
elif command == "buildx" and args[0] == "create":
    if "--driver" not in args or not any(a.startswith("image=") for a in args):
        sys.exit("fake docker buildx create: expects --driver and --driver-opt image=...")
elif command == "build" or (command == "buildx" and args.pop(0) == "build"):
    options = {"--label": {}, "--build-arg": {}, "--cache-from": [], "--cache-to": []}
    tag = dockerfile = None
    while len(args) > 1:
        flag = args.pop(0)
        if flag in ("--label", "--build-arg"):
            key, _, value = args.pop(0).partition("=")
            options[flag][key] = value
        elif flag == "--tag":
            tag = args.pop(0)
        elif flag == "--file":
            dockerfile = args.pop(0)
        elif flag in ("--cache-from", "--cache-to"):
            options[flag].append(args.pop(0))
        elif flag == "--load":
            pass
        else:
            sys.exit(f"fake docker build: unexpected flag {flag}")
    context = Path(args[0])
    if not (context / dockerfile).is_file():
        sys.exit(f"docker build: {dockerfile} not found in context {context}")
    model_dir = options["--build-arg"].get("MODEL_SRC")
    if model_dir is not None and not (context / model_dir / "manifest.json").is_file():
        sys.exit(f"docker build: MODEL_SRC={model_dir} has no manifest.json in the context")
    state["local"][tag] = {"labels": options["--label"], "file": dockerfile, "build_args": options["--build-arg"],
                           "cache": [options["--cache-from"], options["--cache-to"]]}
    save()
elif command == "push":
    image = args[0]
    if image not in state["local"]:
        sys.exit(f"docker push: no local image {image}")
    repository_uri, tag = image.rsplit(":", 1)
    layer = "sha256:" + hashlib.sha256(json.dumps([image, state["local"][image]]).encode()).hexdigest()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 1, "digest": layer}],
    }
    ecr = boto3.client("ecr")
    try:
        ecr.put_image(repositoryName=repository_uri.split("/", 1)[1], imageManifest=json.dumps(manifest), imageTag=tag)
    except Exception as exc:
        sys.exit(f"docker push: {exc}")
    state["registry"][image] = state["local"][image]
    save()
elif command == "pull":
    if args[0] not in state["registry"]:
        sys.exit(f"docker pull: {args[0]} not found")
    state["local"][args[0]] = state["registry"][args[0]]
    save()
elif command == "inspect":
    label = re.search(r'index \.Config\.Labels "([^"]+)"', args[1]).group(1)
    print(state["local"][args[2]]["labels"].get(label, "<no value>"))
else:
    sys.exit(f"fake docker: unsupported command {command}")
"""

RECORDER = r"""
import json, os, sys
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps([os.path.basename(sys.argv[0]), *sys.argv[1:]]) + "\n")
if os.path.basename(sys.argv[0]) == "aws":
    if sys.argv[1:3] != ["ecr", "get-login-password"]:
        sys.exit("fake aws: only 'ecr get-login-password' is expected")
    print("fake-ecr-token")
if os.path.basename(sys.argv[0]) == "make" and sys.argv[1:] == ["test"]:
    sys.exit(int(os.environ.get("FAKE_TEST_EXIT", "0")))  # the suite's result, as the test wants it
"""

FAKE_RETRAIN = r"""
import json, os, sys
from pathlib import Path
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(["retrain", *sys.argv[1:]]) + "\n")
if sys.argv[1:2] != ["verify"] or not (Path(sys.argv[2]) / "manifest.json").is_file():
    sys.exit(2)
"""


def make_package(version: int, salt: str = "") -> bytes:
    return packages.make_package(version, git_sha=GIT_SHA, salt=salt)


@dataclass
class BuildResult:
    returncode: int
    failed_at: str | None
    output: str
    env: dict[str, str]
    calls: list[list[str]] = field(default_factory=list)

    def calls_of(self, tool: str, command: str | None = None) -> list[list[str]]:
        return [c for c in self.calls if c[0] == tool and (command is None or c[1] == command)]

    def image_builds(self) -> list[list[str]]:
        """``docker buildx build`` calls (BuildKit with the ECR registry cache)."""
        return [c for c in self.calls if c[:3] == ["docker", "buildx", "build"]]


def run_buildspec(
    spec: dict[str, Any], env: dict[str, str], work: Path, phases: tuple[str, ...] = PHASES
) -> BuildResult:
    """CodeBuild's phase semantics for these buildspecs: one shell, stop at the first failing command."""
    lines = ['cd "$CODEBUILD_SRC_DIR"']
    for name, value in spec["env"].get("variables", {}).items():
        lines.append(f'[ -n "${{{name}+x}}" ] || export {name}={json.dumps(str(value))}')
    for phase in phases:
        for index, command in enumerate(spec["phases"].get(phase, {}).get("commands", [])):
            lines.append(f"echo {phase}:{index} > {work / 'mark'}")
            lines.append(command)
            lines.append("rc=$?; [ $rc -eq 0 ] || exit $rc")
    lines.append(f"echo done > {work / 'mark'}")
    lines.append(f"env -0 > {work / 'env.out'}")
    script = work / "build.sh"
    script.write_text("\n".join(lines) + "\n")
    result = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=240, check=False)
    mark = (work / "mark").read_text().strip()
    env_out = work / "env.out"
    final_env = (
        dict(item.split("=", 1) for item in env_out.read_text().split("\0") if "=" in item) if env_out.exists() else {}
    )
    calls = [json.loads(line) for line in (work / "calls.log").read_text().splitlines()]
    return BuildResult(
        result.returncode, None if mark == "done" else mark, result.stdout + result.stderr, final_env, calls
    )


@dataclass
class Sandbox:
    root: Path
    env: dict[str, str]
    ecr: Any
    app_repo: str
    jobs_repo: str
    runs: int = 0

    def build(self, package: bytes, *, tamper: Callable[[Path], None] | None = None) -> BuildResult:
        self.runs += 1
        work = self.root / f"run{self.runs}"
        work.mkdir()
        (work / "calls.log").touch()
        model_dir = extract_package(open_package(package), work / "ModelSource")
        if tamper is not None:
            tamper(model_dir)
        env = {
            **self.env,
            "CODEBUILD_SRC_DIR_ModelSource": str(model_dir),
            "GIT_SHA": GIT_SHA,
            "FAKE_LOG": str(work / "calls.log"),
        }
        spec = yaml.safe_load((ROOT / "buildspec.yml").read_text())
        return run_buildspec(spec, env, work)

    @staticmethod
    def calls_of_docker_build(result: BuildResult) -> list[list[str]]:
        return [c for c in result.calls if c[0] == "docker" and "build" in c[1:3]]

    def tags(self, repository_uri: str) -> dict[str, str]:
        name = repository_uri.split("/", 1)[1]
        images = self.ecr.describe_images(repositoryName=name)["imageDetails"]
        return {tag: image["imageDigest"] for image in images for tag in image.get("imageTags", [])}


@pytest.fixture
def sandbox(tmp_path: Path, moto_server: Any) -> Sandbox:
    src = tmp_path / "src"
    src.mkdir()
    # jobs_common: release/ledger.py reads the Evaluate action's contract (jobs_common/evaluation_contract.py).
    for package in ("contracts", "release", "jobs_common", "model_package", "alerting"):
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "buildspec.yml", src / "buildspec.yml")
    (src / "retrain").mkdir()
    (src / "retrain" / "__init__.py").write_text("")
    (src / "retrain" / "__main__.py").write_text(FAKE_RETRAIN)
    (src / "docker").mkdir()
    for name in ("app", "jobs"):
        (src / "docker" / f"{name}.Dockerfile").write_text("FROM scratch\n")
    (src / ".venv").symlink_to(Path(sys.prefix))  # what `make venv` would have created

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool, body in {"docker": FAKE_DOCKER, "aws": RECORDER, "make": RECORDER, "apt-get": RECORDER}.items():
        path = bin_dir / tool
        path.write_text(f"#!{sys.executable}\n{textwrap.dedent(body)}")
        path.chmod(0o755)

    ecr = boto3.client("ecr", endpoint_url=moto_server.endpoint_url)
    suffix = uuid.uuid4().hex[:8]
    repos = [
        ecr.create_repository(repositoryName=f"{name}-{suffix}", imageTagMutability="IMMUTABLE")["repository"][
            "repositoryUri"
        ]
        for name in ("app", "jobs")
    ]
    keep = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_CONFIG_FILE")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    env.update(
        {
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "HOME": str(tmp_path),
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_ENDPOINT_URL": moto_server.endpoint_url,
            "CODEBUILD_SRC_DIR": str(src),
            "CODEBUILD_BUILD_SUCCEEDING": "1",
            "APP_REPOSITORY_URI": repos[0],
            "JOBS_REPOSITORY_URI": repos[1],
            "AWS_ACCOUNT_ID": "123456789012",
            "MODEL_BUCKET": "models",
            "MODEL_KEY": "model.zip",
            "MODEL_S3_VERSION_ID": "3sL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY",
            "PYTHON_IMAGE": PYTHON_BASE_IMAGE,
            "BUILDKIT_IMAGE": BUILDKIT_IMAGE,
            "BUILD_CACHE_TAG": CACHE_TAG,
            "FAKE_STATE": str(tmp_path / "docker-state.json"),
        }
    )
    artifacts = f"artifacts-{suffix}"
    boto3.client("s3", endpoint_url=moto_server.endpoint_url).create_bucket(Bucket=artifacts)
    env["ARTIFACT_BUCKET"] = artifacts
    return Sandbox(tmp_path, env, ecr, repos[0], repos[1])


def test_full_build_pushes_pinned_images_and_writes_the_records(sandbox: Sandbox) -> None:
    package = make_package(4)
    result = sandbox.build(package)
    assert result.returncode == 0, result.output
    assert result.failed_at is None

    sha256 = open_package(package).sha256
    app_tags, jobs_tags = sandbox.tags(sandbox.app_repo), sandbox.tags(sandbox.jobs_repo)
    assert list(app_tags) == [f"{GIT_SHA}-m4"], "exactly one unique app tag, never latest"
    assert list(jobs_tags) == [GIT_SHA]
    app_digest, jobs_digest = app_tags[f"{GIT_SHA}-m4"], jobs_tags[GIT_SHA]
    assert app_digest != jobs_digest

    src = sandbox.root / "src"
    definitions = json.loads((src / "imagedefinitions.json").read_text())
    assert definitions == [{"name": "app", "imageUri": f"{sandbox.app_repo}@{app_digest}"}]

    record = json.loads((src / "build-record.json").read_text())
    assert record == {
        "git_sha": GIT_SHA,
        "model_name": "churn",
        "model_version": 4,
        "model_sha256": sha256,
        "model_s3_version_id": "3sL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY",
        "app_image_uri": f"{sandbox.app_repo}:{GIT_SHA}-m4",
        "app_image_digest": app_digest,
        "jobs_image_uri": f"{sandbox.jobs_repo}:{GIT_SHA}",
        "jobs_image_digest": jobs_digest,
        "built_at": record["built_at"],
    }

    exported = {
        name: result.env.get(name)
        for name in ("GIT_SHA", "MODEL_VERSION", "MODEL_SHA256", "APP_IMAGE_URI", "JOBS_IMAGE_URI")
    }
    assert exported == {
        "GIT_SHA": GIT_SHA,
        "MODEL_VERSION": "4",
        "MODEL_SHA256": sha256,
        "APP_IMAGE_URI": f"{sandbox.app_repo}:{GIT_SHA}-m4",
        "JOBS_IMAGE_URI": f"{sandbox.jobs_repo}:{GIT_SHA}",
    }

    # Order: tests and model verification before login, build and push.
    tools = [" ".join(c[:3] if c[:2] == ["docker", "buildx"] else c[:2]) for c in result.calls]
    assert tools.index("make test") < tools.index("retrain verify") < tools.index("docker login")
    assert tools.index("docker login") < tools.index("docker buildx create") < tools.index("docker buildx build")
    assert tools.index("docker buildx build") < tools.index("docker push")
    app_build = next(c for c in result.image_builds() if "docker/app.Dockerfile" in c)
    assert "MODEL_SRC=build/model" in app_build
    assert f"ml-delivery.model-sha256={sha256}" in app_build
    assert open_package(src / "build" / "model").sha256 == sha256, "the model in the build context is the source's"


def test_images_build_on_the_pinned_base_with_the_ecr_registry_cache(sandbox: Sandbox) -> None:
    """Issue #16 item 8: BuildKit (buildx, a named BuildKit image: no Docker Hub) imports and exports a registry
    cache per repository in the form ECR accepts; both images get the digest-pinned base as a build arg."""
    result = sandbox.build(make_package(4))
    assert result.returncode == 0, result.output
    (create,) = [c for c in result.calls if c[:3] == ["docker", "buildx", "create"]]
    assert f"image={BUILDKIT_IMAGE}" in create and "docker-container" in create
    builds = {next(a for a in c if a.endswith(".Dockerfile")): c for c in result.image_builds()}
    assert set(builds) == {"docker/app.Dockerfile", "docker/jobs.Dockerfile"}
    for dockerfile, call in builds.items():
        repository = sandbox.app_repo if "app" in dockerfile else sandbox.jobs_repo
        cache = f"type=registry,ref={repository}:{CACHE_TAG}"
        assert call[call.index("--cache-from") + 1] == cache
        assert call[call.index("--cache-to") + 1] == f"{cache},mode=max,image-manifest=true,oci-mediatypes=true"
        assert f"PYTHON_IMAGE={PYTHON_BASE_IMAGE}" in call and "--load" in call


def test_model_only_change_reuses_the_jobs_image(sandbox: Sandbox) -> None:
    first = sandbox.build(make_package(4))
    assert first.returncode == 0, first.output
    jobs_digest = sandbox.tags(sandbox.jobs_repo)[GIT_SHA]

    second = sandbox.build(make_package(5, salt="retrained"))
    assert second.returncode == 0, second.output
    assert not [c for c in second.image_builds() if "docker/jobs.Dockerfile" in c]
    assert [c[2] for c in second.calls_of("docker", "push")] == [f"{sandbox.app_repo}:{GIT_SHA}-m5"]
    assert set(sandbox.tags(sandbox.app_repo)) == {f"{GIT_SHA}-m4", f"{GIT_SHA}-m5"}
    record = json.loads((sandbox.root / "src" / "build-record.json").read_text())
    assert record["jobs_image_digest"] == jobs_digest
    assert record["model_version"] == 5


def test_rerun_reuses_both_images_but_a_reused_version_with_other_bytes_fails(sandbox: Sandbox) -> None:
    package = make_package(4)
    assert sandbox.build(package).returncode == 0
    again = sandbox.build(package)
    assert again.returncode == 0, again.output
    assert again.image_builds() == []
    assert again.calls_of("docker", "push") == []
    assert again.calls_of("docker", "pull"), "an existing app image is pulled to check which model it carries"

    imposter = sandbox.build(make_package(4, salt="different bytes, same version"))
    assert imposter.returncode != 0
    assert imposter.failed_at is not None
    assert imposter.failed_at.startswith("build:")
    assert "carries a different model" in imposter.output
    assert imposter.calls_of("docker", "push") == []


def test_tampered_model_fails_before_anything_is_built(sandbox: Sandbox) -> None:
    def tamper(model_dir: Path) -> None:
        # The fake retrain only checks a manifest is there; the build's own model-info must catch this.
        (model_dir / "model.onnx").write_bytes(b"tampered")

    result = sandbox.build(make_package(4), tamper=tamper)
    assert result.returncode == ExitCode.INTEGRITY, result.output
    assert result.failed_at is not None
    assert result.failed_at.startswith("pre_build:")
    assert result.image_builds() == []
    assert result.calls_of("docker", "push") == []
    assert sandbox.tags(sandbox.app_repo) == {}
    assert not (sandbox.root / "src" / "build-record.json").exists()


def test_missing_model_version_id_stops_the_build(sandbox: Sandbox) -> None:
    sandbox.env["MODEL_S3_VERSION_ID"] = ""
    result = sandbox.build(make_package(4))
    assert result.returncode != 0
    assert result.failed_at == "pre_build:3"
    assert "MODEL_S3_VERSION_ID" in result.output
    assert result.calls_of("make", "test") == []


def test_build_then_release_end_to_end(sandbox: Sandbox, moto_server: Any) -> None:
    """The Build action's record, handed to release/buildspec.yml, becomes a release record in S3."""
    s3 = boto3.client("s3", endpoint_url=moto_server.endpoint_url)
    batch = boto3.client("batch", endpoint_url=moto_server.endpoint_url)
    bucket = f"models-e2e-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    package = make_package(6)
    version_id = s3.put_object(Bucket=bucket, Key="model.zip", Body=package)["VersionId"]
    s3.put_object(Bucket=bucket, Key="models/6/model.zip", Body=package)
    job_name = f"inference-{uuid.uuid4().hex[:8]}"
    batch.register_job_definition(
        jobDefinitionName=job_name,
        type="container",
        containerProperties={"image": "placeholder:1", "vcpus": 1, "memory": 2048, "command": ["python", "-m", "x"]},
    )
    sandbox.env["MODEL_S3_VERSION_ID"] = version_id
    built = sandbox.build(package)
    assert built.returncode == 0, built.output

    work = sandbox.root / "release-run"
    work.mkdir()
    (work / "calls.log").touch()
    artifact = work / "BuildRecord"
    artifact.mkdir()
    shutil.copy(sandbox.root / "src" / "build-record.json", artifact / "build-record.json")
    env = {
        **sandbox.env,
        # What the install phase's venv provides (it is not run here: it would pip install).
        "PATH": f"{Path(sys.executable).parent}:{sandbox.env['PATH']}",
        "CODEBUILD_SRC_DIR_BuildRecord": str(artifact),
        "FAKE_LOG": str(work / "calls.log"),
        "MODEL_BUCKET": bucket,
        "MODEL_KEY": "model.zip",
        "PIPELINE_EXECUTION_ID": "exec-e2e",
        "JOB_DEFINITION_NAMES": job_name,
        "STACK_NAME": f"e2e{uuid.uuid4().hex[:6]}",
        "PARAMETER_KEY_ARN": boto3.client("kms", endpoint_url=moto_server.endpoint_url).create_key()["KeyMetadata"][
            "Arn"
        ],
    }
    spec = yaml.safe_load((ROOT / "release" / "buildspec.yml").read_text())
    released = run_buildspec(spec, env, work, phases=("build",))
    assert released.returncode == 0, released.output

    record_keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="releases/")["Contents"]]
    assert len(record_keys) == 1
    record = json.loads(s3.get_object(Bucket=bucket, Key=record_keys[0])["Body"].read())
    build_record = json.loads((artifact / "build-record.json").read_text())
    assert record["git_sha"] == GIT_SHA
    assert record["model_s3_version_id"] == version_id
    assert record["model_sha256"] == open_package(package).sha256
    assert record["image_digest"] == build_record["app_image_digest"]
    assert record["pipeline_execution_id"] == "exec-e2e"
    champion = json.loads(s3.get_object(Bucket=bucket, Key="champion.json")["Body"].read())
    assert champion["release_key"] == record_keys[0]
    latest = max(
        batch.describe_job_definitions(jobDefinitionName=job_name, status="ACTIVE")["jobDefinitions"],
        key=lambda d: d["revision"],
    )
    assert latest["containerProperties"]["image"] == f"{sandbox.jobs_repo}@{build_record['jobs_image_digest']}"
    # What runs now, for Pulumi: both services' deployed-image parameters hold the app image by digest.
    ssm = boto3.client("ssm", endpoint_url=moto_server.endpoint_url)
    pinned = f"{build_record['app_image_uri'].rsplit(':', 1)[0]}@{build_record['app_image_digest']}"
    for service in ("stage", "prod"):
        name = deployed_image_parameter(env["STACK_NAME"], service)
        assert ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"] == pinned
    # ...and the images carry the tags the ECR lifecycle keeps.
    ecr = boto3.client("ecr", endpoint_url=moto_server.endpoint_url)

    def tags_of(uri: str, digest: str) -> set[str]:
        image = ecr.describe_images(repositoryName=uri.split("/", 1)[1], imageIds=[{"imageDigest": digest}])
        return set(image["imageDetails"][0]["imageTags"])

    app_tags = tags_of(sandbox.app_repo, build_record["app_image_digest"])
    assert {"keep-stage", "keep-prod"} <= app_tags and "keep-batch" not in app_tags
    jobs_tags = tags_of(sandbox.jobs_repo, build_record["jobs_image_digest"])
    assert "keep-batch" in jobs_tags
    (release_tag,) = [t for t in app_tags if t.startswith("release-")]
    assert release_tag in jobs_tags


def test_the_suite_runs_once_per_git_sha(sandbox: Sandbox, moto_server: Any) -> None:
    """Issue #16 item 8: a model-only change (same commit) skips `make test`; the record is per sha."""
    s3 = boto3.client("s3", endpoint_url=moto_server.endpoint_url)
    first = sandbox.build(make_package(4))
    assert first.returncode == 0, first.output
    assert ["make", "test"] in first.calls
    record = json.loads(s3.get_object(Bucket=sandbox.env["ARTIFACT_BUCKET"], Key=f"test-passed/{GIT_SHA}.json")
                        ["Body"].read())  # fmt: skip
    assert record["git_sha"] == GIT_SHA and record["result"] == "passed"
    second = sandbox.build(make_package(5, salt="retrained"))
    assert second.returncode == 0, second.output
    assert ["make", "test"] not in second.calls
    assert f"the test suite already passed for {GIT_SHA}" in second.output


def test_a_failing_suite_stops_the_build_and_records_nothing(sandbox: Sandbox, moto_server: Any) -> None:
    s3 = boto3.client("s3", endpoint_url=moto_server.endpoint_url)
    sandbox.env["FAKE_TEST_EXIT"] = "2"
    result = sandbox.build(make_package(4))
    assert result.returncode != 0 and result.failed_at is not None and result.failed_at.startswith("pre_build:")
    assert not sandbox.calls_of_docker_build(result)
    listing = s3.list_objects_v2(Bucket=sandbox.env["ARTIFACT_BUCKET"], Prefix="test-passed/")
    assert listing.get("KeyCount", 0) == 0
    # Fixed suite, same sha: it runs again (nothing was recorded), passes, and is recorded.
    sandbox.env["FAKE_TEST_EXIT"] = "0"
    again = sandbox.build(make_package(4))
    assert again.returncode == 0 and ["make", "test"] in again.calls
