"""The delivery pipeline: sources, CodeBuild in the VPC, ECS stage, approval, ECS prod, release record.

Interface used by stack.py (keep it): ``DeliveryPipeline(name, DeliveryPipelineArgs)`` with
``pipeline_name``, ``console_url`` and ``clone_url`` outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from infra.jobs import BatchJobs
from infra.model_service import ModelService
from infra.stack_types import Platform


@dataclass(frozen=True)
class DeliveryPipelineArgs:
    platform: Platform
    stage: ModelService
    prod: ModelService
    jobs: BatchJobs


class DeliveryPipeline(pulumi.ComponentResource):
    def __init__(self, name: str, args: DeliveryPipelineArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ml-delivery:pipeline:DeliveryPipeline", name, None, opts)
        self.pipeline_name: pulumi.Output[str] = pulumi.Output.from_input("")
        self.console_url: pulumi.Output[str] = pulumi.Output.from_input("")
        self.clone_url: pulumi.Output[str] = pulumi.Output.from_input("")
        self.register_outputs({})
