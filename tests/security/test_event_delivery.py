"""Issue #17: nothing EventBridge fails to deliver is lost silently, and the job-failed alert stays valid
JSON whatever Batch puts in statusReason."""

from __future__ import annotations

import json
import re

import pytest

from tools.plan.offline import OfflineRun

ALERT_TARGET = "observability-job-failed-alert"
# A statusReason as Batch can send it: quotes, backslash, newline.
HOSTILE_REASON = 'Essential container exited: "OOM" in C:\\tmp\nnext line'


def render(template: str, values: dict[str, str]) -> str:
    """EventBridge "Transforming target input" as this test models it: a placeholder that is a whole JSON
    string value (``"<reason>"``) becomes a valid JSON string; one pasted into a longer string is not
    escaped. The old template (placeholders inside one sentence) therefore renders invalid JSON."""
    whole = re.sub(r'"<([A-Za-z0-9_.-]+)>"', lambda m: json.dumps(values[m.group(1)]), template)
    return re.sub(r"<([A-Za-z0-9_.-]+)>", lambda m: values[m.group(1)], whole)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_job_failed_template_keeps_any_status_reason_intact(plans: dict[str, OfflineRun], stack: str) -> None:
    transformer = plans[stack].one("aws:cloudwatch/eventTarget:EventTarget", ALERT_TARGET).inputs["inputTransformer"]
    values = {"job": "scheduled-retrain", "definition": "ml-delivery-dev-retrain:3", "reason": HOSTILE_REASON,
              "stream": "retrain/default/abc"}  # fmt: skip
    assert set(transformer["inputPaths"]) == set(values)
    rendered = render(transformer["inputTemplate"], values)
    message = json.loads(rendered)  # raises on the old quoted-string template
    assert message["reason"] == HOSTILE_REASON and message["job"] == "scheduled-retrain"
    assert f"/ml-delivery/{stack}/jobs" in json.dumps(message)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_event_target_has_a_dead_letter_queue_and_every_rule_an_alarm(
    plans: dict[str, OfflineRun], stack: str
) -> None:
    run = plans[stack]
    queue = run.one("aws:sqs/queue:Queue", "events-dlq")
    assert queue.inputs["sqsManagedSseEnabled"] is True
    targets = run.of_type("aws:cloudwatch/eventTarget:EventTarget")
    assert targets and all("events-dlq" in t.inputs.get("deadLetterConfig", {}).get("arn", "") for t in targets)
    policy = json.loads(run.one("aws:sqs/queuePolicy:QueuePolicy", "events-dlq-policy").inputs["policy"])
    (statement,) = policy["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"} and statement["Action"] == "sqs:SendMessage"
    assert statement["Condition"]["ArnLike"]["aws:SourceArn"].endswith(":rule/*")
    alarms = {a.name: a.inputs for a in run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    for rule in run.of_type("aws:cloudwatch/eventRule:EventRule"):
        alarm = alarms[f"{rule.name}-failed-invocations"]
        assert alarm["metricName"] == "FailedInvocations" and alarm["namespace"] == "AWS/Events"
        assert alarm["alarmActions"] == [run.outputs["alertsTopicArn"]]
    assert alarms["events-dlq-not-empty"]["metricName"] == "ApproximateNumberOfMessagesVisible"
