"""Pipeline events to the alerts topic, as one readable sentence each.

EventBridge delivers CodePipeline's own events (CodePipeline User Guide, "Monitoring CodePipeline
events"): a finished execution (FAILED or SUCCEEDED) and a manual approval that started waiting.
Input transformers turn the event JSON into "Pipeline <name> execution <id> FAILED. Where to look:
<console url>", so an e-mail or SMS needs no decoding. The topic policy (infra/observability/alerts.py) already lets
events.amazonaws.com publish, and the stack key lets it encrypt, so the targets need no role.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from contracts.bucket_layout import console_object_url, evaluation_report_keys

EXECUTION_URL = (
    "https://<region>.console.aws.amazon.com/codesuite/codepipeline/pipelines/<pipeline>/executions/"
    "<execution>/visualization?region=<region>"
)


def execution_state_pattern(pipeline_name: str) -> str:
    return json.dumps(
        {
            "source": ["aws.codepipeline"],
            "detail-type": ["CodePipeline Pipeline Execution State Change"],
            "detail": {"pipeline": [pipeline_name], "state": ["FAILED", "SUCCEEDED"]},
        },
        sort_keys=True,
    )


def approval_waiting_pattern(pipeline_name: str) -> str:
    return json.dumps(
        {
            "source": ["aws.codepipeline"],
            "detail-type": ["CodePipeline Action Execution State Change"],
            "detail": {"pipeline": [pipeline_name], "state": ["STARTED"], "type": {"category": ["Approval"]}},
        },
        sort_keys=True,
    )


def _template(sentence: str) -> str:
    """EventBridge User Guide, "Amazon EventBridge input transformation": a JSON string with placeholders."""
    return json.dumps(sentence)


EXECUTION_PATHS = {
    "pipeline": "$.detail.pipeline",
    "execution": "$.detail.execution-id",
    "state": "$.detail.state",
    "region": "$.region",
}
EXECUTION_TEMPLATE = _template(f"Pipeline <pipeline> execution <execution> <state>. Where to look: {EXECUTION_URL}")
APPROVAL_PATHS = {**EXECUTION_PATHS, "stage": "$.detail.stage", "action": "$.detail.action"}


def approval_template(model_bucket: str) -> str:
    """The approval alert links the same evaluation report as the approval's ExternalEntityLink: its key is
    the execution id (contracts.bucket_layout.evaluation_report_keys), which the event carries."""
    report = console_object_url("<region>", model_bucket, evaluation_report_keys("<execution>")[1])
    return _template(
        "Pipeline <pipeline> execution <execution> passed its evaluation and waits for approval at <stage>/<action>. "
        f"Evaluation report (verdict, every check and the numbers behind it): {report} . "
        f"Approve or reject. Where to look: {EXECUTION_URL}"
    )


@dataclass(frozen=True)
class PipelineNotificationsArgs:
    pipeline_name: str
    rule_prefix: str
    topic_arn: pulumi.Input[str]
    model_bucket_name: pulumi.Input[str]


class PipelineNotifications(pulumi.ComponentResource):
    def __init__(self, name: str, args: PipelineNotificationsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ml-delivery:pipeline:PipelineNotifications", name, None, opts)
        rules: dict[str, tuple[str, dict[str, str], pulumi.Input[str], str]] = {
            "execution-finished": (execution_state_pattern(args.pipeline_name), EXECUTION_PATHS, EXECUTION_TEMPLATE,
                                   "Pipeline execution FAILED or SUCCEEDED -> alerts topic"),
            "approval-waiting": (approval_waiting_pattern(args.pipeline_name), APPROVAL_PATHS,
                                 pulumi.Output.from_input(args.model_bucket_name).apply(approval_template),
                                 "Manual approval waiting (with the evaluation report) -> alerts topic"),
        }  # fmt: skip
        self.rules: dict[str, aws.cloudwatch.EventRule] = {}
        for key, (pattern, paths, template, description) in rules.items():
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
                    arn=args.topic_arn,
                    target_id="alerts-topic",
                    input_transformer=aws.cloudwatch.EventTargetInputTransformerArgs(
                        input_paths=paths, input_template=template
                    ),
                ),
                opts=pulumi.ResourceOptions(parent=rule),
            )
            self.rules[key] = rule
        self.register_outputs({k: r.name for k, r in self.rules.items()})
