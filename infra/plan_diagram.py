"""``--diagram``: a Mermaid flowchart of the delivery flow, generated from the plan (never drawn by hand).

Reads the pipeline's stages and actions, the EventBridge rules that start it, the ECS services its deploy
actions target, the Batch jobs and their schedules, the buckets and the alerts topic. ``make diagram``
writes it to ``docs/diagram.mmd`` and the README embeds the same text.
"""

from __future__ import annotations

import json
import re
from typing import Any

from infra.offline import OfflineRun, RegisteredResource


def _id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


def _label(*lines: str) -> str:
    return "<br/>".join(line.replace('"', "'") for line in lines if line)


def _pattern(rule: RegisteredResource) -> dict[str, Any]:
    raw = rule.inputs.get("eventPattern")
    return json.loads(raw) if isinstance(raw, str) else {}


def _logical(run: OfflineRun, type_token: str, physical: str) -> RegisteredResource | None:
    """Pipeline configurations name resources by physical name; the plan knows them by logical name."""
    return next((r for r in run.of_type(type_token) if physical == r.inputs.get("name")
                 or str(physical).startswith(r.name)), None)  # fmt: skip


def _pipeline(run: OfflineRun, lines: list[str], edges: list[str]) -> dict[str, str]:
    """Stages as a chain; returns the node id of each stage by name."""
    stage_nodes: dict[str, str] = {}
    for pipeline in run.of_type("aws:codepipeline/pipeline:Pipeline"):
        lines.append(f'  subgraph {_id(pipeline.name)}["CodePipeline {pipeline.inputs.get("pipelineType", "")}"]')
        lines.append("    direction LR")
        previous = None
        for stage in pipeline.inputs.get("stages", []):
            node = _id(f"stage_{stage['name']}")
            actions = [f"{a['name']} ({a['provider']})" for a in stage.get("actions", [])]
            lines.append(f'    {node}["{_label(stage["name"], *actions)}"]')
            if previous:
                lines.append(f"    {previous} --> {node}")
            previous = node
            stage_nodes[stage["name"]] = node
            for action in stage.get("actions", []):
                config = action.get("configuration") or {}
                if action.get("provider") == "ECS" and "ServiceName" in config:
                    service = _logical(run, "aws:ecs/service:Service", config["ServiceName"])
                    if service is not None:
                        edges.append(f"  {node} -->|deploys| {_id(service.name)}")
        lines.append("  end")
    return stage_nodes


def render(run: OfflineRun) -> str:
    lines = ["flowchart LR"]
    edges: list[str] = []
    pipeline_nodes = _pipeline(run, lines, edges)
    pipeline_ids = [_id(p.name) for p in run.of_type("aws:codepipeline/pipeline:Pipeline")]
    for repo in run.of_type("aws:codecommit/repository:Repository"):
        lines.append(f'  {_id(repo.name)}[("CodeCommit {repo.inputs.get("repositoryName", repo.name)}")]')
    buckets = {b.name: b for b in run.of_type("aws:s3/bucket:Bucket")}
    for name in buckets:
        lines.append(f'  {_id(name)}[("S3 {name.removeprefix("buckets-")}")]')
    for rule in run.of_type("aws:cloudwatch/eventRule:EventRule"):
        pattern = _pattern(rule)
        sources = pattern.get("source", [])
        targets = [
            t
            for t in run.of_type("aws:cloudwatch/eventTarget:EventTarget")
            if t.inputs.get("rule", "").startswith(rule.name)
        ]
        to_pipeline = any(":codepipeline:" in str(t.inputs.get("arn")) for t in targets)
        to_topic = any(":sns:" in str(t.inputs.get("arn")) for t in targets)
        if to_pipeline and pipeline_ids:
            origin = next((_id(r.name) for r in run.of_type("aws:codecommit/repository:Repository")), None) \
                if "aws.codecommit" in sources else next((_id(n) for n in buckets if "models" in n), None)  # fmt: skip
            key = pattern.get("detail", {}).get("object", {}).get("key")
            label = f"EventBridge {key[0] if key else rule.name}".replace('"', "'")
            if origin:
                edges.append(f'  {origin} -->|"{label}"| {pipeline_ids[0]}')
        if to_topic:
            edges.append(f"  {pipeline_ids[0] if pipeline_ids else _id(rule.name)} -.->|{rule.name}| alerts_topic")
    for service in run.of_type("aws:ecs/service:Service"):
        alb = next(
            (
                lb
                for lb in run.of_type("aws:lb/loadBalancer:LoadBalancer")
                if lb.name.split("-")[0] == service.name.split("-")[0]
            ),
            None,
        )
        lines.append(f'  {_id(service.name)}["{_label("ECS " + service.name, "Fargate, private subnets")}"]')
        if alb:
            lines.append(f'  {_id(alb.name)}(["ALB {alb.name}"])')
            edges.append(f"  {_id(alb.name)} --> {_id(service.name)}")
        capture = next((n for n in buckets if "capture" in n), None)
        if capture:
            edges.append(f"  {_id(service.name)} -.->|payload capture| {_id(capture)}")
    jobs = run.of_type("aws:batch/jobDefinition:JobDefinition")
    for job in jobs:
        lines.append(f'  {_id(job.name)}[["{_label("Batch " + job.name)}"]]')
    for schedule in run.of_type("aws:scheduler/schedule:Schedule"):
        lines.append(f'  {_id(schedule.name)}(["{_label(schedule.inputs.get("scheduleExpression", ""))}"])')
        target = json.dumps(schedule.inputs.get("target", {}))
        job = next((j for j in jobs if j.inputs.get("name", j.name) in target), None)
        if job:
            edges.append(f"  {_id(schedule.name)} --> {_id(job.name)}")
    models = next((n for n in buckets if "models" in n), None)
    for job in jobs:
        if "retrain" in job.name and models:
            edges.append(f"  {_id(job.name)} -->|model.zip if it beats the champion| {_id(models)}")
        if "drift" in job.name:
            edges.append(f"  {_id(job.name)} -.->|drift alerts| alerts_topic")
    if "Release" in pipeline_nodes and models:
        edges.append(f"  {pipeline_nodes['Release']} -->|release record, champion| {_id(models)}")
    for topic in run.of_type("aws:sns/topic:Topic"):
        lines.append(f'  alerts_topic{{{{"SNS {topic.name}"}}}}')
        if run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm"):
            edges.append("  alarms([CloudWatch alarms]) -.-> alerts_topic")
    return "\n".join(lines + edges) + "\n"
