"""The Release action's configuration, read from the environment the infra gives the CodeBuild project."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from contracts.environment import ReleaseEnvironment
from release.errors import ConfigurationError
from release.job_definitions import parse_names
from release.schedules import ScheduleRef, parse_schedule_names

# S3 bucket naming rules (lower-case letters, digits, '.', '-'; 3-63 characters).
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class ReleaseSettings:
    model_bucket: str
    model_key: str
    pipeline_execution_id: str
    job_definition_names: tuple[str, ...]
    alerts_topic_arn: str | None
    schedule_names: tuple[ScheduleRef, ...] = ()
    # The pipeline whose ListActionExecutions says who approved (release/ledger.py); unset outside it.
    pipeline_name: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ReleaseSettings:
        env = ReleaseEnvironment.from_env(environ, error=ConfigurationError)  # contracts.environment
        bucket = env.model_bucket.strip()
        if not _BUCKET.match(bucket):
            raise ConfigurationError(
                f"MODEL_BUCKET={bucket!r} is not an S3 bucket name; the infra sets it to the model bucket"
            )
        execution_id = env.pipeline_execution_id.strip()
        if not execution_id or execution_id.startswith("#{"):
            raise ConfigurationError(
                f"PIPELINE_EXECUTION_ID={execution_id!r}: set it to #{{codepipeline.PipelineExecutionId}} "
                "in the Release action's environment"
            )
        model_key = env.model_key
        topic = (env.alerts_topic_arn or "").strip() or None
        if topic is not None and not topic.startswith("arn:"):
            raise ConfigurationError(f"ALERTS_TOPIC_ARN={topic!r} is not an ARN")
        pipeline = (env.pipeline_name or "").strip() or None
        if pipeline is not None and not re.fullmatch(r"[A-Za-z0-9.@_-]{1,100}", pipeline):
            raise ConfigurationError(f"PIPELINE_NAME={pipeline!r} is not a CodePipeline name ([A-Za-z0-9.@_-], <= 100)")
        return cls(
            model_bucket=bucket,
            model_key=model_key,
            pipeline_execution_id=execution_id,
            job_definition_names=tuple(parse_names(env.job_definition_names)),
            alerts_topic_arn=topic,
            schedule_names=tuple(parse_schedule_names(env.schedule_names)),
            pipeline_name=pipeline,
        )
