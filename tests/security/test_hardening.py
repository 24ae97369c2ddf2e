"""Issue #17 fixes asserted on both stacks' plans, the plan -> Terraform mapping, and the skip-file logic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.settings import ConfigError
from tools.plan.offline import OfflineRun, run_offline
from tools.scan.skips import Failure, Skip, SkipFileError, _parse, judge, load_skips
from tools.scan.tfplan import convert_attributes, terraform_type, to_terraform_plan

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_log_groups_schedules_ecr_and_ssm_on_the_stack_key(plans: dict[str, OfflineRun], stack: str) -> None:
    run = plans[stack]
    key_arn = run.one("aws:kms/key:Key", "data-key")
    groups = run.of_type("aws:cloudwatch/logGroup:LogGroup")
    assert groups and all(str(g.inputs.get("kmsKeyId", "")).startswith("arn:aws:kms:") for g in groups)
    assert all(
        str(s.inputs.get("kmsKeyArn", "")).startswith("arn:aws:kms:")
        for s in run.of_type("aws:scheduler/schedule:Schedule")
    )
    for repo in run.of_type("aws:ecr/repository:Repository"):
        assert repo.inputs["encryptionConfigurations"][0]["encryptionType"] == "KMS"
    for parameter in run.of_type("aws:ssm/parameter:Parameter"):
        assert parameter.inputs["type"] == "SecureString" and parameter.inputs["keyId"].startswith("arn:aws:kms:")
    policy = json.loads(key_arn.inputs["policy"])
    logs = next(s for s in policy["Statement"] if s["Sid"] == "CloudWatchLogsEncryptsLogGroups")
    assert logs["Principal"] == {"Service": "logs.us-east-1.amazonaws.com"}
    assert logs["Condition"] == {
        "ArnLike": {"kms:EncryptionContext:aws:logs:arn": "arn:aws:logs:us-east-1:123456789012:log-group:*"}
    }
    assert not any(a.endswith("*") for a in logs["Action"])


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_access_logs_default_sg_and_zones(plans: dict[str, OfflineRun], stack: str) -> None:
    run = plans[stack]
    (sg,) = run.of_type("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
    assert sg.inputs.get("ingress", []) == [] and sg.inputs.get("egress", []) == []
    for alb in run.of_type("aws:lb/loadBalancer:LoadBalancer"):
        assert alb.inputs["accessLogs"]["enabled"] is True and alb.inputs["accessLogs"]["bucket"]
    assert len(run.of_type("aws:s3/bucketLogging:BucketLogging")) == 3
    sse = [
        r
        for r in run.of_type("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
        if r.inputs["bucket"].startswith("access-logs")
    ]
    assert sse[0].inputs["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_subnets_only_in_the_regions_availability_zones(plans: dict[str, OfflineRun], stack: str) -> None:
    """The offline getAvailabilityZones lists an opted-in Local Zone first (as AWS may); the filters drop it."""
    zones = [s.inputs["availabilityZone"] for s in plans[stack].of_type("aws:ec2/subnet:Subnet")]
    assert zones and not any("-bos-" in z for z in zones), f"a Local Zone was picked for a subnet: {zones}"


def test_prod_is_https_only_behind_a_waf(plans: dict[str, OfflineRun]) -> None:
    prod = plans["prod"]
    listeners = prod.of_type("aws:lb/listener:Listener")
    https = [x for x in listeners if x.inputs["protocol"] == "HTTPS"]
    assert len(https) == 2 and all(x.inputs["sslPolicy"].startswith("ELBSecurityPolicy-TLS13-1-2") for x in https)
    for plain in (x for x in listeners if x.inputs["protocol"] == "HTTP"):
        assert plain.inputs["defaultActions"][0]["type"] == "redirect"
    acls = prod.of_type("aws:wafv2/webAcl:WebAcl")
    assert len(acls) == 2 and len(prod.of_type("aws:wafv2/webAclAssociation:WebAclAssociation")) == 2
    names = {r["name"] for r in acls[0].inputs["rules"]}
    assert {"AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet", "rate-limit-per-ip"} <= names
    assert not plans["dev"].of_type("aws:wafv2/webAcl:WebAcl")


def test_internet_facing_without_certificate_is_refused() -> None:
    with pytest.raises(ConfigError, match="certificateArn"):
        run_offline("prod", overrides={"ml-delivery:certificateArn": None})
    with pytest.raises(ConfigError, match=r"0\.0\.0\.0/0"):
        run_offline("dev", overrides={"ml-delivery:ingressCidrs": ["0.0.0.0/0"]})


@pytest.mark.parametrize(("key", "value", "message"), [
    ("ml-delivery:vpcCidr", "10.0.0.0/24", "an ALB needs subnets of at least /27"),
    ("ml-delivery:scheduleTimezone", "Mars/Olympus", "IANA time zone"),
])  # fmt: skip
def test_bad_settings_are_refused(key: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        run_offline("dev", overrides={key: value})


def test_terraform_mapping() -> None:
    assert terraform_type("aws:s3/bucket:Bucket") == "aws_s3_bucket"
    assert terraform_type("aws:ec2/vpc:Vpc") == "aws_vpc"
    assert terraform_type("aws:lb/loadBalancer:LoadBalancer") == "aws_lb"
    assert terraform_type("aws:cloudwatch/logGroup:LogGroup") == "aws_cloudwatch_log_group"
    converted = convert_attributes({"defaultActions": [{"type": "redirect", "redirect": {"statusCode": "HTTP_301"}}],
                                    "tags": {"a": "b"}, "kmsKeyId": "k"})  # fmt: skip
    assert converted == {"default_action": [{"type": "redirect", "redirect": [{"status_code": "HTTP_301"}]}],
                         "tags": {"a": "b"}, "kms_key_id": "k"}  # fmt: skip


def test_terraform_plan_carries_references(plans: dict[str, OfflineRun]) -> None:
    plan = to_terraform_plan(plans["dev"])
    config = {r["address"]: r for r in plan["configuration"]["root_module"]["resources"]}
    policy = config["aws_s3_bucket_policy.buckets-capture-tls-only"]
    assert "aws_s3_bucket.buckets-capture" in policy["expressions"]["bucket"]["references"]


def test_skip_file_is_valid_and_judging_flags_unexplained_and_stale() -> None:
    assert load_skips()
    skip = Skip("CKV_AWS_2", ("dev",), "dev has no certificate, by design", ("aws_lb_listener.*-http",))
    hit, other = Failure("CKV_AWS_2", "aws_lb_listener.stage-http", ""), Failure("CKV_AWS_3", "x.y", "")
    verdict = judge("dev", [hit, other], [skip])
    assert verdict.unexplained == [other] and not verdict.stale
    assert judge("dev", [], [skip]).stale == [skip]
    assert judge("prod", [hit], [skip]).unexplained == [hit]
    with pytest.raises(SkipFileError, match="reason"):
        _parse(0, {"check": "CKV_AWS_2", "stacks": ["dev"], "reason": "short"}, "f.yaml")


def test_bootstrap_image_is_not_docker_hub_and_its_server_answers_the_health_check(
    plans: dict[str, OfflineRun], tmp_path: Path
) -> None:
    """The services' first image comes from ECR Public and runs BOOTSTRAP_SERVER, which must answer 200 on
    the health-check path at $PORT (run here with the same interpreter, bound to loopback)."""
    import os
    import subprocess
    import sys
    import urllib.request

    from infra.foundation.hardening import BOOTSTRAP_IMAGE, BOOTSTRAP_SERVER
    from policy.policies import is_docker_hub
    from tests.support.servers import free_port, wait_until

    for task in plans["prod"].of_type("aws:ecs/taskDefinition:TaskDefinition"):
        (container,) = json.loads(task.inputs["containerDefinitions"])
        assert container["image"] == BOOTSTRAP_IMAGE and not is_docker_hub(container["image"])
        assert container["command"] == ["python", "-c", BOOTSTRAP_SERVER]
    port = free_port()
    env = {**os.environ, "PORT": str(port), "BIND_ADDRESS": "127.0.0.1"}
    server = subprocess.Popen(  # in a directory without the app, as in the bootstrap image
        [sys.executable, "-c", BOOTSTRAP_SERVER], env=env, stderr=subprocess.DEVNULL, cwd=tmp_path
    )
    try:
        answers: list[int] = []

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    answers.append(response.status)
                    return True
            except OSError:
                return False

        wait_until(healthy, timeout=20, what="the bootstrap server")
        assert answers[-1] == 200
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_the_bootstrap_command_starts_the_app_in_an_image_that_has_it(tmp_path: Path) -> None:
    """The pipeline's ECS deploy action copies the task definition and swaps only the image, so the first
    pipeline deploy runs the bootstrap ``command`` in the APP image (the twin's loop caught it answering
    501 to POST /predict). There it must start the app exactly as the image's CMD does."""
    import subprocess
    import sys

    from infra.foundation.hardening import BOOTSTRAP_SERVER

    cmd = next(
        line for line in (REPO / "docker" / "app.Dockerfile").read_text().splitlines() if line.startswith("CMD ")
    )
    assert json.loads(cmd.removeprefix("CMD ")) == ["python", "-m", "app"]  # what the bootstrap must exec
    marker = tmp_path / "started"
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__init__.py").write_text("")
    (tmp_path / "app" / "__main__.py").write_text(
        f"import sys, pathlib; pathlib.Path({str(marker)!r}).write_text(' '.join(sys.argv))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", BOOTSTRAP_SERVER], cwd=tmp_path, env={"PORT": "1"}, timeout=60, check=False
    )
    assert done.returncode == 0
    assert marker.read_text().endswith("app/__main__.py")
