"""Evaluate declared AWS calls against a stack's planned policies with a real IAM evaluation engine.

The engine is ``@cloud-copilot/iam-simulate`` (Node.js, pinned in ``tools/iam/package-lock.json``,
installed by ``make iam-eval``), run once per batch through ``tools/iam/evaluate.mjs``. For each call this
module gathers, from the offline plan only: the principal's inline identity policies, and the resource
policy that applies (bucket policy, topic policy, KMS key policy, or the role's trust policy for
``sts:AssumeRole``). ARNs are computed by the offline runtime's own mocks, so they are the ARNs the
planned policies name.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pulumi.runtime import mocks as pulumi_mocks

from tools.plan.offline import ACCOUNT_ID, AwsMocks, OfflineRun, RegisteredResource

TOOL_DIR = Path(__file__).resolve().parent
ENGINE = TOOL_DIR / "evaluate.mjs"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
RESOURCE_POLICY_TYPES = {
    "aws:s3/bucket:Bucket": ("aws:s3/bucketPolicy:BucketPolicy", "bucket", "policy"),
    "aws:sns/topic:Topic": ("aws:sns/topicPolicy:TopicPolicy", "arn", "policy"),
    "aws:sqs/queue:Queue": ("aws:sqs/queuePolicy:QueuePolicy", "queueUrl", "policy"),
}


class EngineMissingError(RuntimeError):
    """Node.js or the pinned engine is not installed: run ``make iam-eval``."""


@dataclass(frozen=True)
class Ref:
    """A planned resource (type token + logical name), optionally with an ARN suffix (``/key``)."""

    type: str
    name: str
    suffix: str = ""


STAR = Ref("*", "*")  # the resource of actions that support no resource types


@dataclass(frozen=True)
class Call:
    """One AWS call a principal must be able to make, with the doc that says so.

    ``principal`` is a planned role's logical name, or a service principal (``events.amazonaws.com``).
    ``defect`` names the issue item that keeps it denied today (the test marks it xfail, strict).
    """

    component: str
    principal: str
    action: str
    resource: Ref
    doc: str
    context: dict[str, str | list[str] | Ref] = field(default_factory=dict)  # a Ref becomes its planned ARN
    defect: str | None = None

    @property
    def id(self) -> str:
        return f"{self.component}: {self.principal} {self.action} {self.resource.name}{self.resource.suffix}"


def physical_arn(run: OfflineRun, ref_type: str, name: str) -> str:
    """The ARN the offline runtime gave the resource (the same mock that resolved every policy's ARNs)."""
    resource = _one(run, ref_type, name)
    mocks = AwsMocks(_region(run))
    args = pulumi_mocks.MockResourceArgs(ref_type, name, dict(resource.inputs), "", "", True)
    _, state = mocks.new_resource(args)
    if ref_type == ROLE:
        return f"arn:aws:iam::{ACCOUNT_ID}:role/{state.get('name')}"
    return str(state["arn"])


def _one(run: OfflineRun, type_token: str, name: str) -> RegisteredResource:
    return run.one(type_token, name)


def _region(run: OfflineRun) -> str:
    from tools.plan.offline import load_stack_config

    config, _ = load_stack_config(run.stack)
    return str(config.get("aws:region", "us-east-1"))


def _policy(value: Any) -> dict[str, Any]:
    policy: dict[str, Any] = json.loads(value) if isinstance(value, str) else value
    return policy


def identity_policies(run: OfflineRun, role_name: str) -> list[dict[str, Any]]:
    role_id = f"{role_name}-id"
    return [{"name": p.name, "policy": _policy(p.inputs["policy"])}
            for p in run.of_type(ROLE_POLICY) if p.inputs.get("role") == role_id]  # fmt: skip


def resource_policy(run: OfflineRun, call: Call) -> dict[str, Any] | None:
    ref = call.resource
    if ref.type == ROLE and call.action == "sts:AssumeRole":
        return _policy(_one(run, ROLE, ref.name).inputs["assumeRolePolicy"])
    if ref.type == "aws:kms/key:Key":
        return _policy(_one(run, ref.type, ref.name).inputs["policy"])
    if ref.type in RESOURCE_POLICY_TYPES:
        policy_type, key, attribute = RESOURCE_POLICY_TYPES[ref.type]
        target = _one(run, ref.type, ref.name)
        identifier = _identifier(run, ref, key, target)
        matches = [p for p in run.of_type(policy_type) if p.inputs.get(key) == identifier]
        return _policy(matches[0].inputs[attribute]) if matches else None
    return None


def _identifier(run: OfflineRun, ref: Ref, key: str, target: RegisteredResource) -> str:
    """How the policy resource names its target: bucket name, topic ARN or queue URL (mock state)."""
    if key == "bucket":
        return str(target.inputs.get("bucket") or f"{ref.name}-0a1b2c3")
    mocks = AwsMocks(_region(run))
    _, state = mocks.new_resource(pulumi_mocks.MockResourceArgs(ref.type, ref.name, dict(target.inputs), "", "", True))
    return str(state["url"] if key == "queueUrl" else state["arn"])


def simulation(run: OfflineRun, call: Call) -> dict[str, Any]:
    is_service = call.principal.endswith(".amazonaws.com")
    principal = call.principal if is_service else physical_arn(run, ROLE, call.principal)
    if call.resource.type == "*":  # actions with no resource types are authorized against "*"
        resource_arn = "*"
    else:
        resource_arn = physical_arn(run, call.resource.type, call.resource.name) + call.resource.suffix
    context: dict[str, str | list[str]] = {"aws:SecureTransport": "true"}
    for key, value in call.context.items():
        context[key] = physical_arn(run, value.type, value.name) if isinstance(value, Ref) else value
    simulated: dict[str, Any] = {
        "request": {"principal": principal, "action": call.action,
                    "resource": {"resource": resource_arn, "accountId": ACCOUNT_ID}, "contextVariables": context},
        "identityPolicies": [] if is_service else identity_policies(run, call.principal),
        "serviceControlPolicies": [],
        "resourceControlPolicies": [],
    }  # fmt: skip
    policy = resource_policy(run, call)
    if policy is not None:
        simulated["resourcePolicy"] = policy
    return simulated


def evaluate(simulations: list[tuple[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Run the engine on ``[(id, simulation)]``; returns ``{id: {"result", "errors"}}``."""
    node = shutil.which("node")
    if node is None or not (TOOL_DIR / "node_modules" / "@cloud-copilot" / "iam-simulate").is_dir():
        raise EngineMissingError("Node.js and tools/iam/node_modules are needed: run `make iam-eval`")
    payload = json.dumps([{"id": i, "simulation": s} for i, s in simulations])
    completed = subprocess.run(  # a fixed argv, no shell
        [node, str(ENGINE)], input=payload, capture_output=True, text=True, check=True, cwd=TOOL_DIR, timeout=300
    )
    return {item["id"]: item for item in json.loads(completed.stdout)}
