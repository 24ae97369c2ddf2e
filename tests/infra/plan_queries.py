"""Queries over an offline run, shared by the infra tests (policies, security groups, documents)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from tools.plan.offline import OfflineRun, RegisteredResource

POLICY_INPUTS = ("policy", "assumeRolePolicy")


def policy_documents(run: OfflineRun) -> Iterator[tuple[RegisteredResource, str, dict[str, Any]]]:
    """Every IAM/resource policy document in the plan, parsed: (resource, input key, document)."""
    for resource in run.resources:
        for key in POLICY_INPUTS:
            raw = resource.inputs.get(key)
            if isinstance(raw, str) and raw.strip().startswith("{"):
                document = json.loads(raw)
                if "Statement" in document:
                    yield resource, key, document


def statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    found = document["Statement"]
    return found if isinstance(found, list) else [found]


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def role_policy(run: OfflineRun, role_name: str) -> dict[str, Any]:
    """The inline policy document of the role named ``role_name`` (its RolePolicy is ``<role>-policy``)."""
    resource = run.one("aws:iam/rolePolicy:RolePolicy", f"{role_name}-policy")
    return json.loads(resource.inputs["policy"])


def allowed_actions(document: dict[str, Any]) -> dict[str, list[Any]]:
    """action -> resources it is allowed on."""
    result: dict[str, list[Any]] = {}
    for statement in statements(document):
        if statement.get("Effect") != "Allow":
            continue
        for action in as_list(statement.get("Action")):
            result.setdefault(action, []).extend(as_list(statement.get("Resource")))
    return result


def find_by_urn(run: OfflineRun, urn: str) -> RegisteredResource:
    return run.by_urn(urn)


def resource_id_of(run: OfflineRun, resource: RegisteredResource) -> str:
    """The mocked physical id the offline runtime gives a resource (``<name>-id``)."""
    return f"{resource.name}-id"
