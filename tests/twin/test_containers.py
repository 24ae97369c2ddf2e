"""The container layer of the twin: the app image, built for real, runs as the plan's task definition says."""

from __future__ import annotations

import copy
import json
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.twin.conftest import PYTHON, churn_frame, records_of, say, shell
from twin.containers import Volumes, WorkloadError, run_service
from twin.plan import Plan
from twin.session import Twin
from twin.system import podman


def _deploy_action(twin: Twin, stage: str) -> dict:
    for candidate in twin.plan.pipeline()["stages"]:
        if candidate["name"] == stage:
            return candidate["actions"][0]["configuration"]
    raise AssertionError(f"no stage {stage}")


def test_pushed_digest_is_what_ecr_reports(twin: Twin, app_image: str, workspace: Path) -> None:
    """The docker shim's push lands in the local registry and moto's ECR reports the registry's digest."""
    repository, digest = app_image.split("@")
    tags = twin.aws.client("ecr").describe_images(repositoryName=repository.split("/", 1)[1])["imageDetails"]
    assert digest in {d["imageDigest"] for d in tags}
    request = urllib.request.Request(
        f"http://{twin.registry.address}/v2/{repository.split('/', 1)[1]}/manifests/{digest}",
        headers={
            "Accept": "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"
        },
        method="HEAD",
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert reply.headers["Docker-Content-Digest"] == digest


def test_app_runs_as_the_stage_task_definition_says(twin: Twin, app_image: str) -> None:
    """Read-only root, the image's user, /tmp as a root-owned 0755 bind mount (or the image's VOLUME
    content), the plan's environment and port: the app becomes healthy and answers /predict."""
    config = _deploy_action(twin, "DeployStage")
    task = run_service(
        twin.plan,
        config["ClusterName"],
        config["ServiceName"],
        [{"name": "app", "imageUri": app_image}],
        aws=twin.aws,
        registry=twin.registry.address,
    )
    try:
        for line in task.checks:
            say(f"stage task: {line}")
        inspect = json.loads(podman("inspect", task.name).stdout)[0]
        assert inspect["HostConfig"]["ReadonlyRootfs"] is True
        mounts = {m["Destination"]: m for m in inspect["Mounts"]}
        assert "/tmp" in mounts and mounts["/tmp"]["Type"] == "bind"
        records = records_of(churn_frame(50, seed=3), 5)
        request = urllib.request.Request(
            f"{task.url}/predict", data=json.dumps(records).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as reply:
            body = json.loads(reply.read())
        assert len(body["predictions"]) == 5
        assert all(0.0 <= p["probability"] <= 1.0 for p in body["predictions"])
    finally:
        task.stop()


def test_fargate_bind_mount_ownership_and_volume_copy(twin: Twin, tmp_path: Path) -> None:
    """An empty task volume is root:root 0755; a path the image declares with VOLUME gets the image's
    content and ownership copied in (ECS Developer Guide, "Use bind mounts with Amazon ECS")."""
    (tmp_path / "Dockerfile").write_text(
        "FROM python:3.11-slim-bookworm\n"
        "RUN mkdir -p /exported /plain && touch /exported/examplefile && chown -R 10001:10001 /exported\n"
        'VOLUME ["/exported"]\n'
    )
    tag = "localhost/twin-volume-probe:latest"
    podman("build", "-q", "-t", tag, str(tmp_path))
    volumes = Volumes()
    try:
        args = volumes.args(
            [{"name": "a"}, {"name": "b"}],
            [{"sourceVolume": "a", "containerPath": "/exported"}, {"sourceVolume": "b", "containerPath": "/plain"}],
            tag,
        )
        assert args == ["--volume", f"{volumes.made['a']}:/exported", "--volume", f"{volumes.made['b']}:/plain"]
        exported, plain = volumes.made["a"].stat(), volumes.made["b"].stat()
        assert (exported.st_uid, exported.st_gid) == (10001, 10001)
        assert (volumes.made["a"] / "examplefile").exists()
        assert (plain.st_uid, plain.st_gid, plain.st_mode & 0o777) == (0, 0, 0o755)
        assert not any(volumes.made["b"].iterdir())
        with pytest.raises(WorkloadError, match="names volume 'missing'"):
            volumes.args([], [{"sourceVolume": "missing", "containerPath": "/x"}], tag)
    finally:
        volumes.cleanup()
        podman("rmi", "--force", tag, check=False)


def test_shims_refuse_what_they_do_not_emulate(twin: Twin, workspace: Path) -> None:
    """The aws shim answers only `ecr get-login-password`; anything else fails loudly."""
    password = shell(twin, 'aws ecr get-login-password --region "$AWS_DEFAULT_REGION"', workspace).strip()
    assert password
    done = subprocess.run(
        ["bash", "-c", "aws s3 ls"], cwd=workspace, env=twin.shell_env(), capture_output=True, text=True, check=False
    )
    assert done.returncode == 2 and "only `aws ecr get-login-password`" in done.stderr
    assert PYTHON


def _with_health_check(plan_doc: dict, family_suffix: str, health: dict) -> Plan:
    doc = copy.deepcopy(plan_doc)
    for resource in doc["resources"]:
        if resource["type"] == "aws:ecs/taskDefinition:TaskDefinition" and resource["inputs"]["family"].endswith(
            family_suffix
        ):
            containers = json.loads(resource["inputs"]["containerDefinitions"])
            containers[0]["healthCheck"] = health
            resource["inputs"]["containerDefinitions"] = json.dumps(containers)
    return Plan(doc)


def test_container_health_check_is_run_as_declared(twin: Twin, plan_doc: dict, app_image: str) -> None:
    """A task definition healthCheck runs in the container (podman exec): a failing one fails the deploy
    after its retries, with the container's logs; a passing one is reported."""
    config = _deploy_action(twin, "DeployStage")
    definitions = [{"name": "app", "imageUri": app_image}]
    failing = _with_health_check(
        plan_doc, "-stage", {"command": ["CMD-SHELL", "test -e /nonexistent"], "interval": 1, "retries": 2}
    )
    with pytest.raises(WorkloadError, match="UNHEALTHY after 2 failed health checks"):
        run_service(
            failing,
            config["ClusterName"],
            config["ServiceName"],
            definitions,
            aws=twin.aws,
            registry=twin.registry.address,
        )
    passing = _with_health_check(
        plan_doc,
        "-stage",
        {"command": ["CMD", "python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8080/health')"],
         "interval": 2, "retries": 3, "startPeriod": 30},
    )  # fmt: skip
    task = run_service(
        passing, config["ClusterName"], config["ServiceName"], definitions, aws=twin.aws, registry=twin.registry.address
    )
    try:
        assert any(line.startswith("container healthCheck") for line in task.checks), task.checks
    finally:
        task.stop()
