"""Security and shape invariants of the platform, asserted over every registered resource of both stacks."""

from __future__ import annotations

import json

import pytest
from botocore.session import get_session
from botocore.validate import ParamValidator

from app import capture_contract
from infra.lib.iam import RESOURCE_STAR_ACTIONS
from infra.lib.tagging import REQUIRED_TAG_KEYS, _accepts_tags
from infra.service.model_service import CAPTURE_SPOOL_BUDGET_GIB, EPHEMERAL_STORAGE_GIB
from tests.infra.plan_queries import allowed_actions, as_list, policy_documents, role_policy, statements
from tools.plan.offline import OfflineRun, run_offline

SERVICE = "aws:ecs/service:Service"
BUCKET = "aws:s3/bucket:Bucket"


def _bucket_children(run: OfflineRun, bucket_name: str, type_token: str) -> list:
    bucket_id = f"{bucket_name}"
    return [r for r in run.of_type(type_token) if r.inputs.get("bucket") in (bucket_id, f"{bucket_name}-0a1b2c3")]


def test_services_run_in_private_subnets_without_public_ips(stack: OfflineRun) -> None:
    private = {f"{r.name}-id" for r in stack.of_type("aws:ec2/subnet:Subnet") if r.inputs["tags"]["tier"] == "private"}
    services = stack.of_type(SERVICE)
    assert {s.name for s in services} == {"stage-service", "prod-service"}
    for service in services:
        network = service.inputs["networkConfiguration"]
        assert network["assignPublicIp"] is False
        assert set(network["subnets"]) == private
    for subnet in stack.of_type("aws:ec2/subnet:Subnet"):
        assert subnet.inputs["mapPublicIpOnLaunch"] is False


def test_circuit_breaker_rolls_back_and_pulumi_owns_the_task_definition_shape(stack: OfflineRun) -> None:
    """Issue #16 item 4: the image is the pipeline's (read back from SSM), the shape Pulumi's; nothing ignored."""
    for service in stack.of_type(SERVICE):
        assert service.inputs["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
        assert "taskDefinition" not in service.ignore_changes


def test_alb_ingress_only_from_configured_cidrs_and_tasks_only_from_the_alb(stack: OfflineRun) -> None:
    configured = {"dev": {"203.0.113.0/24"}, "prod": {"0.0.0.0/0"}}[stack.stack]
    ingress = stack.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    for service in ("stage", "prod"):
        alb_sg, task_sg = f"{service}-alb-sg-id", f"{service}-task-sg-id"
        alb_rules = [r for r in ingress if r.inputs["securityGroupId"] == alb_sg]
        cidr_rules = [r for r in alb_rules if "referencedSecurityGroupId" not in r.inputs]
        assert cidr_rules and {r.inputs["cidrIpv4"] for r in cidr_rules} == configured
        # Besides the CIDRs, only stage lets in one security group: the Evaluate project's (its smoke test).
        referenced = [r.name for r in alb_rules if "referencedSecurityGroupId" in r.inputs]
        assert referenced == (["stage-alb-in-evaluate"] if service == "stage" else [])
        task_rules = [r for r in ingress if r.inputs["securityGroupId"] == task_sg]
        assert len(task_rules) == 1
        assert task_rules[0].inputs["referencedSecurityGroupId"] == alb_sg
        assert "cidrIpv4" not in task_rules[0].inputs
        assert task_rules[0].inputs["fromPort"] == task_rules[0].inputs["toPort"] == 8080


def test_ingress_follows_config() -> None:
    run = run_offline("dev", overrides={"ml-delivery:ingressCidrs": ["198.51.100.0/24", "192.0.2.0/24"]})
    cidrs = {r.inputs.get("cidrIpv4") for r in run.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
             if r.inputs["securityGroupId"] == "stage-alb-sg-id" and "cidrIpv4" in r.inputs}  # fmt: skip
    assert cidrs == {"198.51.100.0/24", "192.0.2.0/24"}


def test_every_bucket_encrypted_private_tls_only_owner_enforced(stack: OfflineRun) -> None:
    buckets = [b for b in stack.of_type(BUCKET) if b.name != "access-logs"]  # SSE-S3: tests/security
    assert {b.name for b in buckets} == {"buckets-artifacts", "buckets-models", "buckets-capture"}
    for bucket in buckets:
        bucket_id = bucket.name  # the offline runtime's physical name of a bucket without an explicit name

        def child(type_token: str, bucket_id: str = bucket_id) -> dict:
            matches = [r for r in stack.of_type(type_token) if r.inputs["bucket"].startswith(bucket_id)]
            assert len(matches) == 1, f"{bucket_id}: expected one {type_token}"
            return matches[0].inputs

        sse = child("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
        rule = sse["rules"][0]
        assert rule["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "aws:kms"
        assert rule["applyServerSideEncryptionByDefault"]["kmsMasterKeyId"].startswith("arn:aws:kms:")
        assert rule["bucketKeyEnabled"] is True
        block = child("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
        assert all(
            block[k] for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
        )
        assert (
            child("aws:s3/bucketOwnershipControls:BucketOwnershipControls")["rule"]["objectOwnership"]
            == "BucketOwnerEnforced"
        )
        policy = json.loads(child("aws:s3/bucketPolicy:BucketPolicy")["policy"])
        deny = [s for s in statements(policy) if s["Effect"] == "Deny"]
        assert deny and deny[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        assert deny[0]["Principal"] == "*"


def test_model_bucket_versioned_with_eventbridge(stack: OfflineRun) -> None:
    versioning = stack.of_type("aws:s3/bucketVersioning:BucketVersioning")
    assert [r.inputs["bucket"] for r in versioning] == ["buckets-models-0a1b2c3"]
    assert versioning[0].inputs["versioningConfiguration"]["status"] == "Enabled"
    notifications = stack.of_type("aws:s3/bucketNotification:BucketNotification")
    assert [(r.inputs["bucket"], r.inputs["eventbridge"]) for r in notifications] == [("buckets-models-0a1b2c3", True)]


def test_ecr_immutable_with_scan_on_push(stack: OfflineRun) -> None:
    repositories = stack.of_type("aws:ecr/repository:Repository")
    assert len(repositories) == 2
    for repository in repositories:
        # Immutable but the moving reference tags and the build cache (issue #16 item 7).
        assert repository.inputs["imageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION"
        assert {f["filter"] for f in repository.inputs["imageTagMutabilityExclusionFilters"]} == {
            "keep-*",
            "buildcache",
        }
        assert repository.inputs["imageScanningConfiguration"] == {"scanOnPush": True}
    for policy in stack.of_type("aws:ecr/lifecyclePolicy:LifecyclePolicy"):
        assert json.loads(policy.inputs["policy"])["rules"]


def test_prod_differs_from_dev_in_the_plan(dev: OfflineRun, prod: OfflineRun) -> None:
    def count(run: OfflineRun, token: str) -> int:
        return len(run.of_type(token))

    assert count(dev, "aws:ec2/natGateway:NatGateway") == 1
    assert count(prod, "aws:ec2/natGateway:NatGateway") == 3
    assert count(prod, "aws:ec2/subnet:Subnet") == 6
    assert {r.inputs["availabilityZone"] for r in prod.of_type("aws:ec2/subnet:Subnet")} == {
        "us-east-1a", "us-east-1b", "us-east-1c"}  # fmt: skip
    prod_service = prod.one(SERVICE, "prod-service")
    assert prod_service.inputs["desiredCount"] == 3
    assert dev.one(SERVICE, "prod-service").inputs["desiredCount"] == 1
    assert prod.one("aws:lb/loadBalancer:LoadBalancer", "prod-alb").inputs["enableDeletionProtection"] is True
    assert dev.one("aws:lb/loadBalancer:LoadBalancer", "prod-alb").inputs["enableDeletionProtection"] is False
    assert all(r.protect for r in prod.of_type(BUCKET) if r.name != "buckets-artifacts")
    assert not any(r.protect for r in dev.of_type(BUCKET))
    for group in prod.of_type("aws:cloudwatch/logGroup:LogGroup"):
        assert group.inputs["retentionInDays"] == 365
    for group in dev.of_type("aws:cloudwatch/logGroup:LogGroup"):
        assert group.inputs["retentionInDays"] == 14
    prod_task = prod.one("aws:ecs/taskDefinition:TaskDefinition", "prod-task").inputs
    assert (prod_task["cpu"], prod_task["memory"]) == ("1024", "2048")


def test_no_allow_statement_grants_a_wildcard_action_or_full_access(stack: OfflineRun) -> None:
    documents = list(policy_documents(stack))
    assert len(documents) >= 10
    for resource, key, document in documents:
        for statement in statements(document):
            if statement["Effect"] != "Allow":
                continue
            for action in as_list(statement.get("Action")):
                assert action != "*" and not action.endswith(":*"), f"{resource.name}.{key}: {action}"
                assert "*" not in action, f"{resource.name}.{key}: wildcard in {action}"
    for attachment in stack.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment"):
        arn = attachment.inputs["policyArn"]
        assert "FullAccess" not in arn and not arn.endswith("/AdministratorAccess"), arn


def test_resource_star_only_where_aws_requires_it(stack: OfflineRun) -> None:
    for resource, _key, document in policy_documents(stack):
        if resource.type == "aws:kms/key:Key":
            continue  # in a key policy "*" means the key itself
        for statement in statements(document):
            if statement["Effect"] == "Allow" and "*" in as_list(statement.get("Resource")):
                assert set(as_list(statement["Action"])) <= set(RESOURCE_STAR_ACTIONS), f"{resource.name}: {statement}"


def test_task_role_writes_only_its_own_capture_prefix(stack: OfflineRun) -> None:
    for service in ("stage", "prod"):
        actions = allowed_actions(role_policy(stack, f"{service}-task-role"))
        assert actions["s3:PutObject"] == [f"arn:aws:s3:::buckets-capture-0a1b2c3/capture/{service}/*"]
        assert set(actions) == {"s3:PutObject", "kms:Decrypt", "kms:GenerateDataKey", "ssm:GetParameter"}


def test_container_definitions_valid_for_ecs_register_task_definition(stack: OfflineRun) -> None:
    shape = get_session().get_service_model("ecs").operation_model("RegisterTaskDefinition").input_shape
    for task in stack.of_type("aws:ecs/taskDefinition:TaskDefinition"):
        inputs = task.inputs
        params = {
            "family": inputs["family"],
            "containerDefinitions": json.loads(inputs["containerDefinitions"]),
            "cpu": inputs["cpu"],
            "memory": inputs["memory"],
            "networkMode": inputs["networkMode"],
            "requiresCompatibilities": inputs["requiresCompatibilities"],
            "executionRoleArn": inputs["executionRoleArn"],
            "taskRoleArn": inputs["taskRoleArn"],
            "runtimePlatform": {"operatingSystemFamily": "LINUX", "cpuArchitecture": "X86_64"},
            "volumes": [{"name": v["name"]} for v in inputs["volumes"]],
            "ephemeralStorage": {"sizeInGiB": inputs["ephemeralStorage"]["sizeInGib"]},
        }
        report = ParamValidator().validate(params, shape)
        assert not report.has_errors(), report.generate_report()
        (container,) = params["containerDefinitions"]
        assert container["name"] == "app"
        assert container["portMappings"][0]["containerPort"] == 8080
        assert container["readonlyRootFilesystem"] is True
        assert container["stopTimeout"] == 60  # the app flushes captured payloads on SIGTERM
        assert container["mountPoints"] == [{"sourceVolume": "tmp", "containerPath": "/tmp", "readOnly": False}]
        env = {e["name"]: e["value"] for e in container["environment"]}
        service = "stage" if "stage" in inputs["family"] else "prod"
        assert env["CAPTURE_S3_URI"] == f"s3://buckets-capture-0a1b2c3/capture/{service}"
        assert env["SETTINGS_SOURCE"] == f"ssm:/ml-delivery/{stack.stack}/{service}/runtime"
        # The spool cap fits the ephemeral volume: every worker's cap together stays under the budget.
        assert inputs["ephemeralStorage"]["sizeInGib"] == EPHEMERAL_STORAGE_GIB
        spool_total = int(env["CAPTURE_SPOOL_MAX_BYTES"]) * int(env["WORKERS"])
        assert spool_total <= CAPTURE_SPOOL_BUDGET_GIB << 30 < EPHEMERAL_STORAGE_GIB << 30
        assert "CAPTURE_DB_URL" not in env  # no SQLite on the task's disk by default
        assert env["CAPTURE_EMF_SECONDS"] == str(capture_contract.EMF_PERIOD_SECONDS)


def test_target_group_health_checks_the_apps_health_path(stack: OfflineRun) -> None:
    for group in stack.of_type("aws:lb/targetGroup:TargetGroup"):
        # /ready, not /health: with CAPTURE_FAILURE_POLICY=drain a task whose capture fails leaves rotation.
        assert group.inputs["healthCheck"]["path"] == "/ready"
        assert group.inputs["targetType"] == "ip"


def test_http_listener_warns_and_https_when_a_certificate_is_configured(dev: OfflineRun) -> None:
    assert [r.inputs["protocol"] for r in dev.of_type("aws:lb/listener:Listener")] == ["HTTP", "HTTP"]
    assert any("certificateArn" in w for w in dev.warnings)
    arn = "arn:aws:acm:us-east-1:123456789012:certificate/0f2a4b1c-1111-2222-3333-444455556666"
    # The internal stage ALB serves TLS under the name the certificate covers (docs/pipeline.md).
    run = run_offline(
        "dev", overrides={"ml-delivery:certificateArn": arn, "ml-delivery:stageHostname": "stage.dev.example.com"}
    )
    listeners = {r.name: r.inputs for r in run.of_type("aws:lb/listener:Listener")}
    assert listeners["stage-https"]["certificateArn"] == arn
    assert listeners["stage-https"]["sslPolicy"].startswith("ELBSecurityPolicy-TLS13")
    assert listeners["stage-http-redirect"]["defaultActions"][0]["type"] == "redirect"
    assert not any("certificateArn" in w for w in run.warnings)
    assert run.outputs["stageUrl"] == "https://stage.dev.example.com"
    assert run.outputs["prodUrl"].startswith("https://")


def test_alarms_reach_the_alerts_topic(stack: OfflineRun) -> None:
    topic = stack.outputs["alertsTopicArn"]
    alarms = stack.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    metrics = {(a.name.split("-")[0], a.inputs["metricName"]) for a in alarms}
    for service in ("stage", "prod"):
        for metric in ("HTTPCode_Target_5XX_Count", "TargetResponseTime", "UnHealthyHostCount"):
            assert (service, metric) in metrics
    assert all(a.inputs["alarmActions"] == [topic] for a in alarms)


def test_capture_health_is_alarmed_on_the_apps_emf_metrics(stack: OfflineRun) -> None:
    topic = stack.outputs["alertsTopicArn"]
    alarms = [
        a
        for a in stack.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
        if a.inputs.get("namespace") == capture_contract.EMF_NAMESPACE
    ]
    seen = {(a.inputs["dimensions"]["Service"], a.inputs["metricName"]) for a in alarms}
    for service in ("stage", "prod"):
        for metric in (
            capture_contract.OLDEST_UNSENT,
            capture_contract.DROPPED,
            capture_contract.QUARANTINED,
            capture_contract.SPOOL_WRITE_ERRORS,
        ):
            assert (service, metric) in seen
    for alarm in alarms:
        assert alarm.inputs["dimensions"]["Sink"] == "s3" and alarm.inputs["alarmActions"] == [topic]
        assert alarm.inputs["period"] % capture_contract.EMF_PERIOD_SECONDS == 0
        assert "docs/app.md" in alarm.inputs["alarmDescription"]


def test_autoscaling_tracks_cpu_between_desired_and_max(prod: OfflineRun) -> None:
    target = prod.one("aws:appautoscaling/target:Target", "prod-scaling-target").inputs
    assert (target["minCapacity"], target["maxCapacity"]) == (3, 10)
    policy = prod.one("aws:appautoscaling/policy:Policy", "prod-cpu-tracking").inputs
    assert policy["targetTrackingScalingPolicyConfiguration"]["targetValue"] == 60


def test_network_has_nat_s3_endpoint_and_flow_logs(stack: OfflineRun) -> None:
    endpoint = stack.one("aws:ec2/vpcEndpoint:VpcEndpoint", "network-s3-endpoint").inputs
    assert endpoint["vpcEndpointType"] == "Gateway" and endpoint["serviceName"] == "com.amazonaws.us-east-1.s3"
    private_tables = {r.name + "-id" for r in stack.of_type("aws:ec2/routeTable:RouteTable") if "private" in r.name}
    assert set(endpoint["routeTableIds"]) == private_tables
    flow = stack.one("aws:ec2/flowLog:FlowLog", "network-flow-log").inputs
    assert flow["trafficType"] == "ALL"


def test_alerts_topic_encrypted_with_subscriptions_from_config(dev: OfflineRun, prod: OfflineRun) -> None:
    for run in (dev, prod):
        topic = run.one("aws:sns/topic:Topic", "alerts-topic").inputs
        assert topic["kmsMasterKeyId"].startswith("arn:aws:kms:")
    subscriptions = prod.of_type("aws:sns/topicSubscription:TopicSubscription")
    assert {(s.inputs["protocol"], s.inputs["endpoint"]) for s in subscriptions} == {
        ("email", "ml-oncall@example.com"),
        ("sms", "+15555550100"),
    }
    assert len(dev.of_type("aws:sns/topicSubscription:TopicSubscription")) == 1


def test_every_taggable_resource_carries_the_required_tags(stack: OfflineRun) -> None:
    import pulumi_aws

    checked = 0
    for resource in stack.resources:
        if not resource.custom:
            continue
        module, name = resource.type.split(":")[1].split("/")[0], resource.type.split(":")[2]
        cls = getattr(getattr(pulumi_aws, module), name)
        if _accepts_tags(cls):
            checked += 1
            tags = resource.inputs.get("tags") or {}
            missing = [k for k in REQUIRED_TAG_KEYS if k not in tags]
            assert not missing, f"{resource.type} {resource.name} lacks tags {missing}"
            assert tags["environment"] == stack.stack
    assert checked > 30


@pytest.mark.parametrize("stack_name", ["dev", "prod"])
def test_secrets_never_appear_in_plain_text(stack_name: str) -> None:
    run = run_offline(stack_name, secret_overrides={"ml-delivery:sentryDsn": "https://key@sentry.example/1"})
    version = run.one("aws:secretsmanager/secretVersion:SecretVersion", "sentry-dsn-value")
    assert version.inputs["secretString"] == "[secret]"
    assert "https://key@sentry.example/1" not in json.dumps(run.as_plan())
    container = json.loads(
        run.one("aws:ecs/taskDefinition:TaskDefinition", "prod-task").inputs["containerDefinitions"]
    )[0]
    assert container["secrets"][0]["name"] == "SENTRY_DSN"
    assert container["secrets"][0]["valueFrom"].startswith("arn:aws:secretsmanager:")
    execution = allowed_actions(role_policy(run, "prod-execution-role"))
    assert execution["secretsmanager:GetSecretValue"] == [container["secrets"][0]["valueFrom"]]


@pytest.mark.parametrize("stack_name", ["dev", "prod"])
def test_capture_hash_key_is_a_secret_injected_by_ecs_with_a_one_secret_grant(stack_name: str) -> None:
    """Capture privacy (docs/app.md): the HMAC key is a Secrets Manager secret set from the secret config
    captureHashKey, ECS injects it as CAPTURE_HASH_KEY, the execution role may read that one secret only."""
    key = "capture-key-for-the-infra-test-0123456789"
    run = run_offline(stack_name, secret_overrides={"ml-delivery:captureHashKey": key})
    secret = run.one("aws:secretsmanager/secret:Secret", "capture-hash-key")
    version = run.one("aws:secretsmanager/secretVersion:SecretVersion", "capture-hash-key-value")
    assert version.inputs["secretString"] == "[secret]"
    assert key not in json.dumps(run.as_plan())
    for service in ("stage", "prod"):
        container = json.loads(
            run.one("aws:ecs/taskDefinition:TaskDefinition", f"{service}-task").inputs["containerDefinitions"]
        )[0]
        [entry] = [s for s in container.get("secrets", []) if s["name"] == "CAPTURE_HASH_KEY"]
        assert entry["valueFrom"].startswith("arn:aws:secretsmanager:") and "capture-hash-key" in entry["valueFrom"]
        assert "CAPTURE_HASH_KEY" not in {e["name"] for e in container["environment"]}  # never a plain variable
        execution = allowed_actions(role_policy(run, f"{service}-execution-role"))
        assert execution["secretsmanager:GetSecretValue"] == [entry["valueFrom"]]
        task = allowed_actions(role_policy(run, f"{service}-task-role"))
        assert "secretsmanager:GetSecretValue" not in task
    assert secret.inputs["description"].startswith("HMAC key of capture privacy")


@pytest.mark.parametrize("stack_name", ["dev", "prod"])
def test_without_a_capture_hash_key_there_is_no_secret_and_no_grant(stack_name: str) -> None:
    run = run_offline(stack_name)
    assert not [r for r in run.resources if r.name.startswith("capture-hash-key")]
    container = json.loads(
        run.one("aws:ecs/taskDefinition:TaskDefinition", "prod-task").inputs["containerDefinitions"]
    )[0]
    assert "CAPTURE_HASH_KEY" not in {s["name"] for s in container.get("secrets", [])}
    assert "secretsmanager:GetSecretValue" not in allowed_actions(role_policy(run, "prod-execution-role"))


@pytest.mark.parametrize("stack_name", ["dev", "prod"])
def test_drift_job_reads_the_capture_policy_and_key_with_narrow_grants(stack_name: str) -> None:
    """Capture privacy in drift (docs/monitoring.md): the drift job gets the prod runtime settings as
    CAPTURE_SETTINGS_SOURCE, may read only that parameter, and gets the key through Batch `secrets`."""
    run = run_offline(stack_name, secret_overrides={"ml-delivery:captureHashKey": "k" * 32})
    drift = json.loads(run.one("aws:batch/jobDefinition:JobDefinition", "jobs-drift").inputs["containerProperties"])
    env = {e["name"]: e["value"] for e in drift["environment"]}
    assert env["CAPTURE_SETTINGS_SOURCE"] == f"ssm:/ml-delivery/{stack_name}/prod/runtime"
    prod_parameter = run.one("aws:ssm/parameter:Parameter", "prod-runtime-settings").inputs["name"]
    assert env["CAPTURE_SETTINGS_SOURCE"] == f"ssm:{prod_parameter}"  # the parameter the prod app reads
    [secret] = drift["secrets"]
    assert secret["name"] == "CAPTURE_HASH_KEY" and "capture-hash-key" in secret["valueFrom"]
    reads = allowed_actions(role_policy(run, "jobs-drift-role"))["ssm:GetParameter"]
    assert reads == [f"arn:aws:ssm:us-east-1:123456789012:parameter{prod_parameter}"]
    execution = allowed_actions(role_policy(run, "jobs-execution-role"))
    assert execution["secretsmanager:GetSecretValue"] == [secret["valueFrom"]]
    summary = json.loads(run.one("aws:batch/jobDefinition:JobDefinition", "jobs-summary").inputs["containerProperties"])
    assert "secrets" not in summary and "CAPTURE_SETTINGS_SOURCE" not in {e["name"] for e in summary["environment"]}
    assert "ssm:GetParameter" not in allowed_actions(role_policy(run, "jobs-summary-role"))


def test_the_app_keeps_idle_connections_longer_than_the_load_balancer(stack: OfflineRun) -> None:
    """ELB User Guide, "Edit attributes for your Application Load Balancer", connection idle timeout: the
    application's idle timeout should be larger than the load balancer's, or the ALB may reuse a connection
    the app is closing and answer the client 502. The app's default keep-alive (5 s) was below the ALB's 60 s.
    """
    for service in ("stage", "prod"):
        alb = stack.one("aws:lb/loadBalancer:LoadBalancer", f"{service}-alb")
        (container,) = json.loads(
            stack.one("aws:ecs/taskDefinition:TaskDefinition", f"{service}-task").inputs["containerDefinitions"]
        )
        environment = {e["name"]: e["value"] for e in container["environment"]}
        assert float(environment["HTTP_KEEPALIVE_SECONDS"]) > alb.inputs["idleTimeout"], service
