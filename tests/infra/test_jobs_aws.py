"""The plan's job definitions and schedules sent to the AWS APIs (a real moto server over HTTP): the
requests are accepted as they are, and the release step's revision copy keeps every infra setting."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from contracts.bucket_layout import CHAMPION_KEY, TRAINING_DATA_PREFIX, versioned_model_key
from contracts.exit_codes import ExitCode
from model_package.archive import open_package
from model_package.registry import ChampionPointer
from release.job_definitions import JobDefinitionUpdater
from retrain.job import Decision, RetrainJob
from retrain.settings import Settings as RetrainSettings
from retrain.synthetic import MULTICLASS_TARGET, REGRESSION_TARGET, generate_task_frame
from retrain.training import fit_candidate
from tests.infra.test_jobs import definitions, environment, register_params
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


@pytest.mark.parametrize(("task", "target"), [("multiclass", MULTICLASS_TARGET), ("regression", REGRESSION_TARGET)])
def test_scheduled_retrain_with_exactly_the_planned_env_refits_a_non_binary_champion(
    moto_server: Any, dev: OfflineRun, task: str, target: str
) -> None:
    """Issue #14: the retrain job definition's environment, as planned, refits a multiclass or regression
    champion: the gate metric/floor default to the champion task's, the target and name come from its
    manifest. Only the bucket and topic names are swapped for the moto server's."""
    s3 = boto3.client("s3", endpoint_url=moto_server.endpoint_url, region_name="us-east-1")
    sns = boto3.client("sns", endpoint_url=moto_server.endpoint_url, region_name="us-east-1")
    bucket = f"models-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    topic = sns.create_topic(Name=f"alerts-{uuid.uuid4().hex[:12]}")["TopicArn"]

    frame = generate_task_frame(task, 900, seed=5)
    champion = fit_candidate(frame, target, name=f"{task}-model", version=1, hyperparameters={"n_estimators": 30})
    s3.put_object(Bucket=bucket, Key=versioned_model_key(1), Body=champion.data)
    pointer = ChampionPointer(model_name=f"{task}-model", model_version=1, package_key=versioned_model_key(1),
                              model_sha256=open_package(champion.data).sha256,
                              release_key="releases/test-1.json", updated_at=datetime.now(UTC))  # fmt: skip
    s3.put_object(Bucket=bucket, Key=CHAMPION_KEY, Body=pointer.model_dump_json().encode())
    s3.put_object(Bucket=bucket, Key=f"{TRAINING_DATA_PREFIX}data.csv", Body=frame.to_csv(index=False).encode())

    planned = environment(dev, "retrain")
    env = {**planned, "MODEL_BUCKET": bucket, "ALERTS_TOPIC_ARN": topic,
           "DATA_URI": planned["DATA_URI"].replace("buckets-models-0a1b2c3", bucket)}  # fmt: skip
    assert set(env) == set(planned)
    result = RetrainJob(RetrainSettings.from_env(env), s3, sns).run()

    assert result.exit_code == ExitCode.OK, result.reason
    assert result.decision == Decision.ACCEPTED, result.reason
    candidate = open_package(s3.get_object(Bucket=bucket, Key=versioned_model_key(2))["Body"].read())
    assert candidate.manifest.task.type == task
    assert (candidate.manifest.target, candidate.manifest.name) == (target, f"{task}-model")
