"""Export the offline Pulumi plan of a stack as a Terraform plan JSON, for checkov's ``terraform_plan`` scan.

Why this works: pulumi-aws is bridged from the Terraform AWS provider, so every Pulumi resource is a
Terraform resource with the same schema under Pulumi's names. The mapping back is mechanical and small:

* type tokens: ``aws:<module>/<camelName>:<Name>`` -> ``aws_<module>_<snake_name>``; resources of the
  ``ec2`` module drop the module (``aws_vpc``, ``aws_subnet``), and a few renames are listed in
  :data:`TYPE_OVERRIDES`;
* attribute names: camelCase -> snake_case (:data:`ATTRIBUTE_OVERRIDES` for the pluralised list blocks,
  e.g. Pulumi's ``defaultActions`` is the Terraform block ``default_action``);
* nested objects: Terraform's ``MaxItems: 1`` blocks are single objects in Pulumi; in the plan JSON they
  are lists of one block. Maps (``tags``, alarm ``dimensions``...) stay objects (:data:`MAP_ATTRIBUTES`).

Cross-resource references (which bucket a policy belongs to) come from Pulumi's property dependencies
and are written to the plan's ``configuration`` section, where checkov's graph checks read them.
The format is Terraform's "JSON Output Format" (``terraform show -json``), version 1.2.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tools.plan.offline import OfflineRun, RegisteredResource, run_offline

# Terraform names that are not ``aws_<module>_<snake name>`` (pulumi-aws resources.go renames).
TYPE_OVERRIDES: dict[str, str] = {
    "aws:lb/loadBalancer:LoadBalancer": "aws_lb",
    "aws:codepipeline/pipeline:Pipeline": "aws_codepipeline",
    "aws:wafv2/webAcl:WebAcl": "aws_wafv2_web_acl",
    "aws:wafv2/webAclAssociation:WebAclAssociation": "aws_wafv2_web_acl_association",
    "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration": "aws_wafv2_web_acl_logging_configuration",
}
# Modules whose Terraform resources carry no module prefix (aws_vpc, aws_subnet, aws_flow_log, ...).
UNPREFIXED_MODULES = frozenset({"ec2"})
# Pulumi pluralises repeated blocks; Terraform names them in the singular.
ATTRIBUTE_OVERRIDES: dict[str, str] = {
    "defaultActions": "default_action",
    "rules": "rule",
    "transitions": "transition",
    "settings": "setting",
    "volumes": "volume",
    "loadBalancers": "load_balancer",
    "routes": "route",
    "encryptionConfigurations": "encryption_configuration",
    "stages": "stage",
    "actions": "action",
    "artifactStores": "artifact_store",
    "computeResources": "compute_resources",
    "jobQueues": "job_queue",
    "computeEnvironmentOrders": "compute_environment_order",
    "statements": "statement",
    "visibilityConfig": "visibility_config",
    "managedRuleGroupStatement": "managed_rule_group_statement",
    "rateBasedStatement": "rate_based_statement",
    "overrideAction": "override_action",
    "defaultAction": "default_action",
    "secondaryArtifacts": "secondary_artifacts",
    "secondarySources": "secondary_sources",
    "redirect": "redirect",
    "columns": "columns",
    "inlinePolicies": "inline_policy",
    "ingress": "ingress",
    "egress": "egress",
}
# Terraform map (not block) attributes: kept as objects.
MAP_ATTRIBUTES = frozenset({"tags", "tagsAll", "dimensions", "parameters", "environmentVariables", "variables"})
PROVIDER = "registry.terraform.io/hashicorp/aws"
_FIRST_CAP = re.compile(r"(.)([A-Z][a-z]+)")
_ALL_CAP = re.compile(r"([a-z0-9])([A-Z])")


def snake(name: str) -> str:
    """camelCase -> snake_case, as the bridge maps Terraform attribute names (``kmsKeyId`` -> ``kms_key_id``)."""
    return _ALL_CAP.sub(r"\1_\2", _FIRST_CAP.sub(r"\1_\2", name)).lower()


def terraform_type(pulumi_type: str) -> str:
    """``aws:s3/bucket:Bucket`` -> ``aws_s3_bucket``; raises for non-AWS types."""
    if pulumi_type in TYPE_OVERRIDES:
        return TYPE_OVERRIDES[pulumi_type]
    provider, rest = pulumi_type.split(":", 1)
    if provider != "aws":
        raise ValueError(f"not a pulumi-aws resource type: {pulumi_type!r}")
    module, name = rest.split(":", 1)[0].split("/", 1)
    resource = snake(name)
    return f"aws_{resource}" if module in UNPREFIXED_MODULES else f"aws_{module}_{resource}"


def attribute_name(key: str) -> str:
    return ATTRIBUTE_OVERRIDES.get(key, snake(key))


def convert_value(key: str, value: Any) -> Any:
    """One Pulumi input value as Terraform holds it: objects become one-element block lists."""
    if key in MAP_ATTRIBUTES or not isinstance(value, dict | list):
        return value
    if isinstance(value, dict):
        return [convert_attributes(value)]
    return [convert_attributes(v) if isinstance(v, dict) else v for v in value]


def convert_attributes(inputs: dict[str, Any]) -> dict[str, Any]:
    return {attribute_name(k): convert_value(k, v) for k, v in inputs.items()}


def _addresses(resources: Sequence[RegisteredResource]) -> dict[str, str]:
    """URN -> a unique Terraform address (``aws_s3_bucket.buckets-capture``)."""
    addresses: dict[str, str] = {}
    taken: set[str] = set()
    for resource in resources:
        base = f"{terraform_type(resource.type)}.{resource.name}"
        address, index = base, 1
        while address in taken:
            index += 1
            address = f"{base}_{index}"
        taken.add(address)
        addresses[resource.urn] = address
    return addresses


def to_terraform_plan(run: OfflineRun) -> dict[str, Any]:
    """The stack's custom AWS resources as a ``terraform show -json`` plan document."""
    resources = [r for r in run.resources if r.custom and r.type.startswith("aws:")]
    addresses = _addresses(resources)
    planned, changes, configuration = [], [], []
    for resource in resources:
        address = addresses[resource.urn]
        tf_type, name = address.split(".", 1)
        values = convert_attributes(resource.inputs)
        common = {"address": address, "mode": "managed", "type": tf_type, "name": name, "provider_name": PROVIDER}
        planned.append({**common, "schema_version": 0, "values": values, "sensitive_values": {}})
        changes.append({**common, "change": {"actions": ["create"], "before": None, "after": values,
                                              "after_unknown": {}, "before_sensitive": False,
                                              "after_sensitive": {}}})  # fmt: skip
        expressions: dict[str, Any] = {}
        for key, urns in resource.property_dependencies.items():
            references = [addresses[u] for u in urns if u in addresses]
            if references:
                expressions[attribute_name(key)] = {
                    "references": [ref for address_ in references for ref in (f"{address_}.id", address_)]
                }
        configuration.append({"address": address, "mode": "managed", "type": tf_type, "name": name,
                              "provider_config_key": "aws", "expressions": expressions,
                              "schema_version": 0})  # fmt: skip
    return {
        "format_version": "1.2",
        "terraform_version": "1.9.8",
        "planned_values": {"root_module": {"resources": planned}},
        "resource_changes": changes,
        "configuration": {
            "provider_config": {"aws": {"name": "aws", "full_name": PROVIDER}},
            "root_module": {"resources": configuration},
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.scan.tfplan", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", required=True, help="stack name: reads Pulumi.<stack>.yaml")
    parser.add_argument("--out", type=Path, required=True, help="where to write the Terraform plan JSON")
    args = parser.parse_args(argv)
    plan = to_terraform_plan(run_offline(args.stack))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(plan, indent=1, sort_keys=True, default=str))
    print(f"wrote {args.out} ({len(plan['resource_changes'])} resources)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
