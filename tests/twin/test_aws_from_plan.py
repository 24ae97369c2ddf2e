"""The twin's AWS side, provisioned on moto from the offline plan, behaves as the plan declares.

Every expectation is read from the plan itself (bucket names, patterns, parameter values, container
properties), so these tests follow the plan; the altered-copy tests prove the twin follows it too.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest

from infra.offline import run_offline
from infra.plan import render_json
from tests.support.servers import MotoServer
from twin.aws import PlanError, TwinAws, provision

TIMEOUT = 20.0
S3_RULE_TYPE = "aws:cloudwatch/eventRule:EventRule"


@pytest.fixture(scope="module")
def plans() -> dict[str, dict[str, Any]]:
    """Both stacks' plans, exactly as ``python -m infra.plan --stack <s> --format json`` prints them."""
    return {stack: json.loads(render_json(run_offline(stack))) for stack in ("dev", "prod")}


@pytest.fixture(scope="module")
def server() -> Iterator[MotoServer]:
    """A moto server of this module's own, so resetting it cannot disturb other tests."""
    moto = MotoServer()
    moto.start()
    yield moto
    moto.stop()


@pytest.fixture
def fresh(server: MotoServer) -> MotoServer:
    server.reset()
    return server


@pytest.fixture(scope="module")
def twin(server: MotoServer, plans: dict[str, dict[str, Any]]) -> TwinAws:
    """The dev plan on a clean server, shared by the read-mostly tests that run first in this module."""
    server.reset()
    return provision(plans["dev"], server.endpoint_url)


# --- plan look-ups ----------------------------------------------------------------------------------------


def of_type(plan: dict[str, Any], type_token: str) -> list[dict[str, Any]]:
    return [r for r in plan["resources"] if r["type"] == type_token]


def one(plan: dict[str, Any], type_token: str, name: str) -> dict[str, Any]:
    [found] = [r for r in of_type(plan, type_token) if r["name"] == name]
    return found


def rule_matching(plan: dict[str, Any], source: str) -> dict[str, Any]:
    """The one plan rule whose event pattern is about ``source`` events."""
    [found] = [r for r in of_type(plan, S3_RULE_TYPE)
               if source in json.loads(r["inputs"].get("eventPattern") or "{}").get("source", [])]  # fmt: skip
    return found


def model_trigger(plan: dict[str, Any]) -> tuple[dict[str, Any], str, str]:
    """The S3 rule, and the bucket and key its pattern names (read from the pattern, not assumed)."""
    rule = rule_matching(plan, "aws.s3")
    detail = json.loads(rule["inputs"]["eventPattern"])["detail"]
    [bucket] = detail["bucket"]["name"]
    [key] = detail["object"]["key"]
    return rule, bucket, key


def s3_event_key(message: dict[str, Any]) -> str:
    return message["detail"]["object"]["key"]


# --- tests -----------------------------------------------------------------------------------------------


def test_buckets_exist_with_the_plans_versioning_and_encryption(
    twin: TwinAws, plans: dict[str, dict[str, Any]]
) -> None:
    plan = plans["dev"]
    s3 = twin.client("s3")
    plan_buckets = of_type(plan, "aws:s3/bucket:Bucket")
    assert sorted(twin.buckets) == sorted(r["inputs"]["tags"]["purpose"] for r in plan_buckets)
    versioned = {r["inputs"]["bucket"]: r["inputs"]["versioningConfiguration"]["status"]
                 for r in of_type(plan, "aws:s3/bucketVersioning:BucketVersioning")}  # fmt: skip
    assert versioned, "the plan versions at least the model bucket"
    for name in twin.buckets.values():
        assert s3.get_bucket_versioning(Bucket=name).get("Status") == versioned.get(name)
        [rule] = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
        default = rule["ApplyServerSideEncryptionByDefault"]
        assert default["SSEAlgorithm"] == "aws:kms"
        # The plan's mocked key ARN resolves to the twin's real key, which exists.
        twin.client("kms").describe_key(KeyId=default["KMSMasterKeyID"])
    # A versioned bucket keeps both versions of an overwritten key.
    models = twin.buckets["models"]
    s3.put_object(Bucket=models, Key="versioning-check", Body=b"1")
    s3.put_object(Bucket=models, Key="versioning-check", Body=b"2")
    versions = s3.list_object_versions(Bucket=models, Prefix="versioning-check")["Versions"]
    assert len(versions) == 2


def test_model_upload_matches_the_pipeline_trigger_rule_and_other_keys_do_not(
    twin: TwinAws, plans: dict[str, dict[str, Any]]
) -> None:
    rule, bucket, key = model_trigger(plans["dev"])
    assert bucket == twin.buckets["models"]
    probe = twin.rules[rule["name"]]
    s3 = twin.client("s3")
    for other in (f"candidates/{key}", f"{key}.tmp", "training-data/data.parquet"):
        s3.put_object(Bucket=bucket, Key=other, Body=b"not the model")
    s3.put_object(Bucket=bucket, Key=key, Body=b"the model")
    event = twin.wait_for(probe.queue_url, lambda m: s3_event_key(m) == key, TIMEOUT)
    assert event["source"] == "aws.s3" and event["detail-type"] == "Object Created"
    assert event["detail"]["bucket"]["name"] == bucket
    # Barrier: the matching upload came last and has arrived, so anything else would have too.
    assert twin.drain(probe.queue_url) == []
    # The plan's own target (CodePipeline, which moto cannot invoke) is stood in for by a probe.
    [target] = [t for t in of_type(plans["dev"], "aws:cloudwatch/eventTarget:EventTarget")
                if t["inputs"]["rule"] == probe.rule_name]  # fmt: skip
    started = twin.wait_for(twin.target_probes[target["name"]], lambda m: s3_event_key(m) == key, TIMEOUT)
    assert started["detail"]["object"]["version-id"]


def test_publish_to_the_alerts_topic_reaches_its_probes(twin: TwinAws, plans: dict[str, dict[str, Any]]) -> None:
    [topic] = of_type(plans["dev"], "aws:sns/topic:Topic")
    probe = twin.topics[topic["name"]]
    attributes = twin.client("sns").get_topic_attributes(TopicArn=probe.topic_arn)["Attributes"]
    assert attributes["DisplayName"] == topic["inputs"]["displayName"]
    assert attributes["KmsMasterKeyId"] == twin.resolve(topic["inputs"]["kmsMasterKeyId"])
    twin.client("sns").publish(TopicArn=probe.topic_arn, Subject="drift", Message="PSI 0.31 on tenure")
    envelope = twin.wait_for(probe.queue_url, lambda m: m["Message"] == "PSI 0.31 on tenure", TIMEOUT)
    assert envelope["Type"] == "Notification" and envelope["Subject"] == "drift"
    assert envelope["TopicArn"] == probe.topic_arn
    # Every plan subscription (the on-call e-mail) has a probe with its filter; without one it gets all.
    subscriptions = of_type(plans["dev"], "aws:sns/topicSubscription:TopicSubscription")
    assert subscriptions and sorted(twin.subscription_probes) == sorted(s["name"] for s in subscriptions)
    for subscription in subscriptions:
        if "filterPolicy" not in subscription["inputs"]:
            url = twin.subscription_probes[subscription["name"]]
            twin.wait_for(url, lambda m: m["Message"] == "PSI 0.31 on tenure", TIMEOUT)


def test_batch_job_failed_event_matches_the_alert_rule_and_succeeded_does_not(
    twin: TwinAws, plans: dict[str, dict[str, Any]]
) -> None:
    rule = rule_matching(plans["dev"], "aws.batch")
    pattern = json.loads(rule["inputs"]["eventPattern"])
    assert pattern["detail"]["status"] == ["FAILED"]
    probe = twin.rules[rule["name"]]
    assert probe.pattern == pattern
    events = twin.client("events")

    def job_event(status: str) -> dict[str, Any]:
        detail = {
            "jobName": f"scheduled-drift-{status.lower()}", "jobQueue": twin.job_queue, "status": status,
            "statusReason": "Essential container in task exited",
            "jobDefinition": twin.job_definitions["ml-delivery-dev-drift"],
            "container": {"logStreamName": "drift/default/abc"},
        }  # fmt: skip
        return {"Source": "aws.batch", "DetailType": "Batch Job State Change", "Detail": json.dumps(detail)}

    result = events.put_events(Entries=[job_event("SUCCEEDED")])
    assert result["FailedEntryCount"] == 0
    events.put_events(Entries=[job_event("FAILED")])
    failed = twin.wait_for(probe.queue_url, lambda m: m["detail"]["status"] == "FAILED", TIMEOUT)
    assert failed["detail"]["jobName"] == "scheduled-drift-failed"
    assert twin.drain(probe.queue_url) == []
    # The plan's SNS target text, rendered by its own input transformer, names the job and the reason.
    [target] = [t for t in of_type(plans["dev"], "aws:cloudwatch/eventTarget:EventTarget")
                if t["inputs"]["rule"] == probe.rule_name]  # fmt: skip
    message = twin.wait_for(
        twin.target_probes[target["name"]], lambda m: "scheduled-drift-failed" in m["body"], TIMEOUT
    )
    assert "Essential container in task exited" in message["body"]
    assert twin.drain(twin.target_probes[target["name"]]) == []


def test_ssm_parameters_hold_the_plans_names_types_and_values(twin: TwinAws, plans: dict[str, dict[str, Any]]) -> None:
    parameters = of_type(plans["dev"], "aws:ssm/parameter:Parameter")
    assert parameters
    ssm = twin.client("ssm")
    for parameter in parameters:
        inputs = parameter["inputs"]
        stored = ssm.get_parameter(Name=inputs["name"])["Parameter"]
        assert stored["Value"] == inputs.get("value", inputs.get("insecureValue"))
        assert stored["Type"] == inputs["type"]
        assert twin.parameters[inputs["name"]] == stored["Value"]


def test_bad_plan_is_refused_with_what_is_expected(fresh: MotoServer) -> None:
    with pytest.raises(PlanError, match="'resources' list"):
        provision({"stack": "dev", "resources": "all of them"}, fresh.endpoint_url)
    with pytest.raises(PlanError, match=r"lacks \['inputs'\]"):
        provision({"stack": "dev", "resources": [{"urn": "u", "type": "t", "name": "n"}]}, fresh.endpoint_url)


def test_an_altered_pattern_in_a_copy_of_the_plan_changes_what_matches(
    fresh: MotoServer, plans: dict[str, dict[str, Any]]
) -> None:
    plan = copy.deepcopy(plans["dev"])
    rule, bucket, key = model_trigger(plan)
    pattern = json.loads(rule["inputs"]["eventPattern"])
    pattern["detail"]["object"]["key"] = [f"incoming/{key}"]
    rule["inputs"]["eventPattern"] = json.dumps(pattern)
    twin = provision(plan, fresh.endpoint_url)
    probe = twin.rules[rule["name"]]
    s3 = twin.client("s3")
    s3.put_object(Bucket=bucket, Key=key, Body=b"model")  # matched the original plan, not this one
    s3.put_object(Bucket=bucket, Key=f"incoming/{key}", Body=b"model")
    twin.wait_for(probe.queue_url, lambda m: s3_event_key(m) == f"incoming/{key}", TIMEOUT)
    assert twin.drain(probe.queue_url) == []
