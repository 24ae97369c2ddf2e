"""The CrossGuard pack evaluated offline: every policy passes on both stacks and fails on its bad example.

The policy objects are the same ones ``pulumi preview --policy-pack policy`` runs; the harness feeds them
the mocked resources of each stack the way the analyzer does (inputs, options, dependencies by property).
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from policy.policies import POLICIES
from tools.plan.offline import OfflineRun, RegisteredResource, run_offline

ROOT = Path(__file__).resolve().parents[2]


def _options(resource: RegisteredResource) -> PolicyResourceOptions:
    return PolicyResourceOptions(
        protect=resource.protect, ignore_changes=resource.ignore_changes, delete_before_replace=None, aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0), additional_secret_outputs=[], parent=resource.parent,
    )  # fmt: skip


def _stack_args(resources: list[RegisteredResource]) -> StackValidationArgs:
    custom = [r for r in resources if r.custom]
    by_urn = {r.urn: PolicyResource(r.type, r.inputs, r.urn, r.name, _options(r), None, None, [], {}) for r in custom}
    for resource in custom:
        policy_resource = by_urn[resource.urn]
        policy_resource.dependencies = [by_urn[u] for u in resource.dependencies if u in by_urn]
        policy_resource.property_dependencies = {
            key: [by_urn[u] for u in urns if u in by_urn] for key, urns in resource.property_dependencies.items()
        }
    return StackValidationArgs(list(by_urn.values()))


def violations(
    policy: ResourceValidationPolicy | StackValidationPolicy, resources: list[RegisteredResource]
) -> list[str]:
    found: list[str] = []

    def report(message: str, urn: str | None = None) -> None:
        found.append(message)

    if isinstance(policy, StackValidationPolicy):
        assert policy.validate(_stack_args(resources), report) is None
    else:
        for resource in resources:
            if resource.custom:
                args = ResourceValidationArgs(resource.type, resource.inputs, resource.urn, resource.name,
                                              _options(resource), None)  # fmt: skip
                assert policy.validate(args, report) is None
    return found


@pytest.fixture(scope="module")
def runs() -> dict[str, OfflineRun]:
    return {stack: run_offline(stack) for stack in ("dev", "prod")}


@pytest.mark.parametrize("stack", ["dev", "prod"])
@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.name)
def test_policy_passes_on_the_stack(policy, stack: str, runs: dict[str, OfflineRun]) -> None:
    assert violations(policy, runs[stack].resources) == []


def _resource(type_token: str, name: str, inputs: dict, **extra: object) -> RegisteredResource:
    return RegisteredResource(urn=f"urn:pulumi:dev::ml-delivery::{type_token}::{name}", type=type_token, name=name,
                              parent=None, custom=True, inputs=inputs, dependencies=[], **extra)  # fmt: skip


TAGS = {"project": "ml-delivery", "stack": "dev", "environment": "dev", "managed-by": "pulumi"}


def _without(run: OfflineRun, type_token: str, name: str) -> list[RegisteredResource]:
    return [r for r in run.resources if not (r.type == type_token and r.name == name)]


def _with_changed(
    run: OfflineRun, type_token: str, name: str, change: Callable[[dict], None]
) -> list[RegisteredResource]:
    resources = []
    for resource in run.resources:
        if resource.type == type_token and resource.name == name:
            changed = copy.deepcopy(resource)
            change(changed.inputs)
            resources.append(changed)
        else:
            resources.append(resource)
    return resources


BAD_EXAMPLES: dict[str, Callable[[OfflineRun], list[RegisteredResource]]] = {
    "iam-no-wildcard-actions": lambda run: [_resource("aws:iam/rolePolicy:RolePolicy", "too-broad", {
        "role": "x", "policy": '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", '
                                '"Resource": "arn:aws:s3:::b/*"}]}'})],
    "iam-no-admin-managed-policies": lambda run: [_resource("aws:iam/rolePolicyAttachment:RolePolicyAttachment",
        "admin", {"role": "x", "policyArn": "arn:aws:iam::aws:policy/AmazonS3FullAccess"})],
    "s3-buckets-encrypted-private-tls-only": lambda run: _without(
        run, "aws:s3/bucketPolicy:BucketPolicy", "buckets-capture-tls-only"),
    "s3-model-bucket-versioned": lambda run: _without(
        run, "aws:s3/bucketVersioning:BucketVersioning", "buckets-models-versioning"),
    "ecr-immutable-scan-on-push": lambda run: _with_changed(
        run, "aws:ecr/repository:Repository", "registry-app", lambda i: i.update(imageTagMutability="MUTABLE")),
    "ecs-private-tasks-with-rollback": lambda run: _with_changed(
        run, "aws:ecs/service:Service", "prod-service",
        lambda i: i["networkConfiguration"].update(assignPublicIp=True)),
    "codebuild-in-vpc": lambda run: [_resource("aws:codebuild/project:Project", "outside", {
        "name": "outside", "tags": TAGS, "serviceRole": "arn:aws:iam::123456789012:role/x"})],
    "logs-retention-set": lambda run: [_resource("aws:cloudwatch/logGroup:LogGroup", "forever",
                                                 {"name": "/forever", "tags": TAGS})],
    "sns-topics-encrypted": lambda run: [_resource("aws:sns/topic:Topic", "plain", {"tags": TAGS})],
    "required-tags": lambda run: [_resource("aws:ec2/vpc:Vpc", "untagged", {"cidrBlock": "10.9.0.0/16"})],
    "alb-https-in-prod": lambda run: [_resource("aws:lb/listener:Listener", "plain-prod", {
        "protocol": "HTTP", "port": 80, "defaultActions": [{"type": "forward", "targetGroupArn": "arn:tg"}],
        "tags": {**TAGS, "environment": "prod"}})],
    "waf-on-prod-albs": lambda run: _with_changed(  # dev has no WAF; the same ALB tagged prod must be refused
        run, "aws:lb/loadBalancer:LoadBalancer", "prod-alb", lambda i: i["tags"].update(environment="prod")),
    "logs-encrypted": lambda run: _with_changed(
        run, "aws:cloudwatch/logGroup:LogGroup", "stage-logs", lambda i: i.pop("kmsKeyId")),
    "no-docker-hub-images": lambda run: [_resource("aws:ecs/taskDefinition:TaskDefinition", "hub", {
        "family": "hub", "tags": TAGS,
        "containerDefinitions": '[{"name": "app", "image": "traefik/whoami:v1.10.3"}]'})],
    "capture-bucket-tls-and-sse-kms": lambda run: _with_changed(
        run, "aws:s3/bucketPolicy:BucketPolicy", "buckets-capture-tls-only", _drop_kms_only_statements),
}  # fmt: skip


def _drop_kms_only_statements(inputs: dict) -> None:
    document = json.loads(inputs["policy"])
    document["Statement"] = [s for s in document["Statement"] if s["Sid"] == "DenyInsecureTransport"]
    inputs["policy"] = json.dumps(document)


def test_every_policy_has_a_bad_example() -> None:
    assert {p.name for p in POLICIES} == set(BAD_EXAMPLES)


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.name)
def test_policy_fails_on_its_bad_example(policy, runs: dict[str, OfflineRun]) -> None:
    found = violations(policy, BAD_EXAMPLES[policy.name](runs["dev"]))
    assert found, f"{policy.name} let its bad example through"


def test_bucket_policy_names_the_bucket_and_the_missing_control(runs: dict[str, OfflineRun]) -> None:
    found = violations(POLICIES[2], BAD_EXAMPLES["s3-buckets-encrypted-private-tls-only"](runs["dev"]))
    assert found == ["buckets-capture: the bucket policy must deny requests without TLS"]


def test_pack_entry_point_imports_with_only_the_pack_directory_on_the_path() -> None:
    """The analyzer runs policy/__main__.py from the pack directory; its import of ``policies`` must work there."""
    script = (
        "import sys; sys.path[:] = [p for p in sys.path if p not in ('', '.')]; sys.path.insert(0, '.');"
        "import policies; print(len(policies.POLICIES))"
    )
    completed = subprocess.run([sys.executable, "-c", script], cwd=ROOT / "policy", capture_output=True, text=True,
                               check=False)  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert int(completed.stdout) == len(POLICIES)
