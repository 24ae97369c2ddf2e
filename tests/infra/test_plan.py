"""The offline plan: documented JSON shape, every dependency resolvable, secrets masked, CLI behaviour."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tools.plan.offline import OfflineRun, run_offline
from tools.plan.plan import main

ROOT = Path(__file__).resolve().parents[2]


def plan_json(stack: str) -> dict:
    completed = subprocess.run(
        [sys.executable, "-m", "tools.plan", "--stack", stack, "--format", "json"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(completed.stdout)


@pytest.fixture(scope="module", params=["dev", "prod"])
def plan(request: pytest.FixtureRequest) -> dict:
    return plan_json(request.param)


def test_json_plan_has_exactly_the_documented_shape(plan: dict) -> None:
    assert list(plan) == ["project", "stack", "resources", "outputs"]
    assert plan["project"] == "ml-delivery"
    for resource in plan["resources"]:
        assert list(resource) == ["urn", "type", "name", "parent", "custom", "inputs", "dependencies"]
        assert resource["urn"].startswith(f"urn:pulumi:{plan['stack']}::ml-delivery::")
        assert isinstance(resource["inputs"], dict) and isinstance(resource["custom"], bool)


def test_every_dependency_and_parent_urn_exists_in_the_plan(plan: dict) -> None:
    urns = {r["urn"] for r in plan["resources"]}
    assert len(urns) == len(plan["resources"]), "URNs must be unique"
    for resource in plan["resources"]:
        if resource["parent"] is not None:
            assert resource["parent"] in urns
            assert resource["parent"] in resource["dependencies"]
        missing = set(resource["dependencies"]) - urns
        assert not missing, f"{resource['name']} depends on unknown {missing}"


def test_dependencies_include_resources_whose_outputs_feed_inputs(plan: dict) -> None:
    by_name = {r["name"]: r for r in plan["resources"]}
    service = by_name["prod-service"]
    feeders = {by_name[n]["urn"] for n in ("prod-cluster", "prod-task", "prod-task-sg", "prod-tg", "network-private-0")}
    assert feeders <= set(service["dependencies"])


def test_inputs_are_resolved_camel_case_values(plan: dict) -> None:
    by_name = {r["name"]: r for r in plan["resources"]}
    service_inputs = by_name["stage-service"]["inputs"]
    assert "networkConfiguration" in service_inputs and "network_configuration" not in service_inputs
    assert service_inputs["networkConfiguration"]["assignPublicIp"] is False
    text = json.dumps(plan)
    assert "Output<" not in text and "<pulumi" not in text


def test_outputs_list_what_the_foundation_promises(plan: dict) -> None:
    expected = {"stageUrl", "prodUrl", "artifactBucket", "modelBucket", "captureBucket", "appRepositoryUrl",
                "jobsRepositoryUrl", "modelObjectKey", "alertsTopicArn", "containerName"}  # fmt: skip
    assert expected <= set(plan["outputs"])
    assert plan["outputs"]["modelObjectKey"] == "model.zip"
    assert plan["outputs"]["containerName"] == "app"


def test_secret_inputs_show_as_masked() -> None:
    run = run_offline("dev", secret_overrides={"ml-delivery:sentryDsn": "https://public@o1.ingest.example/9"})
    text = json.dumps(run.as_plan())
    assert "public@o1.ingest.example" not in text
    assert '"secretString": "[secret]"' in text


def test_tree_shows_components_resources_and_warnings(dev: OfflineRun, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--stack", "dev"]) == 0
    out = capsys.readouterr().out
    assert "ml-delivery:service:ModelService  stage" in out
    assert "aws:ecs/service:Service  prod-service" in out
    assert "warning: stage: no ml-delivery:certificateArn" in out
    assert "Outputs:" in out and "prodUrl: http://" in out


def test_cli_reports_bad_config_with_exit_code_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--stack", "does-not-exist"]) == 2
    assert "Pulumi.does-not-exist.yaml" in capsys.readouterr().err


def test_the_offline_runtime_refuses_an_invoke_it_does_not_know() -> None:
    """A new data source must be added to the mocks deliberately, never answered with an empty guess."""
    import pulumi_aws as aws

    from tools.plan.offline import UnknownInvokeError

    def program() -> None:
        aws.ec2.get_vpc(default=True)

    with pytest.raises(UnknownInvokeError, match="aws:ec2/getVpc:getVpc"):
        run_offline("dev", program=program)
