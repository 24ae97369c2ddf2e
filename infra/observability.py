"""Dashboards and SQL over captured payloads: a CloudWatch dashboard for the services and jobs, and a Glue
table plus an Athena workgroup over the capture bucket.

Interface used by stack.py (keep it): ``Observability(name, ObservabilityArgs)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from infra.jobs import BatchJobs
from infra.model_service import ModelService
from infra.stack_types import Platform


@dataclass(frozen=True)
class ObservabilityArgs:
    platform: Platform
    stage: ModelService
    prod: ModelService
    jobs: BatchJobs


class Observability(pulumi.ComponentResource):
    def __init__(self, name: str, args: ObservabilityArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ml-delivery:observability:Observability", name, None, opts)
        self.register_outputs({})
