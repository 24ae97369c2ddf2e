"""The EventBridge Scheduler schedules of the retrain, drift and summary jobs in both stacks' plans."""

from __future__ import annotations

import json
from typing import Any

from botocore.session import get_session
from botocore.validate import ParamValidator

from infra.settings import parse_settings, validate_schedule_expression
from tests.infra.plan_queries import allowed_actions, role_policy
from tools.plan.offline import OfflineRun, load_stack_config, run_offline

SCHEDULE = "aws:scheduler/schedule:Schedule"
ACCOUNT = "123456789012"


def schedules(run: OfflineRun) -> dict[str, Any]:
    return {r.inputs["name"]: r for r in run.of_type(SCHEDULE)}


def configured(stack: str) -> dict[str, str]:
    settings = parse_settings(load_stack_config(stack)[0])
    return {
        "retrain": settings.retrain_schedule,
        "drift": settings.drift_schedule,
        "summary": settings.summary_schedule,
    }


def test_scheduled_jobs_are_in_both_plans_with_the_configured_expressions(stack: OfflineRun) -> None:
    found = schedules(stack)
    assert set(found) == {"retrain", "drift", "summary"}  # inference runs on demand only
    for job, expression in configured(stack.stack).items():
        inputs = found[job].inputs
        assert inputs["scheduleExpression"] == expression
        assert validate_schedule_expression(inputs["scheduleExpression"]) == expression
        assert inputs["scheduleExpressionTimezone"] == "UTC"
        assert inputs["flexibleTimeWindow"] == {"mode": "OFF"}
        assert inputs["state"] == "DISABLED"  # enabled by the Release action (issue #12, defect 5)
        assert inputs["groupName"] == f"ml-delivery-{stack.stack}-jobs"


def test_schedules_follow_config() -> None:
    run = run_offline(
        "dev",
        overrides={"ml-delivery:driftSchedule": "cron(30 6 * * ? *)", "ml-delivery:scheduleTimezone": "Europe/Berlin",
                   "ml-delivery:retrainSchedule": "rate(7 days)"},
    )  # fmt: skip
    found = schedules(run)
    assert found["drift"].inputs["scheduleExpression"] == "cron(30 6 * * ? *)"
    assert found["retrain"].inputs["scheduleExpression"] == "rate(7 days)"
    assert {s.inputs["scheduleExpressionTimezone"] for s in found.values()} == {"Europe/Berlin"}


def test_target_submits_the_job_by_definition_name_with_a_valid_submit_job_request(stack: OfflineRun) -> None:
    shape = get_session().get_service_model("batch").operation_model("SubmitJob").input_shape
    for job, schedule in schedules(stack).items():
        target = schedule.inputs["target"]
        assert target["arn"] == "arn:aws:scheduler:::aws-sdk:batch:submitJob"
        payload = json.loads(target["input"])
        # The universal target takes the API's members in PascalCase; botocore's shape spells them camelCase.
        request = {key[0].lower() + key[1:]: value for key, value in payload.items()}
        report = ParamValidator().validate(request, shape)
        assert not report.has_errors(), report.generate_report()
        assert request["jobDefinition"] == f"ml-delivery-{stack.stack}-{job}"  # a name: latest ACTIVE revision
        assert request["jobQueue"] == f"arn:aws:batch:us-east-1:{ACCOUNT}:job-queue/ml-delivery-{stack.stack}-jobs"
        assert target["roleArn"] == f"arn:aws:iam::{ACCOUNT}:role/jobs-schedules-{job}-role-0a1b2c3"
        assert target["deadLetterConfig"]["arn"] == f"arn:aws:sqs:us-east-1:{ACCOUNT}:jobs-schedules-dlq-0a1b2c3"
        assert 0 < target["retryPolicy"]["maximumRetryAttempts"] <= 185


def test_each_schedule_role_may_submit_only_its_own_job(stack: OfflineRun) -> None:
    group = f"arn:aws:scheduler:us-east-1:{ACCOUNT}:schedule-group/ml-delivery-{stack.stack}-jobs"
    for job in ("retrain", "drift", "summary"):
        role = stack.one("aws:iam/role:Role", f"jobs-schedules-{job}-role")
        (trust,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
        assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
        assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT},
                                      "ArnLike": {"aws:SourceArn": group}}  # fmt: skip
        actions = allowed_actions(role_policy(stack, f"jobs-schedules-{job}-role"))
        # kms:Decrypt: the schedules are encrypted with the stack key (issue #17, infra/foundation/hardening.py).
        assert set(actions) == {"batch:SubmitJob", "sqs:SendMessage", "kms:Decrypt"}
        assert sorted(actions["batch:SubmitJob"]) == sorted([
            f"arn:aws:batch:us-east-1:{ACCOUNT}:job-queue/ml-delivery-{stack.stack}-jobs",
            f"arn:aws:batch:us-east-1:{ACCOUNT}:job-definition/ml-delivery-{stack.stack}-{job}",
            f"arn:aws:batch:us-east-1:{ACCOUNT}:job-definition/ml-delivery-{stack.stack}-{job}:*",
            f"arn:aws:batch:us-east-1:{ACCOUNT}:job/*",  # a job ARN is created by the call itself
        ])  # fmt: skip
        assert actions["sqs:SendMessage"] == [f"arn:aws:sqs:us-east-1:{ACCOUNT}:jobs-schedules-dlq-0a1b2c3"]


def test_dead_letter_queue_is_encrypted_and_alarmed(stack: OfflineRun) -> None:
    queue = stack.one("aws:sqs/queue:Queue", "jobs-schedules-dlq")
    assert queue.inputs["sqsManagedSseEnabled"] is True
    alarm = stack.one("aws:cloudwatch/metricAlarm:MetricAlarm", "jobs-schedules-dlq-not-empty").inputs
    assert alarm["namespace"] == "AWS/SQS" and alarm["dimensions"] == {"QueueName": "jobs-schedules-dlq-0a1b2c3"}
    assert alarm["alarmActions"] == [f"arn:aws:sns:us-east-1:{ACCOUNT}:alerts-topic-0a1b2c3"]
    assert alarm["threshold"] == 1 and alarm["comparisonOperator"] == "GreaterThanOrEqualToThreshold"
