"""``python -m tools.plan --stack dev``: what ``pulumi up`` would create, without a cloud account.

Runs the real program under the offline runtime (``tools/plan/offline.py``) and prints either a tree like
``pulumi preview`` (component -> resources, type, name, key properties) or, with ``--format json``, the
documented plan: ``{"project", "stack", "resources": [{"urn", "type", "name", "parent", "custom",
"inputs", "dependencies"}], "outputs"}``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from infra.settings import ConfigError
from tools.plan import plan_cost, plan_diagram, plan_diff
from tools.plan.offline import OfflineRun, RegisteredResource, run_offline

# The few inputs worth a glance per type; everything is in --format json.
KEY_PROPERTIES: dict[str, tuple[str, ...]] = {
    "aws:ec2/vpc:Vpc": ("cidrBlock",),
    "aws:ec2/subnet:Subnet": ("cidrBlock", "availabilityZone", "mapPublicIpOnLaunch"),
    "aws:ec2/vpcEndpoint:VpcEndpoint": ("serviceName", "vpcEndpointType"),
    "aws:ec2/flowLog:FlowLog": ("trafficType", "logDestinationType"),
    "aws:cloudwatch/logGroup:LogGroup": ("name", "retentionInDays"),
    "aws:s3/bucketVersioning:BucketVersioning": ("versioningConfiguration",),
    "aws:s3/bucketNotification:BucketNotification": ("eventbridge",),
    "aws:ecr/repository:Repository": ("imageTagMutability",),
    "aws:ecs/taskDefinition:TaskDefinition": ("family", "cpu", "memory"),
    "aws:ecs/service:Service": ("desiredCount", "launchType"),
    "aws:lb/listener:Listener": ("port", "protocol"),
    "aws:lb/targetGroup:TargetGroup": ("port", "targetType"),
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": ("fromPort", "cidrIpv4", "description"),
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": ("fromPort", "cidrIpv4", "description"),
    "aws:cloudwatch/metricAlarm:MetricAlarm": ("metricName", "threshold"),
    "aws:appautoscaling/target:Target": ("minCapacity", "maxCapacity"),
    "aws:sns/topicSubscription:TopicSubscription": ("protocol", "endpoint"),
    "aws:ssm/parameter:Parameter": ("name",),
    "aws:codepipeline/pipeline:Pipeline": ("pipelineType",),
    "aws:codebuild/project:Project": ("name",),
    "aws:cloudwatch/eventRule:EventRule": ("scheduleExpression",),
    "aws:scheduler/schedule:Schedule": ("scheduleExpression",),
    "aws:batch/jobDefinition:JobDefinition": ("name", "type"),
}


def _summary(resource: RegisteredResource) -> str:
    parts = []
    for key in KEY_PROPERTIES.get(resource.type, ()):
        if key in resource.inputs and resource.inputs[key] not in (None, "", [], {}):
            value = resource.inputs[key]
            parts.append(f"{key}={json.dumps(value) if not isinstance(value, str) else value}")
    if resource.protect:
        parts.append("protected")
    return "  ".join(parts)


def render_tree(run: OfflineRun) -> str:
    custom = sum(1 for r in run.resources if r.custom)
    components = sum(1 for r in run.resources if not r.custom and r.type != "pulumi:pulumi:Stack")
    lines = [f"Previewing {run.project} (stack {run.stack}) offline: {custom} resources in {components} components"]
    for warning in run.warnings:
        lines.append(f"  warning: {warning}")
    children: dict[str | None, list[RegisteredResource]] = {}
    for resource in run.resources:
        children.setdefault(resource.parent, []).append(resource)

    def walk(parent: str | None, depth: int) -> None:
        for resource in children.get(parent, []):
            indent = "    " * depth
            marker = "+" if resource.custom else ("▸" if depth else "")
            summary = _summary(resource)
            lines.append(f"{indent}{marker} {resource.type}  {resource.name}" + (f"  ({summary})" if summary else ""))
            walk(resource.urn, depth + 1)

    walk(None, 0)
    lines.append("Outputs:")
    for key, value in run.outputs.items():
        lines.append(f"    {key}: {value if isinstance(value, str) else json.dumps(value)}")
    return "\n".join(lines)


def render_json(run: OfflineRun) -> str:
    return json.dumps(run.as_plan(), indent=2, default=str)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.plan", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default="dev", help="stack name: reads Pulumi.<stack>.yaml (default: dev)")
    parser.add_argument("--format", choices=("tree", "json"), default="tree")
    parser.add_argument(
        "--reveal-secrets",
        action="store_true",
        help="show secret input values instead of [secret] (for the offline twin: it runs the plan's own settings)",
    )
    review = parser.add_mutually_exclusive_group()
    review.add_argument("--diagram", action="store_true", help="print a Mermaid diagram of the delivery flow")
    review.add_argument("--write-diagram", action="store_true", help="write docs/diagram.mmd and the README's copy")
    review.add_argument("--diff", metavar="OTHER", help="show what differs from stack OTHER")
    review.add_argument("--cost", action="store_true", help="print an itemised monthly cost estimate")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        run = run_offline(args.stack, reveal_secrets=args.reveal_secrets)
        other = run_offline(args.diff) if args.diff else None
    except (ConfigError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.write_diagram:
        plan_diagram.write(run)
        output = "wrote docs/diagram.mmd and the README diagram"
    elif args.diagram:
        output = plan_diagram.render(run)
    elif other is not None:
        output = plan_diff.render(plan_diff.diff(run, other))
    elif args.cost:
        output = plan_cost.render(plan_cost.estimate(run, region=_region(run)))
    else:
        output = render_json(run) if args.format == "json" else render_tree(run)
    print(output.rstrip("\n"))
    return 0


def _region(run: OfflineRun) -> str:
    from tools.plan.offline import load_stack_config

    config, _ = load_stack_config(run.stack)
    return str(config.get("aws:region", "us-east-1"))


if __name__ == "__main__":
    raise SystemExit(main())
