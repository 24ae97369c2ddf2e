"""Issue #16 item 4: one image promoted by digest, owned once.

Pulumi owns the task definition's shape (CPU, memory, environment, secrets, mounts); the pipeline owns
the image. Pulumi reads the image currently deployed to each service from the SSM parameter the pipeline
writes in the Release step (``release.contracts.deployed_image_parameter``), so a ``pulumi up`` after
any number of pipeline deploys keeps the deployed image, while a change in ``infra/`` reaches the service.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from infra.foundation.hardening import BOOTSTRAP_IMAGE
from release.contracts import deployed_image_parameter
from tools.plan.offline import OfflineRun, run_offline

SERVICE = "aws:ecs/service:Service"
TASK = "aws:ecs/taskDefinition:TaskDefinition"
DIGEST = "sha256:" + "ab" * 32
DEPLOYED = f"123456789012.dkr.ecr.us-east-1.amazonaws.com/registry-app-0a1b2c3@{DIGEST}"


def _image(run: OfflineRun, service: str) -> str:
    (container,) = json.loads(run.one(TASK, f"{service}-task").inputs["containerDefinitions"])
    return container["image"]


def test_service_follows_its_task_definition_no_blanket_ignore(stack: OfflineRun) -> None:
    """The service's task definition is no longer ignored: what Pulumi declares is what the service runs."""
    for service in stack.of_type(SERVICE):
        assert "taskDefinition" not in service.ignore_changes, service.name
        task = stack.one(TASK, service.name.replace("-service", "-task"))
        assert task.urn in service.property_dependencies["taskDefinition"]


def test_first_deploy_runs_the_bootstrap_image_and_creates_the_parameter(dev: OfflineRun) -> None:
    for service in ("stage", "prod"):
        parameter = dev.one("aws:ssm/parameter:Parameter", f"{service}-deployed-image")
        assert parameter.inputs["name"] == deployed_image_parameter("dev", service)
        # Its value shows as "[secret]" (the provider marks every Parameter value secret); the task
        # definition below reads it back through the data source.
        # The pipeline writes the value after each deploy; Pulumi never resets it.
        assert "value" in parameter.ignore_changes
        assert _image(dev, service) == BOOTSTRAP_IMAGE


def test_pulumi_up_after_pipeline_deploys_keeps_the_deployed_image() -> None:
    """Both services run what the pipeline last deployed (same digest: prod never rebuilds)."""
    parameters = {deployed_image_parameter("dev", s): DEPLOYED for s in ("stage", "prod")}
    run = run_offline("dev", ssm_parameters=parameters)
    for service in ("stage", "prod"):
        assert _image(run, service) == DEPLOYED
        (container,) = json.loads(run.one(TASK, f"{service}-task").inputs["containerDefinitions"])
        # The app image carries its own CMD; the bootstrap command is only for the bootstrap image.
        assert "command" not in container


def test_sizing_change_reaches_the_service_with_the_deployed_image_kept() -> None:
    parameters = {deployed_image_parameter("dev", "prod"): DEPLOYED}
    before = run_offline("dev", ssm_parameters=parameters)
    after = run_offline("dev", ssm_parameters=parameters,
                        overrides={"ml-delivery:taskCpu": 1024, "ml-delivery:taskMemory": 4096})  # fmt: skip
    old, new = before.one(TASK, "prod-task").inputs, after.one(TASK, "prod-task").inputs
    assert (old["cpu"], old["memory"]) == ("512", "1024")
    assert (new["cpu"], new["memory"]) == ("1024", "4096")
    assert _image(after, "prod") == DEPLOYED
    env = {e["name"]: e["value"] for e in json.loads(new["containerDefinitions"])[0]["environment"]}
    assert env["WORKERS"] == "1"
    service = after.one(SERVICE, "prod-service")
    assert "taskDefinition" not in service.ignore_changes


def test_a_tag_instead_of_a_digest_in_the_parameter_fails_with_the_reason() -> None:
    """Run in a child process: a program failing mid-run leaves Pulumi's process-wide runtime state behind,
    which would break the next offline run of this test worker."""
    name = deployed_image_parameter("dev", "stage")
    tagged = DEPLOYED.split("@", maxsplit=1)[0] + ":latest"
    code = f"from tools.plan.offline import run_offline; run_offline('dev', ssm_parameters={{{name!r}: {tagged!r}}})"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False,
                            cwd=Path(__file__).resolve().parents[2])  # fmt: skip
    assert result.returncode != 0
    assert "must be pinned by digest" in result.stderr and name in result.stderr and tagged in result.stderr


def test_old_task_definition_revisions_stay_registered_for_rollback(stack: OfflineRun) -> None:
    """ECS rolls back to the previous revision; Pulumi must not deregister it when it registers a new one."""
    for task in stack.of_type(TASK):
        assert task.inputs["skipDestroy"] is True


def test_stage_and_prod_deploy_the_one_artifact_the_one_build_produced(stack: OfflineRun) -> None:
    """Digest promotion: prod never rebuilds. Exactly one action outputs ImageDefinitions (the build, whose
    imagedefinitions.json names the image by digest: tests/pipeline/test_buildspec_run.py), and both ECS
    deploys read exactly that artifact."""
    from tests.infra.test_pipeline import stages

    actions = [a for stage in stages(stack).values() for a in stage]
    producers = [a["name"] for a in actions if "ImageDefinitions" in a.get("outputArtifacts", [])]
    assert producers == ["BuildAndPush"]
    deploys = [a for a in actions if a["provider"] == "ECS"]
    assert len(deploys) == 2 and all(a["inputArtifacts"] == ["ImageDefinitions"] for a in deploys)
