"""Issue #12 defects 3, 6, 7 and 10: permissions AWS evaluates differently from what the plan granted.

Each test reads the policy document the plan would create and checks it against what the AWS doc (cited in
the infra code) says the service needs; each failed on the code before its fix.
"""

from __future__ import annotations

import json
from typing import Any

from infra.lib.iam import RESOURCE_STAR_ACTIONS
from tests.infra.plan_queries import allowed_actions, as_list, role_policy, statements
from tools.plan.offline import OfflineRun, run_offline

CONNECTION_ARN = "arn:aws:codeconnections:us-east-1:123456789012:connection/0f2a4b1c-1111-2222-3333-444455556666"


def _key_policy(run: OfflineRun) -> dict[str, Any]:
    return json.loads(run.one("aws:kms/key:Key", "data-key").inputs["policy"])


def _service_statements(document: dict[str, Any], service: str) -> list[dict[str, Any]]:
    return [
        s
        for s in statements(document)
        if service in as_list(s.get("Principal", {}).get("Service")) and s["Effect"] == "Allow"
    ]


def test_eventbridge_may_use_the_key_of_the_encrypted_topic_without_a_source_condition(stack: OfflineRun) -> None:
    """Defect 3: SNS Developer Guide, "Key management": EventBridge -> encrypted topic needs kms:Decrypt and
    kms:GenerateDataKey* for events.amazonaws.com, and that delivery does not carry aws:SourceAccount.
    The wildcard is named as the one action SNS calls (no wildcard actions anywhere)."""
    events = _service_statements(_key_policy(stack), "events.amazonaws.com")
    unconditioned = [s for s in events if not s.get("Condition")]
    assert unconditioned, f"events.amazonaws.com is only granted under a condition: {events}"
    actions = {a for s in unconditioned for a in as_list(s["Action"])}
    assert actions == {"kms:Decrypt", "kms:GenerateDataKey"}
    # CloudWatch alarms keep the confused-deputy condition (it is supported for them).
    (alarms,) = _service_statements(_key_policy(stack), "cloudwatch.amazonaws.com")
    assert alarms["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}
    assert "events.amazonaws.com" not in as_list(alarms["Principal"]["Service"])


def test_pipeline_lists_service_tasks_on_star_scoped_to_its_clusters(stack: OfflineRun) -> None:
    """Defect 6: ListTasks over a cluster is authorized against "*" and scoped with ecs:cluster."""
    policy = role_policy(stack, "delivery-pipeline-role")
    (list_tasks,) = [s for s in statements(policy) if "ecs:ListTasks" in as_list(s["Action"])]
    assert list_tasks["Action"] == ["ecs:ListTasks"]
    assert list_tasks["Resource"] == ["*"]
    ecs = "arn:aws:ecs:us-east-1:123456789012"
    assert list_tasks["Condition"] == {
        "ArnEquals": {"ecs:cluster": [f"{ecs}:cluster/{s}-cluster-0a1b2c3" for s in ("stage", "prod")]}
    }
    assert "ecs:ListTasks" in RESOURCE_STAR_ACTIONS


def test_codeconnections_source_may_set_the_artifact_acl() -> None:
    """Defect 7: CodePipeline User Guide, CodeStarSourceConnection service role permissions."""
    run = run_offline(
        "dev",
        overrides={
            "ml-delivery:sourceProvider": "codeconnections",
            "ml-delivery:connectionArn": CONNECTION_ARN,
            "ml-delivery:fullRepositoryId": "acme/churn",
        },
    )
    actions = allowed_actions(role_policy(run, "delivery-pipeline-role"))
    artifacts = run.outputs["artifactBucket"]
    assert actions.get("s3:PutObjectAcl") == [f"arn:aws:s3:::{artifacts}/*"]


def test_codecommit_source_needs_no_object_acl(dev: OfflineRun) -> None:
    assert "s3:PutObjectAcl" not in allowed_actions(role_policy(dev, "delivery-pipeline-role"))


def test_flow_log_role_may_describe_log_groups(stack: OfflineRun) -> None:
    """Defect 10: VPC User Guide, "IAM role for publishing flow logs to CloudWatch Logs"."""
    actions = allowed_actions(role_policy(stack, "network-flow-logs-role"))
    assert actions.get("logs:DescribeLogGroups") == ["*"]
    assert "logs:DescribeLogGroups" in RESOURCE_STAR_ACTIONS
    group = f"arn:aws:logs:us-east-1:123456789012:log-group:/ml-delivery/{stack.stack}/vpc-flow-logs"
    for action in ("logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"):
        assert group in actions[action] or f"{group}:*" in actions[action], action
