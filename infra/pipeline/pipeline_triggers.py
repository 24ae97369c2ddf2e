"""EventBridge rules that start the pipeline: a push to the branch, and a new model at the model key.

The rules' role may do exactly one thing: ``codepipeline:StartPipelineExecution`` on this pipeline.
The patterns are pure functions so the tests can put the very same pattern on a real (moto) bus.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.lib import iam


def code_push_pattern(repository_arn: str, branch: str) -> str:
    """CodePipeline User Guide, "CodeCommit source actions and EventBridge": branch created or updated."""
    return json.dumps(
        {
            "source": ["aws.codecommit"],
            "detail-type": ["CodeCommit Repository State Change"],
            "resources": [repository_arn],
            "detail": {
                "event": ["referenceCreated", "referenceUpdated"],
                "referenceType": ["branch"],
                "referenceName": [branch],
            },
        },
        sort_keys=True,
    )


def model_upload_pattern(bucket_name: str, model_key: str) -> str:
    """S3 User Guide, "EventBridge event message structure": ``Object Created`` for exactly the model key
    (an exact-match list, so ``models/model.zip`` or ``model.zip.tmp`` never start a run)."""
    pattern: dict[str, Any] = {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": [bucket_name]}, "object": {"key": [model_key]}},
    }
    return json.dumps(pattern, sort_keys=True)


@dataclass(frozen=True)
class PipelineTriggersArgs:
    pipeline_arn: pulumi.Input[str]
    rule_prefix: str
    model_bucket_name: pulumi.Input[str]
    model_key: str
    repository_arn: pulumi.Input[str] | None
    branch: str
    account_id: str
    region: str
    partition: str


class PipelineTriggers(pulumi.ComponentResource):
    def __init__(self, name: str, args: PipelineTriggersArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ml-delivery:pipeline:PipelineTriggers", name, None, opts)
        rules_arn = f"arn:{args.partition}:events:{args.region}:{args.account_id}:rule/{args.rule_prefix}-*"
        self.role = iam.role(
            f"{name}-role",
            service="events.amazonaws.com",
            account_id=args.account_id,
            # Only this stack's rules may assume it (IAM User Guide, "The confused deputy problem").
            source_arn=rules_arn,
            statements=[iam.allow(["codepipeline:StartPipelineExecution"], [args.pipeline_arn], sid="StartPipeline")],
            parent=self,
            description="EventBridge: start the delivery pipeline on a code push or a new model",
        )
        self.rules: dict[str, aws.cloudwatch.EventRule] = {}
        patterns: dict[str, tuple[pulumi.Input[str], str]] = {
            "model-upload": (
                pulumi.Output.from_input(args.model_bucket_name).apply(
                    lambda bucket: model_upload_pattern(bucket, args.model_key)
                ),
                f"A new model at s3://<model bucket>/{args.model_key} starts the pipeline",
            ),
        }
        if args.repository_arn is not None:
            patterns["code-push"] = (
                pulumi.Output.from_input(args.repository_arn).apply(lambda arn: code_push_pattern(arn, args.branch)),
                f"A push to branch {args.branch} starts the pipeline",
            )
        for key, (pattern, description) in patterns.items():
            rule = aws.cloudwatch.EventRule(
                f"{name}-{key}",
                aws.cloudwatch.EventRuleArgs(
                    name=f"{args.rule_prefix}-{key}", description=description, event_pattern=pattern, state="ENABLED"
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
            aws.cloudwatch.EventTarget(
                f"{name}-{key}-target",
                aws.cloudwatch.EventTargetArgs(
                    rule=rule.name,
                    arn=args.pipeline_arn,
                    role_arn=self.role.arn,
                    target_id="start-pipeline",
                    # EventBridge retries a failed start for a day; nothing is lost to a throttled API.
                    retry_policy=aws.cloudwatch.EventTargetRetryPolicyArgs(
                        maximum_event_age_in_seconds=86400, maximum_retry_attempts=185
                    ),
                ),
                opts=pulumi.ResourceOptions(parent=rule),
            )
            self.rules[key] = rule
        self.register_outputs({k: r.name for k, r in self.rules.items()})
