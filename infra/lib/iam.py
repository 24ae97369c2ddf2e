"""IAM policy documents as data, so every statement is visible (and testable) in the plan.

Statements are plain dicts serialised with ``json.dumps`` once all ARNs resolve; no ``*`` actions are
ever granted, and ``"Resource": "*"`` only for the actions in :data:`RESOURCE_STAR_ACTIONS`, each listed
with the AWS doc that requires it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws
import yaml

Statement = dict[str, Any]

# The one list of actions this program grants on "Resource": "*", each because the action supports no
# resource-level permissions, with the AWS doc that says so: policy/exceptions.yaml, the single file of
# deliberate guardrail exceptions. iam.allow() refuses "*" for any other action.
EXCEPTIONS_FILE = Path(__file__).resolve().parents[2] / "policy" / "exceptions.yaml"
RESOURCE_STAR_ACTIONS: dict[str, str] = dict(yaml.safe_load(EXCEPTIONS_FILE.read_text())["resource_star_actions"])


def allow(actions: Sequence[str], resources: Sequence[pulumi.Input[str]], sid: str, **extra: Any) -> Statement:
    if any(a == "*" or a.endswith(":*") for a in actions):
        raise ValueError(f"{sid}: wildcard actions are not allowed: {list(actions)}")
    if "*" in resources:
        unlisted = sorted(set(actions) - set(RESOURCE_STAR_ACTIONS))
        if unlisted or len(resources) != 1:
            raise ValueError(f"{sid}: Resource '*' only for actions in RESOURCE_STAR_ACTIONS, alone; not {unlisted}")
    return {"Sid": re.sub(r"[^A-Za-z0-9]", "", sid), "Effect": "Allow", "Action": sorted(actions),
            "Resource": list(resources), **extra}  # fmt: skip


def document(statements: Sequence[Statement]) -> pulumi.Output[str]:
    """Resolve every Output inside the statements and serialise a policy document."""
    return pulumi.Output.from_input(list(statements)).apply(
        lambda resolved: json.dumps({"Version": "2012-10-17", "Statement": resolved}, sort_keys=True)
    )


def service_trust(
    service: str, account_id: pulumi.Input[str], source_arn: pulumi.Input[str] | None = None
) -> pulumi.Output[str]:
    """Trust policy for an AWS service principal with the confused-deputy conditions the IAM User Guide
    ("The confused deputy problem") recommends."""
    condition: dict[str, Any] = {"StringEquals": {"aws:SourceAccount": account_id}}
    if source_arn is not None:
        condition["ArnLike"] = {"aws:SourceArn": source_arn}
    return document(
        [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole", "Condition": condition}]
    )


def role_with_policy(
    name: str,
    *,
    service: str,
    account_id: pulumi.Input[str],
    statements: Sequence[Statement],
    parent: pulumi.Resource,
    description: str,
    source_arn: pulumi.Input[str] | None = None,
) -> tuple[aws.iam.Role, aws.iam.RolePolicy]:
    """A role trusted by one service with one inline least-privilege policy (``<name>-policy``).

    The policy is returned too, for resources that must not exist before their role may act: CodePipeline
    starts a first execution as soon as the pipeline is created.
    """
    created = aws.iam.Role(
        name,
        aws.iam.RoleArgs(
            assume_role_policy=service_trust(service, account_id, source_arn),
            description=description,
            max_session_duration=3600,
        ),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    policy = aws.iam.RolePolicy(
        f"{name}-policy",
        aws.iam.RolePolicyArgs(role=created.id, policy=document(statements)),
        opts=pulumi.ResourceOptions(parent=created),
    )
    return created, policy


def role(
    name: str,
    *,
    service: str,
    account_id: pulumi.Input[str],
    statements: Sequence[Statement],
    parent: pulumi.Resource,
    description: str,
    source_arn: pulumi.Input[str] | None = None,
) -> aws.iam.Role:
    """:func:`role_with_policy` for callers that need only the role."""
    created, _policy = role_with_policy(
        name, service=service, account_id=account_id, statements=statements, parent=parent,
        description=description, source_arn=source_arn,
    )  # fmt: skip
    return created
