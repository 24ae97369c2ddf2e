"""Issue #12 defects 3, 6, 7 and 10: permissions AWS evaluates differently from what the plan granted.

Each test reads the policy document the plan would create and checks it against what the AWS doc (cited in
the infra code) says the service needs; each failed on the code before its fix.
"""

from __future__ import annotations

import json
from typing import Any

from infra.iam import RESOURCE_STAR_ACTIONS
from infra.offline import OfflineRun, run_offline
from tests.infra.plan_queries import allowed_actions, as_list, role_policy, statements

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
