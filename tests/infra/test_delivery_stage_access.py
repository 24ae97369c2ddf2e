"""Issue #16 item 1(c): the Evaluate CodeBuild project (private subnets) reaches the stage service.

The stage ALB is internal by default, lets in the Evaluate project's security group by reference, and is
called over TLS under a name its certificate covers (a private hosted zone) when the stack has one. Under
mocks, from the real Pulumi.<stack>.yaml.
"""

from __future__ import annotations

from typing import Any

import pytest

from infra.settings import ConfigError
from tools.plan.offline import OfflineRun, run_offline

LB = "aws:lb/loadBalancer:LoadBalancer"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
PROJECT = "aws:codebuild/project:Project"
ZONE = "aws:route53/zone:Zone"
RECORD = "aws:route53/record:Record"


def _evaluate_env(run: OfflineRun) -> dict[str, str]:
    project = run.one(PROJECT, "delivery-evaluate-project").inputs
    return {v["name"]: v["value"] for v in project["environment"]["environmentVariables"]}


def _evaluate_security_groups(run: OfflineRun) -> list[Any]:
    return list(run.one(PROJECT, "delivery-evaluate-project").inputs["vpcConfig"]["securityGroupIds"])


def _subnets(run: OfflineRun, kind: str) -> set[str]:
    return {f"network-{kind}-{i}-id" for i in range(len(run.one(LB, "prod-alb").inputs["subnets"]))}


def test_stage_alb_is_internal_in_the_private_subnets_and_prod_faces_the_internet(stack: OfflineRun) -> None:
    stage, prod = stack.one(LB, "stage-alb").inputs, stack.one(LB, "prod-alb").inputs
    assert stage["internal"] is True
    assert set(stage["subnets"]) == _subnets(stack, "private")
    assert prod["internal"] is False
    assert set(prod["subnets"]) == _subnets(stack, "public")


def test_the_evaluate_security_group_is_let_into_the_stage_alb_on_its_serving_port(stack: OfflineRun) -> None:
    (evaluate_group,) = _evaluate_security_groups(stack)
    rules = [r.inputs for r in stack.of_type(INGRESS) if r.inputs.get("referencedSecurityGroupId") == evaluate_group]
    # Exactly one rule names the Evaluate group: on the stage ALB's group, on the port STAGE_URL uses.
    assert len(rules) == 1, rules
    (rule,) = rules
    assert rule["securityGroupId"] == "stage-alb-sg-id"
    port = 443 if _evaluate_env(stack)["STAGE_URL"].startswith("https://") else 80
    assert (rule["ipProtocol"], rule["fromPort"], rule["toPort"]) == ("tcp", port, port)
    assert "cidrIpv4" not in rule
    # Nothing lets the Evaluate group into prod.
    assert not [r for r in stack.of_type(INGRESS) if r.inputs.get("securityGroupId") == "prod-alb-sg-id"
                and r.inputs.get("referencedSecurityGroupId") is not None]  # fmt: skip


def test_dev_without_a_certificate_calls_the_internal_alb_over_http(dev: OfflineRun) -> None:
    assert _evaluate_env(dev)["STAGE_URL"] == f"http://{dev_dns(dev)}"
    assert dev_dns(dev).startswith("internal-")
    assert not dev.of_type(ZONE) and not dev.of_type(RECORD)


def dev_dns(run: OfflineRun) -> str:
    """The stage ALB's DNS name as the mocks return it (``internal-`` first for an internal ALB)."""
    url = _evaluate_env(run)["STAGE_URL"]
    return url.split("://", 1)[1]


def test_prod_calls_stage_over_tls_under_the_name_its_certificate_covers(prod: OfflineRun) -> None:
    assert _evaluate_env(prod)["STAGE_URL"] == "https://stage.ml.example.com"
    (zone,) = prod.of_type(ZONE)
    assert zone.inputs["name"] == "stage.ml.example.com"
    # A private zone: associated with the stack's VPC only, so nothing outside the VPC resolves it.
    assert [v["vpcId"] for v in zone.inputs["vpcs"]] == ["network-vpc-id"]
    (record,) = prod.of_type(RECORD)
    assert (record.inputs["name"], record.inputs["type"]) == ("stage.ml.example.com", "A")
    (alias,) = record.inputs["aliases"]
    assert alias["name"].startswith("internal-stage-alb-") and alias["name"].endswith(".elb.amazonaws.com")
    assert alias["zoneId"] == "Z35SXDOTRQ7X7K"
    # The HTTPS listener of the stage ALB carries the stack's certificate.
    listeners = [r.inputs for r in prod.of_type("aws:lb/listener:Listener") if r.name == "stage-https"]
    assert listeners and listeners[0]["certificateArn"].startswith("arn:aws:acm:")


def test_stage_internet_facing_by_stack_key_warns_that_evaluate_comes_through_the_nat() -> None:
    run = run_offline("dev", overrides={"ml-delivery:stageInternetFacing": True})
    stage = run.one(LB, "stage-alb").inputs
    assert stage["internal"] is False and set(stage["subnets"]) == _subnets(run, "public")
    assert any("stageInternetFacing" in w and "NAT" in w and "ingressCidrs" in w for w in run.warnings), run.warnings
    assert not _evaluate_env(run)["STAGE_URL"].startswith("http://internal-")


def test_an_internal_stage_with_a_certificate_needs_the_name_it_covers() -> None:
    with pytest.raises(ConfigError, match="stageHostname") as error:
        run_offline("prod", overrides={"ml-delivery:stageHostname": None})
    assert "stageInternetFacing" in str(error.value)


@pytest.mark.parametrize(
    ("stack", "overrides"),
    [
        ("dev", {"ml-delivery:stageHostname": "stage.ml.example.com"}),  # no certificate to cover it
        ("prod", {"ml-delivery:stageInternetFacing": True}),  # an internet-facing stage has public DNS
        ("prod", {"ml-delivery:stageHostname": "-bad-.example.com"}),
    ],
)
def test_a_stage_hostname_where_it_cannot_apply_is_refused(stack: str, overrides: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="stageHostname"):
        run_offline(stack, overrides=overrides)
