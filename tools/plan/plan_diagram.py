"""``--diagram``: a Mermaid flowchart of the delivery flow, generated from the plan (never drawn by hand).

Reads the pipeline's stages and actions, the EventBridge rules that start it, the ECS services its deploy
actions target, the Batch jobs and their schedules, the buckets and the alerts topic. ``make diagram``
writes it to ``docs/diagram.mmd`` and the README embeds the same text.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tools.plan.offline import OfflineRun, RegisteredResource


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


def _targets(run: OfflineRun, rule: RegisteredResource) -> list[str]:
    """ARNs a rule delivers to; targets name their rule by its physical name."""
    physical = rule.inputs.get("name") or f"{rule.name}-0a1b2c3"
    return [str(t.inputs.get("arn")) for t in run.of_type("aws:cloudwatch/eventTarget:EventTarget")
            if t.inputs.get("rule") == physical]  # fmt: skip


def _sources_and_triggers(run: OfflineRun, buckets: dict[str, RegisteredResource]) -> tuple[list[str], list[str]]:
    lines, edges = [], []
    pipeline = next((_id(p.name) for p in run.of_type("aws:codepipeline/pipeline:Pipeline")), None)
    repository = next((_id(r.name) for r in run.of_type("aws:codecommit/repository:Repository")), None)
    for repo in run.of_type("aws:codecommit/repository:Repository"):
        lines.append(f'  {_id(repo.name)}[("CodeCommit {repo.inputs.get("repositoryName", repo.name)}")]')
    models = next((_id(n) for n in buckets if "models" in n), None)
    for rule in run.of_type("aws:cloudwatch/eventRule:EventRule"):
        pattern, targets = _pattern(rule), _targets(run, rule)
        sources = pattern.get("source", [])
        if pipeline and any(":codepipeline:" in t for t in targets):
            if "aws.codecommit" in sources and repository:
                branch = pattern.get("detail", {}).get("referenceName", ["?"])[0]
                edges.append(f'  {repository} -->|"EventBridge: push to {branch}"| {pipeline}')
            if "aws.s3" in sources and models:
                key = pattern.get("detail", {}).get("object", {}).get("key", ["?"])[0]
                edges.append(f'  {models} -->|"EventBridge: {key} created"| {pipeline}')
        if any(":sns:" in t for t in targets):
            origin = pipeline if "aws.codepipeline" in sources else "batch_jobs" if "aws.batch" in sources else None
            if origin:
                edges.append(f'  {origin} -.->|"{" / ".join(pattern.get("detail-type", []))}"| alerts_topic')
    return lines, edges


def _services(run: OfflineRun, buckets: dict[str, RegisteredResource]) -> tuple[list[str], list[str]]:
    lines, edges = [], []
    capture = next((n for n in buckets if "capture" in n), None)
    for service in run.of_type("aws:ecs/service:Service"):
        environment = service.name.split("-")[0]
        lines.append(f'  {_id(service.name)}["{_label("ECS " + service.name, "Fargate, private subnets")}"]')
        alb = next(
            (lb for lb in run.of_type("aws:lb/loadBalancer:LoadBalancer") if lb.name.startswith(environment)), None
        )
        if alb:
            lines.append(f'  {_id(alb.name)}(["ALB {alb.name}"])')
            edges.append(f"  {_id(alb.name)} --> {_id(service.name)}")
        if capture:
            edges.append(f"  {_id(service.name)} -.->|payload capture| {_id(capture)}")
    return lines, edges


def _jobs(run: OfflineRun, buckets: dict[str, RegisteredResource]) -> tuple[list[str], list[str]]:
    jobs = run.of_type("aws:batch/jobDefinition:JobDefinition")
    if not jobs:
        return [], []
    lines = ['  subgraph batch_jobs["AWS Batch on Fargate, private subnets"]']
    lines += [f'    {_id(job.name)}[["{_label(job.name)}"]]' for job in jobs]
    lines.append("  end")
    edges = []
    for schedule in run.of_type("aws:scheduler/schedule:Schedule"):
        lines.append(f'  {_id(schedule.name)}(["{_label(schedule.inputs.get("scheduleExpression", ""))}"])')
        target = json.dumps(schedule.inputs.get("target", {}))
        job = next((j for j in jobs if j.inputs.get("name", j.name) in target), None)
        if job:
            edges.append(f"  {_id(schedule.name)} -->|schedule| {_id(job.name)}")
    models = next((n for n in buckets if "models" in n), None)
    capture = next((n for n in buckets if "capture" in n), None)
    for job in jobs:
        if "retrain" in job.name and models:
            edges.append(f"  {_id(job.name)} -->|model.zip if it beats the champion| {_id(models)}")
        if "drift" in job.name and capture:
            edges.append(f"  {_id(capture)} -->|captured payloads| {_id(job.name)}")
    return lines, edges


def render(run: OfflineRun) -> str:
    lines: list[str] = ["flowchart LR"]
    edges: list[str] = []
    stage_nodes = _pipeline(run, lines, edges)
    buckets = {b.name: b for b in run.of_type("aws:s3/bucket:Bucket")}
    lines += [f'  {_id(name)}[("S3 {name.removeprefix("buckets-")}")]' for name in buckets]
    for area in (_sources_and_triggers, _services, _jobs):
        area_lines, area_edges = area(run, buckets)
        lines += area_lines
        edges += area_edges
    models = next((n for n in buckets if "models" in n), None)
    if "Release" in stage_nodes and models:
        edges.append(f"  {stage_nodes['Release']} -->|release record, ledger, champion| {_id(models)}")
    if "Evaluate" in stage_nodes:
        # evaluation/: smoke + latency against the stage service, report to the model bucket, prod capture replay.
        edges.append(f"  {stage_nodes['Evaluate']} -.->|smoke + latency| stage_service")
        if models:
            edges.append(f"  {stage_nodes['Evaluate']} -->|evaluation report| {_id(models)}")
        capture = next((n for n in buckets if "capture" in n), None)
        if capture:
            edges.append(f"  {_id(capture)} -->|prod capture replay| {stage_nodes['Evaluate']}")
    for topic in run.of_type("aws:sns/topic:Topic"):
        lines.append(f'  alerts_topic{{{{"SNS {topic.name}"}}}}')
        if run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm"):
            lines.append("  alarms([CloudWatch alarms: 5xx, p99, unhealthy hosts])")
            edges.append("  alarms -.-> alerts_topic")
    return "\n".join(lines + edges) + "\n"


ROOT = Path(__file__).resolve().parents[2]
START, END = "<!-- diagram:start -->", "<!-- diagram:end -->"


def write(run: OfflineRun, readme: Path = ROOT / "README.md", target: Path = ROOT / "docs" / "diagram.mmd") -> None:
    """``make diagram``: the diagram file and the README's embedded copy, from the same render."""
    diagram = render(run)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(diagram)
    text = readme.read_text()
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    readme.write_text(f"{before}{START}\n```mermaid\n{diagram}```\n{END}{after}")
