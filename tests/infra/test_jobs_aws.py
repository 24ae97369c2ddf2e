"""The plan's job definitions and schedules sent to the AWS APIs (a real moto server over HTTP): the
requests are accepted as they are, and the release step's revision copy keeps every infra setting."""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3
import pytest

from release.job_definitions import JobDefinitionUpdater
from tests.infra.test_jobs import definitions, register_params
from tests.infra.test_jobs_schedules import schedules
from tools.plan.offline import OfflineRun

PINNED = "123456789012.dkr.ecr.us-east-1.amazonaws.com/registry-jobs-0a1b2c3:git-0123456789ab"


@pytest.fixture
def batch(moto_server: Any) -> Any:
    return boto3.client("batch", endpoint_url=moto_server.endpoint_url, region_name="us-east-1")


def test_release_step_copies_the_infra_revision_and_swaps_only_the_image(batch: Any, prod: OfflineRun) -> None:
    suffix = uuid.uuid4().hex[:8]
    names = []
    registered: dict[str, dict[str, Any]] = {}
    for definition in definitions(prod).values():
        params = register_params(definition.inputs)
        params["jobDefinitionName"] = f"{params['jobDefinitionName']}-{suffix}"  # unique per test run
        batch.register_job_definition(**params)
        names.append(params["jobDefinitionName"])
        registered[params["jobDefinitionName"]] = params

    updater = JobDefinitionUpdater(batch)
    arns = updater.apply(updater.plan(names, PINNED))

    for name, arn in zip(names, arns, strict=True):
        assert arn.endswith(f"{name}:2")
        revisions = batch.describe_job_definitions(jobDefinitionName=name, status="ACTIVE")["jobDefinitions"]
        latest = max(revisions, key=lambda d: d["revision"])
        ours = registered[name]
        assert latest["containerProperties"]["image"] == PINNED
        for key in ("command", "environment", "resourceRequirements", "jobRoleArn", "executionRoleArn",
                    "networkConfiguration", "logConfiguration"):  # fmt: skip
            assert latest["containerProperties"][key] == ours["containerProperties"][key], (name, key)
        assert latest["retryStrategy"]["attempts"] == ours["retryStrategy"]["attempts"]
        assert latest["timeout"] == ours["timeout"]
        assert latest["platformCapabilities"] == ["FARGATE"]
        # Pulumi's own revision stays ACTIVE next to the release's (it is never deregistered by the release).
        assert {d["revision"] for d in revisions} == {1, 2}


def test_schedules_are_accepted_by_the_scheduler_api(moto_server: Any, dev: OfflineRun) -> None:
    client = boto3.client("scheduler", endpoint_url=moto_server.endpoint_url, region_name="us-east-1")
    group = f"ml-delivery-test-{uuid.uuid4().hex[:8]}"
    client.create_schedule_group(Name=group)
    for job, schedule in schedules(dev).items():
        inputs = schedule.inputs
        target = inputs["target"]
        request: dict[str, Any] = {
            "Name": job,
            "GroupName": group,
            "ScheduleExpression": inputs["scheduleExpression"],
            "ScheduleExpressionTimezone": inputs["scheduleExpressionTimezone"],
            "FlexibleTimeWindow": {"Mode": inputs["flexibleTimeWindow"]["mode"]},
            "State": inputs["state"],
            "Target": {
                "Arn": target["arn"],
                "RoleArn": target["roleArn"],
                "Input": target["input"],
                "RetryPolicy": {"MaximumEventAgeInSeconds": target["retryPolicy"]["maximumEventAgeInSeconds"],
                                "MaximumRetryAttempts": target["retryPolicy"]["maximumRetryAttempts"]},
                "DeadLetterConfig": {"Arn": target["deadLetterConfig"]["arn"]},
            },
        }  # fmt: skip
        client.create_schedule(**request)
        stored = client.get_schedule(Name=job, GroupName=group)
        assert stored["ScheduleExpression"] == inputs["scheduleExpression"]
        assert json.loads(stored["Target"]["Input"])["JobDefinition"] == f"ml-delivery-dev-{job}"
