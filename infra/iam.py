"""IAM policy documents as data, so every statement is visible (and testable) in the plan.

Statements are plain dicts serialised with ``json.dumps`` once all ARNs resolve; no ``*`` actions are
ever granted. Where AWS requires ``"Resource": "*"`` the caller passes ``resource_star_reason``
naming the AWS doc, and it is recorded in the statement's ``Sid`` for reviewers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_aws as aws

Statement = dict[str, Any]


def allow(actions: Sequence[str], resources: Sequence[pulumi.Input[str]], sid: str, **extra: Any) -> Statement:
    if any(a == "*" or a.endswith(":*") for a in actions):
        raise ValueError(f"{sid}: wildcard actions are not allowed: {list(actions)}")
    if "*" in resources and "resource_star_reason" not in extra:
        raise ValueError(f"{sid}: Resource '*' needs resource_star_reason naming the AWS doc that requires it")
    extra.pop("resource_star_reason", None)
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
    """A role trusted by one service with one inline least-privilege policy."""
    created = aws.iam.Role(
        name,
        aws.iam.RoleArgs(
            assume_role_policy=service_trust(service, account_id, source_arn),
            description=description,
            max_session_duration=3600,
        ),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    aws.iam.RolePolicy(
        f"{name}-policy",
        aws.iam.RolePolicyArgs(role=created.id, policy=document(statements)),
        opts=pulumi.ResourceOptions(parent=created),
    )
    return created
