"""Reading the offline plan (``python -m tools.plan --format json``): the twin's only source of settings.

Nothing in the twin hand-copies a value from ``infra/``; every container setting comes from here, so a
change to the plan changes what the twin runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class PlanError(LookupError):
    """The plan lacks a resource or setting the twin needs, named in the message."""


def compute_plan(repo: Path, stack: str = "dev", python: str | None = None) -> dict[str, Any]:
    """The plan JSON of ``stack`` computed from the checkout at ``repo`` (so a changed ``infra/`` counts)."""
    done = subprocess.run(
        # --reveal-secrets: the twin runs the plan's own settings (e.g. the SecureString runtime settings the
        # app reads), so it needs their values; the plan printed for people keeps them masked.
        [python or sys.executable, "-m", "tools.plan", "--stack", stack, "--format", "json", "--reveal-secrets"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise PlanError(f"tools.plan --stack {stack} failed in {repo}: {done.stderr.strip()[-3000:]}")
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def _json_field(value: Any) -> Any:
    """pulumi-aws takes containerDefinitions/containerProperties as JSON strings; accept either form."""
    return json.loads(value) if isinstance(value, str) else value


def _physical_matches(resource: dict[str, Any], physical: str) -> bool:
    """Whether ``physical`` names ``resource``: its explicit name, or the mock's auto-name ``<logical>-<suffix>``."""
    explicit = resource["inputs"].get("name")
    if explicit is not None:
        return bool(explicit == physical)
    prefix = f"{resource['name']}-"
    return physical.startswith(prefix) and "-" not in physical[len(prefix) :]


def _inputs_of(resource: dict[str, Any]) -> dict[str, Any]:
    """A plan resource's inputs (the plan is parsed JSON, so its type is stated here once)."""
    inputs: dict[str, Any] = resource["inputs"]
    return inputs


@dataclass(frozen=True)
class Plan:
    """Look-ups over one plan document."""

    doc: dict[str, Any]

    @property
    def outputs(self) -> dict[str, Any]:
        outputs: dict[str, Any] = self.doc["outputs"]
        return outputs

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        return [r for r in self.doc["resources"] if r["type"] == type_]

    def one(self, type_: str, physical: str | None = None, **inputs: Any) -> dict[str, Any]:
        """The single resource of ``type_`` whose physical name is ``physical`` and/or whose inputs match."""
        found = [
            r
            for r in self.of_type(type_)
            if (physical is None or _physical_matches(r, physical))
            and all(r["inputs"].get(k) == v for k, v in inputs.items())
        ]
        if len(found) != 1:
            names = [r["name"] for r in self.of_type(type_)]
            raise PlanError(
                f"expected one {type_} named {physical!r} with {inputs}, found {len(found)}; the plan has {names}"
            )
        resource: dict[str, Any] = found[0]
        return resource

    def pipeline(self) -> dict[str, Any]:
        return _inputs_of(self.one("aws:codepipeline/pipeline:Pipeline", physical=self.outputs["pipelineName"]))

    def codebuild_project(self, name: str) -> dict[str, Any]:
        return _inputs_of(self.one("aws:codebuild/project:Project", physical=name))

    def service(self, cluster: str, service: str) -> dict[str, Any]:
        inputs = _inputs_of(self.one("aws:ecs/service:Service", physical=service))
        if not str(inputs.get("cluster", "")).endswith(f"/{cluster}"):
            raise PlanError(f"service {service} is in {inputs.get('cluster')}, not cluster {cluster}")
        return inputs

    def task_definition(self, arn_or_family: str) -> dict[str, Any]:
        """The task definition a service names (``arn:...:task-definition/<family>:<rev>`` or a family)."""
        family = arn_or_family.rsplit("/", 1)[-1].split(":", 1)[0]
        inputs = dict(self.one("aws:ecs/taskDefinition:TaskDefinition", family=family)["inputs"])
        inputs["containerDefinitions"] = _json_field(inputs["containerDefinitions"])
        return inputs

    def target_group(self, arn: str) -> dict[str, Any]:
        physical = arn.split(":targetgroup/", 1)[1].split("/", 1)[0]
        return _inputs_of(self.one("aws:lb/targetGroup:TargetGroup", physical=physical))

    def job_definition(self, name: str) -> dict[str, Any]:
        inputs = dict(self.one("aws:batch/jobDefinition:JobDefinition", name=name)["inputs"])
        inputs["containerProperties"] = _json_field(inputs["containerProperties"])
        return inputs

    @property
    def region(self) -> str:
        for resource in self.of_type("aws:codebuild/project:Project"):
            for var in resource["inputs"]["environment"].get("environmentVariables", []):
                if var["name"] == "AWS_REGION":
                    return str(var["value"])
        return str(self.outputs["alertsTopicArn"].split(":")[3])
