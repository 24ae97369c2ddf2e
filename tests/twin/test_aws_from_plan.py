"""The twin's AWS side, provisioned on moto from the offline plan, behaves as the plan declares.

Every expectation is read from the plan itself (bucket names, patterns, parameter values, container
properties), so these tests follow the plan; the altered-copy tests prove the twin follows it too.
"""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from pulumi.runtime.rpc import UNKNOWN

from tests.support.servers import MotoServer
from tools.plan.offline import run_offline
from tools.plan.plan import render_json
from twin.aws import PlanError, TwinAws, provision

TIMEOUT = 20.0
RULE_TYPE = "aws:cloudwatch/eventRule:EventRule"


@pytest.fixture(scope="module")
def plans() -> dict[str, dict[str, Any]]:
    """Both stacks' plans, exactly as ``python -m tools.plan --stack <s> --format json`` prints them."""
    return {stack: json.loads(render_json(run_offline(stack))) for stack in ("dev", "prod")}


def _server() -> Iterator[MotoServer]:
    moto = MotoServer()
    moto.start()
    yield moto
    moto.stop()


shared_server = pytest.fixture(scope="module", name="shared_server")(_server)
scratch_server = pytest.fixture(scope="module", name="scratch_server")(_server)


@pytest.fixture
def fresh(scratch_server: MotoServer) -> MotoServer:
    """An empty moto server for a test that provisions its own (altered) plan; never the shared one."""
    scratch_server.reset()
    return scratch_server


@pytest.fixture(scope="module")
def twin(shared_server: MotoServer, plans: dict[str, dict[str, Any]]) -> TwinAws:
    """The dev plan on a server of this module's own, shared by the tests that only add objects/messages."""
    return provision(plans["dev"], shared_server.endpoint_url)


# --- plan look-ups ----------------------------------------------------------------------------------------


def of_type(plan: dict[str, Any], type_token: str) -> list[dict[str, Any]]:
    return [r for r in plan["resources"] if r["type"] == type_token]


def rule_matching(plan: dict[str, Any], source: str) -> dict[str, Any]:
    """The one plan rule whose event pattern is about ``source`` events."""
    [found] = [r for r in of_type(plan, RULE_TYPE)
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
    for purpose, name in twin.buckets.items():
        assert s3.get_bucket_versioning(Bucket=name).get("Status") == versioned.get(name)
        [rule] = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
        default = rule["ApplyServerSideEncryptionByDefault"]
        if purpose == "access-logs":  # ALB access logs support only SSE-S3 (docs/security.md)
            assert default["SSEAlgorithm"] == "AES256"
            continue
        assert default["SSEAlgorithm"] == "aws:kms"
        # The plan's mocked key ARN resolves to the twin's real key, which exists.
        twin.client("kms").describe_key(KeyId=default["KMSMasterKeyID"])
    # A versioned bucket keeps both versions of an overwritten key.
    models = twin.buckets["models"]
    s3.put_object(Bucket=models, Key="versioning-check", Body=b"1")
    s3.put_object(Bucket=models, Key="versioning-check", Body=b"2")
    versions = s3.list_object_versions(Bucket=models, Prefix="versioning-check")["Versions"]
    assert len(versions) == 2
    # Objects are written under the plan's default encryption: SSE-KMS with the stack key.
    head = s3.head_object(Bucket=models, Key="versioning-check")
    assert head["ServerSideEncryption"] == "aws:kms"
    sse_type = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    [sse] = [r for r in of_type(plan, sse_type) if r["inputs"]["bucket"] == models]
    planned_key = sse["inputs"]["rules"][0]["applyServerSideEncryptionByDefault"]["kmsMasterKeyId"]
    assert head["SSEKMSKeyId"] == twin.resolve(planned_key) != planned_key


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
    stored = twin.client("events").describe_rule(Name=probe.rule_name, EventBusName=probe.event_bus)
    assert stored["EventPattern"] == rule["inputs"]["eventPattern"]  # verbatim
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
    # The plan's SNS target text, rendered by its own input transformer, names the job and the reason (a JSON
    # object since issue #17: each placeholder a whole string value, so any statusReason stays valid JSON).
    [target] = [t for t in of_type(plans["dev"], "aws:cloudwatch/eventTarget:EventTarget")
                if t["inputs"]["rule"] == probe.rule_name]  # fmt: skip
    message = twin.wait_for(twin.target_probes[target["name"]], lambda m: m["job"] == "scheduled-drift-failed", TIMEOUT)
    assert message["reason"] == "Essential container in task exited"
    assert twin.drain(twin.target_probes[target["name"]]) == []


def test_ssm_parameters_hold_the_plans_names_types_and_values(twin: TwinAws, plans: dict[str, dict[str, Any]]) -> None:
    parameters = of_type(plans["dev"], "aws:ssm/parameter:Parameter")
    assert parameters
    ssm = twin.client("ssm")
    for parameter in parameters:
        inputs = parameter["inputs"]
        stored = ssm.get_parameter(Name=inputs["name"], WithDecryption=True)["Parameter"]
        assert stored["Value"] == inputs.get("value", inputs.get("insecureValue"))
        assert stored["Type"] == inputs["type"]
        assert twin.parameters[inputs["name"]] == stored["Value"]


def test_bad_plan_is_refused_with_what_is_expected(fresh: MotoServer) -> None:
    with pytest.raises(PlanError, match="'resources' list"):
        provision({"stack": "dev", "resources": "all of them"}, fresh.endpoint_url)
    with pytest.raises(PlanError, match=r"lacks \['inputs'\]"):
        provision({"stack": "dev", "resources": [{"urn": "u", "type": "t", "name": "n"}]}, fresh.endpoint_url)
    broken = {
        "urn": "u",
        "type": "aws:ssm/parameter:Parameter",
        "name": "p",
        "inputs": {"name": "/p", "type": "String"},
    }
    with pytest.raises(PlanError, match=r"'p' \(aws:ssm/parameter:Parameter\) has neither 'value' nor 'insecureValue'"):
        provision({"stack": "dev", "resources": [broken]}, fresh.endpoint_url)
    no_pattern_target = {"urn": "t", "type": "aws:cloudwatch/eventTarget:EventTarget", "name": "t", "inputs": {}}
    with pytest.raises(PlanError, match=r"'t' \(aws:cloudwatch/eventTarget:EventTarget\) lacks input 'rule'"):
        provision({"stack": "dev", "resources": [no_pattern_target]}, fresh.endpoint_url)


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


def test_job_queue_and_definitions_carry_the_plans_container_properties_verbatim(
    twin: TwinAws, plans: dict[str, dict[str, Any]]
) -> None:
    batch = twin.client("batch")
    [queue] = of_type(plans["dev"], "aws:batch/jobQueue:JobQueue")
    [described_queue] = batch.describe_job_queues(jobQueues=[twin.job_queue])["jobQueues"]
    assert described_queue["jobQueueName"] == queue["inputs"]["name"]
    assert described_queue["priority"] == queue["inputs"]["priority"]
    definitions = of_type(plans["dev"], "aws:batch/jobDefinition:JobDefinition")
    assert sorted(twin.job_definitions) == sorted(d["inputs"]["name"] for d in definitions)
    for definition in definitions:
        planned = twin.resolve(json.loads(definition["inputs"]["containerProperties"]))
        described = batch.describe_job_definitions(jobDefinitionName=definition["inputs"]["name"], status="ACTIVE")
        live = min(described["jobDefinitions"], key=lambda d: d["revision"])  # the plan's, not a later release
        container = live["containerProperties"]
        for key in ("image", "command", "environment", "resourceRequirements", "jobRoleArn", "executionRoleArn"):
            assert container[key] == planned[key], (definition["name"], key)
        assert live["platformCapabilities"] == definition["inputs"]["platformCapabilities"]
        assert live["timeout"] == definition["inputs"]["timeout"]
        assert live.get("parameters", {}) == definition["inputs"].get("parameters", {})
        retry = definition["inputs"]["retryStrategy"]
        assert live["retryStrategy"]["attempts"] == retry["attempts"]
        # moto stores the action lower-cased; the conditions themselves are the plan's.
        assert [{**e, "action": e["action"].upper()} for e in live["retryStrategy"]["evaluateOnExit"]] == retry[
            "evaluateOnExits"
        ]


def test_the_release_steps_own_updater_moves_every_job_definition_to_the_new_image(twin: TwinAws) -> None:
    """release/job_definitions.py against the twin: a new revision per name, the image swapped, the rest kept."""
    from release.job_definitions import JobDefinitionUpdater

    batch = twin.client("batch")
    names = sorted(twin.job_definitions)
    repository = next(uri for repo, uri in twin.repositories.items() if "jobs" in repo)
    pinned = f"{repository}@sha256:{'c' * 64}"
    updater = JobDefinitionUpdater(batch)
    arns = updater.apply(updater.plan(names, pinned))
    assert arns == [twin.job_definitions[n].rsplit(":", 1)[0] + ":2" for n in names]
    for name in names:
        revisions = batch.describe_job_definitions(jobDefinitionName=name, status="ACTIVE")["jobDefinitions"]
        first, latest = sorted(revisions, key=lambda d: d["revision"])
        assert latest["containerProperties"]["image"] == pinned
        assert {**latest["containerProperties"], "image": None} == {**first["containerProperties"], "image": None}
        assert latest["retryStrategy"] == first["retryStrategy"] and latest["timeout"] == first["timeout"]
    # Releasing the same image again registers nothing.
    assert updater.apply(updater.plan(names, pinned)) == arns


def test_key_policy_and_role_policies_are_the_plans(twin: TwinAws, plans: dict[str, dict[str, Any]]) -> None:
    plan = plans["dev"]
    [key] = of_type(plan, "aws:kms/key:Key")
    [alias] = of_type(plan, "aws:kms/alias:Alias")
    kms = twin.client("kms")
    key_id = kms.describe_key(KeyId=alias["inputs"]["name"])["KeyMetadata"]["KeyId"]
    stored = json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])
    assert stored == json.loads(twin.resolve(key["inputs"]["policy"]))
    assert kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is key["inputs"]["enableKeyRotation"]
    iam = twin.client("iam")
    roles = of_type(plan, "aws:iam/role:Role")
    assert sorted(twin.roles) == sorted(r["name"] for r in roles)
    for role in roles:
        role_name = twin.roles[role["name"]].rsplit("/", 1)[1]
        trust = iam.get_role(RoleName=role_name)["Role"]["AssumeRolePolicyDocument"]
        assert trust == json.loads(role["inputs"]["assumeRolePolicy"])
    for inline in of_type(plan, "aws:iam/rolePolicy:RolePolicy"):
        role_name = twin.resolve(inline["inputs"]["role"])
        [policy_name] = iam.list_role_policies(RoleName=role_name)["PolicyNames"]
        document = iam.get_role_policy(RoleName=role_name, PolicyName=policy_name)["PolicyDocument"]
        assert document == json.loads(twin.resolve(inline["inputs"]["policy"]))


def test_repositories_schedules_and_log_groups_follow_the_plan(twin: TwinAws, plans: dict[str, dict[str, Any]]) -> None:
    plan = plans["dev"]
    ecr = twin.client("ecr")
    repositories = of_type(plan, "aws:ecr/repository:Repository")
    assert len(twin.repositories) == len(repositories)
    for repo in ecr.describe_repositories()["repositories"]:
        assert twin.repositories[repo["repositoryName"]] == repo["repositoryUri"]
        assert repo["imageTagMutability"] == repositories[0]["inputs"]["imageTagMutability"]
    scheduler = twin.client("scheduler")
    schedules = of_type(plan, "aws:scheduler/schedule:Schedule")
    assert sorted(twin.schedules) == sorted(s["name"] for s in schedules)
    for schedule in schedules:
        group, name = twin.schedules[schedule["name"]].split("/")
        live = scheduler.get_schedule(GroupName=group, Name=name)
        assert live["State"] == schedule["inputs"]["state"]
        assert live["ScheduleExpression"] == schedule["inputs"]["scheduleExpression"]
        assert json.loads(live["Target"]["Input"]) == json.loads(twin.resolve(schedule["inputs"]["target"]["input"]))
    logs = twin.client("logs")
    for group in of_type(plan, "aws:cloudwatch/logGroup:LogGroup"):
        [live] = logs.describe_log_groups(logGroupNamePrefix=group["inputs"]["name"])["logGroups"][:1]
        assert live["logGroupName"] == group["inputs"]["name"]
        assert live["retentionInDays"] == group["inputs"]["retentionInDays"]


def test_wait_for_names_what_arrived_when_nothing_matches(twin: TwinAws) -> None:
    probe = next(iter(twin.topics.values()))
    twin.client("sns").publish(TopicArn=probe.topic_arn, Message="something else")
    with pytest.raises(TimeoutError, match="something else"):
        twin.wait_for(probe.queue_url, lambda m: m["Message"] == "never sent", 0)
    assert [m["Message"] for m in twin.drain(probe.queue_url)] == ["something else"]


def test_a_subscription_filter_policy_in_the_plan_is_honoured(
    fresh: MotoServer, plans: dict[str, dict[str, Any]]
) -> None:
    """A copy of the plan whose on-call subscription only takes alerts: an INFO summary must not reach it."""
    plan = copy.deepcopy(plans["dev"])
    [subscription] = [s for s in of_type(plan, "aws:sns/topicSubscription:TopicSubscription")
                      if s["inputs"]["protocol"] == "email"][:1]  # fmt: skip
    subscription["inputs"]["filterPolicy"] = json.dumps({"severity": ["ALERT"]})
    twin = provision(plan, fresh.endpoint_url)
    [topic] = twin.topics.values()
    sns = twin.client("sns")
    for severity in ("INFO", "ALERT"):
        sns.publish(
            TopicArn=topic.topic_arn,
            Message=f"{severity} message",
            MessageAttributes={"severity": {"DataType": "String", "StringValue": severity}},
        )
    on_call = twin.subscription_probes[subscription["name"]]
    twin.wait_for(on_call, lambda m: m["Message"] == "ALERT message", TIMEOUT)
    assert twin.drain(on_call) == []
    # The unfiltered topic probe saw both.
    assert sorted(m["Message"] for m in twin.drain(topic.queue_url)) == ["ALERT message", "INFO message"]


def test_without_the_plans_eventbridge_notification_an_upload_triggers_nothing(
    fresh: MotoServer, plans: dict[str, dict[str, Any]]
) -> None:
    plan = copy.deepcopy(plans["dev"])
    plan["resources"] = [r for r in plan["resources"] if r["type"] != "aws:s3/bucketNotification:BucketNotification"]
    rule, bucket, key = model_trigger(plan)
    twin = provision(plan, fresh.endpoint_url)
    probe = twin.rules[rule["name"]]
    twin.client("s3").put_object(Bucket=bucket, Key=key, Body=b"model")
    # Barrier: an event of the same shape put on the bus directly does arrive, the upload's did not.
    detail = {"bucket": {"name": bucket}, "object": {"key": key}, "barrier": True}
    twin.client("events").put_events(
        Entries=[{"Source": "aws.s3", "DetailType": "Object Created", "Detail": json.dumps(detail)}]
    )
    twin.wait_for(probe.queue_url, lambda m: m["detail"].get("barrier") is True, TIMEOUT)
    assert twin.drain(probe.queue_url) == []


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_each_stacks_plan_provisions_every_modelled_resource(
    fresh: MotoServer, plans: dict[str, dict[str, Any]], stack: str
) -> None:
    plan = plans[stack]
    twin = provision(plan, fresh.endpoint_url)
    counts = {t: len(of_type(plan, t)) for t in {r["type"] for r in plan["resources"]}}
    assert len(twin.buckets) == counts["aws:s3/bucket:Bucket"]
    assert len(twin.rules) == counts["aws:cloudwatch/eventRule:EventRule"]
    assert len(twin.topics) == counts["aws:sns/topic:Topic"]
    assert len(twin.parameters) == counts["aws:ssm/parameter:Parameter"]
    assert len(twin.job_definitions) == counts["aws:batch/jobDefinition:JobDefinition"]
    assert len(twin.subscription_probes) == counts["aws:sns/topicSubscription:TopicSubscription"]
    targets = of_type(plan, "aws:cloudwatch/eventTarget:EventTarget")
    held = [t for t in targets if t["inputs"]["arn"].split(":")[2] in ("sqs", "logs", "events")]
    assert len(twin.target_probes) == len(targets) - len(held)
    assert twin.job_queue is not None
    assert twin.client("s3").get_bucket_versioning(Bucket=twin.buckets["models"])["Status"] == "Enabled"
    # Every type the twin skipped is named, and nothing it models is in that list.
    assert not set(twin.not_modelled) & {"aws:s3/bucket:Bucket", "aws:sns/topic:Topic"}


def test_a_relayed_job_failed_alert_pages_on_call_through_the_plans_filter(
    fresh: MotoServer, plans: dict[str, dict[str, Any]]
) -> None:
    """EventBridge publishes without message attributes: an on-call filter that drops INFO must still let
    the Batch FAILED alert through (a filter keyed on a severity attribute alone would silence it)."""
    plan = copy.deepcopy(plans["dev"])
    [subscription] = [s for s in of_type(plan, "aws:sns/topicSubscription:TopicSubscription")
                      if s["inputs"]["protocol"] == "email"][:1]  # fmt: skip
    subscription["inputs"]["filterPolicy"] = json.dumps(
        {"$or": [{"severity": [{"exists": False}]}, {"severity": [{"anything-but": ["INFO"]}]}]}
    )
    subscription["inputs"]["filterPolicyScope"] = "MessageAttributes"
    twin = provision(plan, fresh.endpoint_url)
    rule = rule_matching(plan, "aws.batch")
    [target] = [t for t in of_type(plan, "aws:cloudwatch/eventTarget:EventTarget")
                if t["inputs"]["rule"] == twin.rules[rule["name"]].rule_name]  # fmt: skip
    detail = {"jobName": "scheduled-retrain", "jobQueue": twin.job_queue, "status": "FAILED",
              "statusReason": "OutOfMemoryError", "jobDefinition": "ml-delivery-dev-retrain:1",
              "container": {"logStreamName": "retrain/default/1"}}  # fmt: skip
    twin.client("events").put_events(
        Entries=[{"Source": "aws.batch", "DetailType": "Batch Job State Change", "Detail": json.dumps(detail)}]
    )
    [topic] = twin.topics.values()
    twin.client("sns").publish(
        TopicArn=topic.topic_arn,
        Message="summary: 12 predictions",
        MessageAttributes={"severity": {"DataType": "String", "StringValue": "INFO"}},
    )
    assert twin.relay(target["name"]) == 1
    on_call = twin.subscription_probes[subscription["name"]]
    paged = twin.wait_for(on_call, lambda m: "scheduled-retrain" in m["Message"], TIMEOUT)
    assert "OutOfMemoryError" in paged["Message"] and "MessageAttributes" not in paged
    assert twin.drain(on_call) == []  # the INFO summary (published before the relay) never arrived
    with pytest.raises(ValueError, match="SNS topic targets only"):
        twin.relay(next(t for t, arn in twin.target_arns.items() if ":codepipeline:" in arn))


def test_a_registered_image_is_what_the_release_steps_lookup_finds(twin: TwinAws) -> None:
    from release.images import EcrImageLookup, TaggedImage

    repository = next(uri for name, uri in twin.repositories.items() if "jobs" in name)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": "sha256:" + "a" * 64, "size": 2}, "layers": []})  # fmt: skip
    digest = twin.register_image(repository, "1a2b3c4", manifest)
    lookup = EcrImageLookup(twin.client("ecr"))
    assert lookup.require_digest(TaggedImage.parse(f"{repository}:1a2b3c4")) == digest
    assert lookup.digest(TaggedImage.parse(f"{repository}:never-pushed")) is None
    # The plan's repositories are IMMUTABLE: the same tag cannot be pointed at other bytes.
    with pytest.raises(ClientError):
        twin.register_image(repository, "1a2b3c4", manifest.replace("a" * 64, "b" * 64))
    with pytest.raises(KeyError, match="not in the plan"):
        twin.register_image("elsewhere/other", "x", manifest)


def test_a_plan_with_unknown_values_is_refused(fresh: MotoServer, plans: dict[str, dict[str, Any]]) -> None:
    plan = copy.deepcopy(plans["dev"])
    bucket = of_type(plan, "aws:s3/bucketVersioning:BucketVersioning")[0]
    bucket["inputs"]["bucket"] = UNKNOWN
    with pytest.raises(PlanError, match=r"buckets-models-versioning.*unknown \(apply-time\) input"):
        provision(plan, fresh.endpoint_url)


def test_a_configured_secret_exists_under_the_plans_reference_with_the_mask(fresh: MotoServer) -> None:
    """With a Sentry DSN set, the task definition names the secret by the plan's (mocked) ARN; resolved, that
    ARN reads back from moto, holding the plan's mask (the real value is never in the plan)."""
    plan = json.loads(
        render_json(run_offline("dev", secret_overrides={"ml-delivery:sentryDsn": "https://k@s.example/1"}))
    )
    twin = provision(plan, fresh.endpoint_url)
    [task] = of_type(plan, "aws:ecs/taskDefinition:TaskDefinition")[:1]
    [reference] = [s["valueFrom"] for c in json.loads(task["inputs"]["containerDefinitions"]) for s in c["secrets"]]
    value = twin.client("secretsmanager").get_secret_value(SecretId=twin.resolve(reference))["SecretString"]
    assert value == "[secret]"
    assert "sentry-dsn-value" in twin.masked  # (the SecureString runtime settings are masked in the plan too)


def test_a_plan_target_moto_can_deliver_to_is_installed_as_the_plan_says(
    fresh: MotoServer, plans: dict[str, dict[str, Any]]
) -> None:
    """A copy of the plan whose job-failed target is an SQS queue of the plan: the queue itself gets the
    target's transformed input (no stand-in probe), by the plan's own reference to it."""
    plan = copy.deepcopy(plans["dev"])
    rule = rule_matching(plan, "aws.batch")
    [queue] = [q for q in of_type(plan, "aws:sqs/queue:Queue") if q["name"] == "jobs-schedules-dlq"]
    # The plan's reference to that queue's ARN, as another resource (a schedule's dead-letter config) uses it.
    [queue_arn] = {
        s["inputs"]["target"]["deadLetterConfig"]["arn"] for s in of_type(plan, "aws:scheduler/schedule:Schedule")
    }
    # The rule's target is its child in the plan (the component tree), whatever the rule's physical name.
    [target] = [t for t in of_type(plan, "aws:cloudwatch/eventTarget:EventTarget") if t["parent"] == rule["urn"]]
    target["inputs"]["arn"] = queue_arn
    twin = provision(plan, fresh.endpoint_url)
    assert target["name"] not in twin.target_probes
    detail = {"jobName": "scheduled-summary", "jobQueue": twin.job_queue, "status": "FAILED",
              "statusReason": "Task failed to start", "jobDefinition": "ml-delivery-dev-summary:1",
              "container": {"logStreamName": "summary/default/2"}}  # fmt: skip
    twin.client("events").put_events(
        Entries=[{"Source": "aws.batch", "DetailType": "Batch Job State Change", "Detail": json.dumps(detail)}]
    )
    delivered = twin.wait_for(twin.queues[queue["name"]], lambda m: m["job"] == "scheduled-summary", TIMEOUT)
    assert delivered["reason"] == "Task failed to start"  # a JSON object since issue #17


def test_every_way_of_creating_the_model_key_triggers_and_deleting_it_does_not(
    twin: TwinAws, plans: dict[str, dict[str, Any]]
) -> None:
    """A large model.zip goes up in parts (boto3's upload_file above its threshold) and a promotion may copy:
    both are "Object Created" for S3's EventBridge notification; a delete is "Object Deleted"."""
    from boto3.s3.transfer import TransferConfig

    rule, bucket, key = model_trigger(plans["dev"])
    probe = twin.rules[rule["name"]]
    s3 = twin.client("s3")
    twin.drain(probe.queue_url)
    part = 5 * 1024 * 1024  # S3's minimum part size
    config = TransferConfig(multipart_threshold=part, multipart_chunksize=part)
    s3.upload_fileobj(io.BytesIO(b"m" * (part + 1)), bucket, key, Config=config)
    created = twin.wait_for(probe.queue_url, lambda m: s3_event_key(m) == key, TIMEOUT)
    assert created["detail"]["object"]["size"] == part + 1  # (moto's "reason" is generic, so not asserted)
    # moto notifies a multipart upload twice (S3 once); any repeat is the same object version.
    repeats = twin.drain(probe.queue_url)
    assert all(m["detail"]["object"] == created["detail"]["object"] for m in repeats)
    s3.delete_object(Bucket=bucket, Key=key)
    s3.put_object(Bucket=bucket, Key="candidates/next.zip", Body=b"candidate")
    s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": "candidates/next.zip"})
    copied = twin.wait_for(probe.queue_url, lambda m: s3_event_key(m) == key, TIMEOUT)
    assert copied["detail"]["object"]["size"] == len(b"candidate")
    assert twin.drain(probe.queue_url) == []  # neither the delete nor the candidate's upload matched


def test_the_command_line_provisions_a_stack_and_refuses_a_second_time(
    fresh: MotoServer, plans: dict[str, dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    from twin.aws import main

    assert main(["--stack", "prod", "--endpoint-url", fresh.endpoint_url]) == 0
    printed = json.loads(capsys.readouterr().out)
    purposes = {b["inputs"]["tags"]["purpose"] for b in of_type(plans["prod"], "aws:s3/bucket:Bucket")}
    assert set(printed["buckets"]) == purposes
    assert printed["rules"] and all(r["queue_url"].startswith(fresh.endpoint_url) for r in printed["rules"].values())
    # The server is no longer empty: the first plan resource that exists already is named.
    assert main(["--stack", "prod", "--endpoint-url", fresh.endpoint_url]) == 2
    assert "moto refused" in capsys.readouterr().err
