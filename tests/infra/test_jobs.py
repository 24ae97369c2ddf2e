"""The Batch jobs in the offline plan of both stacks: Fargate in the private subnets, valid container
properties, infrastructure-only retries, timeouts, scoped roles and the environment the jobs read."""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path
from typing import Any

import pulumi
import pytest
from botocore.session import get_session
from botocore.validate import ParamValidator

from contracts.bucket_layout import TRAINING_DATA_PREFIX
from contracts.environment import JOB_ENVIRONMENTS
from infra.jobs.jobs_spec import EVALUATE_ON_EXIT, JOB_NAMES, schedule_window_minutes
from infra.settings import BATCH_FARGATE_MEMORY, GATE_FLOOR_RULES, ConfigError, parse_settings
from jobs_common.readers import S3Reader
from model_package.manifest import HIGHER_IS_BETTER
from retrain.settings import Settings as RetrainSettings
from tests.infra.plan_queries import allowed_actions, as_list, role_policy, statements
from tools.plan.offline import OfflineRun, load_stack_config, run_offline

ROOT = Path(__file__).resolve().parents[2]
JOB_DEFINITION = "aws:batch/jobDefinition:JobDefinition"
MODELS = "arn:aws:s3:::buckets-models-0a1b2c3"
CAPTURE = "arn:aws:s3:::buckets-capture-0a1b2c3"
QUEUE_ARN = "arn:aws:batch:us-east-1:123456789012:job-queue/ml-delivery-{stack}-jobs"
EXPECTED_ENV = {
    # No GATE_METRIC/GATE_FLOOR unless the stack sets them (the champion task's primary metric and default
    # floor), and no TARGET/MODEL_NAME/TIME_COLUMN: a refit reads them from the champion's manifest (issue #14).
    "retrain": {"DATA_URI", "MODEL_BUCKET", "MODEL_KEY", "ALERTS_TOPIC_ARN", "GATE_TOLERANCE", "MIN_ROWS",
                "ALERT_WINDOW_MINUTES", "AWS_REGION", "LOG_GROUP"},
    # No MODEL_KEY: the monitor must judge the champion (serving prod), not a candidate awaiting approval.
    "drift": {"MODEL_BUCKET", "CAPTURE_BUCKET", "CAPTURE_PREFIX", "REPORT_PREFIX", "ALERTS_TOPIC_ARN",
              "ALERT_WINDOW_MINUTES", "DRIFT_RETRAIN_ENABLED", "RETRAIN_JOB_QUEUE", "RETRAIN_JOB_DEFINITION",
              "SUMMARY_MIN_COUNT", "SUMMARY_WINDOW_MINUTES", "AWS_REGION"},
    "inference": {"MODEL_BUCKET", "INPUT_URI", "OUTPUT_URI", "MODEL_REF", "CHUNK_ROWS", "ALERTS_TOPIC_ARN",
                  "ALERT_WINDOW_MINUTES", "AWS_REGION"},
}  # fmt: skip
EXPECTED_ENV["summary"] = EXPECTED_ENV["drift"]
# Capture privacy (docs/monitoring.md): only drift reads the capture policy of the prod runtime settings.
EXPECTED_ENV["drift"] = EXPECTED_ENV["drift"] | {"CAPTURE_SETTINGS_SOURCE"}
# Where each job's code reads its environment: every variable set must be read there (a typo fails).
COMMANDS = {"retrain": ["retrain", "run"], "drift": ["monitor", "drift"], "summary": ["monitor", "summary"]}


def settings_of(stack: str) -> Any:
    config, _ = load_stack_config(stack)
    return parse_settings(config)


def definitions(run: OfflineRun) -> dict[str, Any]:
    found = {r.name.removeprefix("jobs-"): r for r in run.of_type(JOB_DEFINITION)}
    assert set(found) == set(JOB_NAMES)
    return found


def container(run: OfflineRun, job: str) -> dict[str, Any]:
    return json.loads(definitions(run)[job].inputs["containerProperties"])


def environment(run: OfflineRun, job: str) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container(run, job)["environment"]}


def register_params(inputs: dict[str, Any]) -> dict[str, Any]:
    """The plan's JobDefinition inputs as Batch RegisterJobDefinition request parameters."""
    retry = inputs["retryStrategy"]
    params = {
        "jobDefinitionName": inputs["name"],
        "type": inputs["type"],
        "containerProperties": json.loads(inputs["containerProperties"]),
        "platformCapabilities": inputs["platformCapabilities"],
        "propagateTags": inputs["propagateTags"],
        "timeout": {"attemptDurationSeconds": inputs["timeout"]["attemptDurationSeconds"]},
        "retryStrategy": {"attempts": retry["attempts"], "evaluateOnExit": retry["evaluateOnExits"]},
        "tags": inputs["tags"],
    }
    if "parameters" in inputs:
        params["parameters"] = inputs["parameters"]
    return params


def test_compute_environment_is_managed_fargate_in_the_private_subnets(stack: OfflineRun) -> None:
    private = {f"{r.name}-id" for r in stack.of_type("aws:ec2/subnet:Subnet") if r.inputs["tags"]["tier"] == "private"}
    (environment_,) = stack.of_type("aws:batch/computeEnvironment:ComputeEnvironment")
    assert environment_.inputs["type"] == "MANAGED"
    assert "serviceRole" not in environment_.inputs  # Batch's service-linked role
    resources = environment_.inputs["computeResources"]
    assert resources["type"] == "FARGATE"
    assert set(resources["subnets"]) == private and private
    assert resources["securityGroupIds"] == ["jobs-sg-id"]
    assert 16 <= resources["maxVcpus"] <= 64
    (queue,) = stack.of_type("aws:batch/jobQueue:JobQueue")
    assert queue.inputs["name"] == f"ml-delivery-{stack.stack}-jobs"
    assert queue.inputs["computeEnvironmentOrders"] == [
        {"computeEnvironment": "arn:aws:batch:us-east-1:123456789012:compute-environment/jobs-fargate-0a1b2c3",
         "order": 1}
    ]  # fmt: skip


def test_job_security_group_has_no_ingress_and_only_https_out(stack: OfflineRun) -> None:
    ingress = [r for r in stack.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
               if r.inputs["securityGroupId"] == "jobs-sg-id"]  # fmt: skip
    egress = [r for r in stack.of_type("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
              if r.inputs["securityGroupId"] == "jobs-sg-id"]  # fmt: skip
    assert ingress == []
    assert [(r.inputs["ipProtocol"], r.inputs["fromPort"], r.inputs["toPort"]) for r in egress] == [("tcp", 443, 443)]


def test_container_properties_valid_for_batch_register_job_definition(stack: OfflineRun) -> None:
    shape = get_session().get_service_model("batch").operation_model("RegisterJobDefinition").input_shape
    settings = settings_of(stack.stack)
    for job, definition in definitions(stack).items():
        params = register_params(definition.inputs)
        report = ParamValidator().validate(params, shape)
        assert not report.has_errors(), f"{job}: {report.generate_report()}"
        assert params["jobDefinitionName"] == f"ml-delivery-{stack.stack}-{job}"
        assert params["platformCapabilities"] == ["FARGATE"]
        properties = params["containerProperties"]
        requirements = {r["type"]: r["value"] for r in properties["resourceRequirements"]}
        vcpu, memory = (
            (settings.retrain_vcpu, settings.retrain_memory_mib) if job == "retrain"
            else (settings.jobs_vcpu, settings.jobs_memory_mib)
        )  # fmt: skip
        assert set(requirements) == {"VCPU", "MEMORY"}
        assert float(requirements["VCPU"]) == vcpu and int(requirements["MEMORY"]) == memory
        assert int(requirements["MEMORY"]) in BATCH_FARGATE_MEMORY[float(requirements["VCPU"])]
        assert properties["networkConfiguration"] == {"assignPublicIp": "DISABLED"}
        assert properties["image"] == "123456789012.dkr.ecr.us-east-1.amazonaws.com/registry-jobs-0a1b2c3:bootstrap"
        assert properties["jobRoleArn"] == f"arn:aws:iam::123456789012:role/jobs-{job}-role-0a1b2c3"
        assert properties["executionRoleArn"] == "arn:aws:iam::123456789012:role/jobs-execution-role-0a1b2c3"
        log = properties["logConfiguration"]
        assert log["logDriver"] == "awslogs"
        assert log["options"]["awslogs-group"] == f"/ml-delivery/{stack.stack}/jobs"
        assert log["options"]["awslogs-stream-prefix"] == job


def test_prod_retrain_is_sized_from_config(prod: OfflineRun, dev: OfflineRun) -> None:
    def sizes(run: OfflineRun, job: str) -> dict[str, str]:
        return {r["type"]: r["value"] for r in container(run, job)["resourceRequirements"]}

    assert sizes(prod, "retrain") == {"VCPU": "2", "MEMORY": "8192"}
    assert sizes(dev, "retrain") == {"VCPU": "1", "MEMORY": "4096"}
    run = run_offline("dev", overrides={"ml-delivery:jobsVcpu": 0.5, "ml-delivery:jobsMemoryMib": 2048,
                                        "ml-delivery:retrainTimeoutMinutes": 30})  # fmt: skip
    for job in ("drift", "summary", "inference"):
        assert sizes(run, job) == {"VCPU": "0.5", "MEMORY": "2048"}
    assert definitions(run)["retrain"].inputs["timeout"] == {"attemptDurationSeconds": 1800}


def test_commands_match_the_image_entrypoint(stack: OfflineRun) -> None:
    for job, command in COMMANDS.items():
        assert container(stack, job)["command"] == command
    inference = definitions(stack)["inference"].inputs
    command = container(stack, "inference")["command"]
    assert command[:2] == ["inference", "run"]
    refs = {command[i]: command[i + 1] for i in range(2, len(command), 2)}
    assert refs == {"--model": "Ref::model", "--input": "Ref::input", "--output": "Ref::output"}
    assert inference["parameters"] == {
        "model": "champion",
        "input": "s3://buckets-models-0a1b2c3/batch-inference/input/input.parquet",
        "output": "s3://buckets-models-0a1b2c3/batch-inference/output/predictions.parquet",
    }


def test_environment_has_exactly_the_agreed_names_and_values(stack: OfflineRun) -> None:
    settings = settings_of(stack.stack)
    for job, names in EXPECTED_ENV.items():
        env = environment(stack, job)
        assert set(env) == names, job
        assert env["AWS_REGION"] == "us-east-1"
        assert env["MODEL_BUCKET"] == "buckets-models-0a1b2c3"
        assert env["ALERTS_TOPIC_ARN"] == "arn:aws:sns:us-east-1:123456789012:alerts-topic-0a1b2c3"
    retrain = environment(stack, "retrain")
    # A prefix (issue #12, defect 2): the reader the job builds for it reads every data file under it.
    assert retrain["DATA_URI"] == f"s3://buckets-models-0a1b2c3/{TRAINING_DATA_PREFIX}"
    assert S3Reader(retrain["DATA_URI"], s3_client=None).is_prefix
    assert retrain["MODEL_KEY"] == "model.zip"
    assert float(retrain["GATE_TOLERANCE"]) == settings.gate_tolerance
    assert int(retrain["MIN_ROWS"]) == settings.min_training_rows
    for job in ("drift", "summary"):
        env = environment(stack, job)
        assert env["CAPTURE_BUCKET"] == "buckets-capture-0a1b2c3" and env["CAPTURE_PREFIX"] == "capture/prod"
        assert env["REPORT_PREFIX"] == "reports/drift"
        assert env["DRIFT_RETRAIN_ENABLED"] == ("true" if stack.stack == "prod" else "false")
        assert env["RETRAIN_JOB_QUEUE"] == QUEUE_ARN.format(stack=stack.stack)
        assert env["RETRAIN_JOB_DEFINITION"] == f"ml-delivery-{stack.stack}-retrain"
        assert env["SUMMARY_WINDOW_MINUTES"] == "10"  # the default rate(10 minutes) summary schedule
    assert environment(stack, "inference")["MODEL_REF"] == "champion"


@pytest.mark.parametrize("job", JOB_NAMES)
def test_every_variable_set_is_one_the_job_reads_with_the_same_value(dev: OfflineRun, job: str) -> None:
    """The job definition is written from the job's environment class and the job reads that class: every
    variable set is a field of it, and reading the definition's environment back gives the same text."""
    env = environment(dev, job)
    kind = JOB_ENVIRONMENTS[job]
    unknown = sorted(set(env) - set(kind.variables()))
    assert unknown == [], f"{job}: set in the job definition but not a variable of {kind.__name__}: {unknown}"
    assert kind.from_env(env).to_env() == env


def test_the_jobs_read_their_settings_from_the_job_definition_environment(dev: OfflineRun) -> None:
    """The processes' own readers accept what infra writes (no variable renamed on one side only)."""
    from monitor.settings import MonitorSettings
    from retrain.settings import Settings

    retrain = Settings.from_env(environment(dev, "retrain")).for_run()
    settings = parse_settings(load_stack_config("dev")[0])
    assert (retrain.gate_tolerance, retrain.min_rows) == (settings.gate_tolerance, settings.min_training_rows)
    assert retrain.data_uri == environment(dev, "retrain")["DATA_URI"]
    for job in ("drift", "summary"):
        monitor = MonitorSettings.from_env(environment(dev, job))
        assert monitor.capture_prefix == "capture/prod" and monitor.summary_min_count == settings.summary_min_count
        assert monitor.retrain_enabled is settings.drift_retrain_enabled


def test_a_bad_job_variable_is_named_with_its_value_and_what_is_allowed() -> None:
    from model_package.errors import JobConfigError
    from monitor.settings import MonitorSettings

    with pytest.raises(JobConfigError, match=r"SUMMARY_WINDOW_MINUTES='0': expected greater than or equal to 1"):
        MonitorSettings.from_env({"MODEL_BUCKET": "b", "CAPTURE_BUCKET": "c", "SUMMARY_WINDOW_MINUTES": "0"})
    with pytest.raises(JobConfigError, match=r"DRIFT_RETRAIN_ENABLED='maybe': expected a valid boolean"):
        MonitorSettings.from_env({"MODEL_BUCKET": "b", "CAPTURE_BUCKET": "c", "DRIFT_RETRAIN_ENABLED": "maybe"})
    with pytest.raises(JobConfigError, match="MODEL_BUCKET is not set"):
        MonitorSettings.from_env({"CAPTURE_BUCKET": "c"})


def test_summary_window_follows_its_rate() -> None:
    assert schedule_window_minutes("rate(10 minutes)", 10) == 10
    assert schedule_window_minutes("rate(1 hour)", 10) == 60
    assert schedule_window_minutes("rate(2 days)", 10) == 2880
    assert schedule_window_minutes("cron(0/15 * * * ? *)", 15) == 15
    run = run_offline("dev", overrides={"ml-delivery:summarySchedule": "rate(1 hour)"})
    assert environment(run, "summary")["SUMMARY_WINDOW_MINUTES"] == "60"


# --- retries -------------------------------------------------------------------------------------------
def _glob(pattern: str, value: str | None) -> bool:
    return value is not None and fnmatch.fnmatchcase(value, pattern)


def batch_decision(entries: list[dict[str, str]], status_reason: str, reason: str | None, exit_code: int | None) -> str:
    """What Batch does with a failed attempt (API Reference, "EvaluateOnExit"): the first entry whose every
    condition matches decides; none matching means RETRY."""
    for entry in entries:
        conditions = [(entry.get("onStatusReason"), status_reason), (entry.get("onReason"), reason),
                      (entry.get("onExitCode"), None if exit_code is None else str(exit_code))]  # fmt: skip
        if all(_glob(pattern, value) for pattern, value in conditions if pattern is not None):
            return entry["action"].upper()
    return "RETRY"


def test_retries_only_on_infrastructure_errors(stack: OfflineRun) -> None:
    allowed = re.compile(r"^[A-Za-z0-9.: \t]*\*?$")
    for job, definition in definitions(stack).items():
        retry = definition.inputs["retryStrategy"]
        entries = retry["evaluateOnExits"]
        assert 1 < retry["attempts"] <= 10 and len(entries) <= 5, job
        assert entries[-1] == {"action": "EXIT", "onReason": "*"}
        for entry in entries:
            for key in ("onStatusReason", "onReason", "onExitCode"):
                if key in entry:
                    assert allowed.match(entry[key]) and len(entry[key]) <= 512, entry
        infrastructure = [
            ("CannotPullContainerError: pull image manifest has been retried 5 time(s)", None, None),
            ("ResourceInitializationError: unable to pull secrets or registry auth", None, None),
            ("Task failed to start", None, None),
            ("Timeout waiting for network interface provisioning to complete.", None, None),
        ]
        for status_reason, reason, code in infrastructure:
            assert batch_decision(entries, status_reason, reason, code) == "RETRY", status_reason
        job_failures = [
            ("Essential container in task exited", "", 1),
            ("Essential container in task exited", "OutOfMemoryError: Container killed due to memory usage", 137),
            ("Job attempt duration exceeded timeout", "Task stopped by user", None),
        ]
        for status_reason, reason, code in job_failures:
            assert batch_decision(entries, status_reason, reason, code) == "EXIT", status_reason
    assert list(EVALUATE_ON_EXIT) == definitions(stack)["retrain"].inputs["retryStrategy"]["evaluateOnExits"]


def test_timeouts(stack: OfflineRun) -> None:
    seconds = {job: d.inputs["timeout"]["attemptDurationSeconds"] for job, d in definitions(stack).items()}
    assert seconds["retrain"] == settings_of(stack.stack).retrain_timeout_minutes * 60
    assert all(60 <= s <= 24 * 3600 for s in seconds.values())
    assert seconds["summary"] <= 30 * 60  # shorter than a few summary periods: no pile-up


def test_pulumi_never_deregisters_revisions_it_did_not_register(stack: OfflineRun) -> None:
    for definition in definitions(stack).values():
        assert definition.inputs["deregisterOnNewRevision"] is True
        assert definition.ignore_changes == []


# --- roles ---------------------------------------------------------------------------------------------
def policy(run: OfflineRun, job: str) -> dict[str, Any]:
    return role_policy(run, f"jobs-{job}-role")


def resources_of(document: dict[str, Any]) -> list[str]:
    return [r for s in statements(document) for r in as_list(s["Resource"])]


def test_every_job_role_is_trusted_by_ecs_tasks_of_this_account_only(stack: OfflineRun) -> None:
    for job in (*JOB_NAMES, "execution"):
        role = stack.one("aws:iam/role:Role", f"jobs-{job}-role")
        (trust,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
        assert trust["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
        assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": "123456789012"}


def test_job_roles_reach_only_this_stacks_buckets_topic_key_and_queue(stack: OfflineRun) -> None:
    own = (MODELS, CAPTURE, "arn:aws:sns:us-east-1:123456789012:alerts-topic-0a1b2c3",
           "arn:aws:kms:us-east-1:123456789012:key/", QUEUE_ARN.format(stack=stack.stack),
           f"arn:aws:batch:us-east-1:123456789012:job-definition/ml-delivery-{stack.stack}-retrain",
           f"arn:aws:ssm:us-east-1:123456789012:parameter/ml-delivery/{stack.stack}/prod/runtime")  # fmt: skip
    for job in JOB_NAMES:
        for resource in resources_of(policy(stack, job)):
            assert resource.startswith(own) or resource == "arn:aws:batch:us-east-1:123456789012:job/*", resource
            assert resource not in (f"{MODELS}/*", f"{CAPTURE}/*"), f"{job}: whole bucket {resource}"


def test_retrain_role(stack: OfflineRun) -> None:
    actions = allowed_actions(policy(stack, "retrain"))
    assert not any(r.startswith(CAPTURE) for r in resources_of(policy(stack, "retrain")))
    assert set(actions["s3:PutObject"]) == {f"{MODELS}/models/*", f"{MODELS}/model.zip", f"{MODELS}/reports/retrain/*",
                                            f"{MODELS}/alerts/sent/*"}  # fmt: skip
    assert set(actions["s3:GetObject"]) == {f"{MODELS}/training-data/*", f"{MODELS}/champion.json",
                                            f"{MODELS}/models/*", f"{MODELS}/alerts/sent/*"}  # fmt: skip
    assert actions["sns:Publish"] == ["arn:aws:sns:us-east-1:123456789012:alerts-topic-0a1b2c3"]
    assert {"kms:Decrypt", "kms:GenerateDataKey"} <= set(actions)
    assert "batch:SubmitJob" not in actions


def test_monitoring_and_inference_roles_never_write_the_model_key_or_models(stack: OfflineRun) -> None:
    for job in ("drift", "summary", "inference"):
        writes = allowed_actions(policy(stack, job))["s3:PutObject"]
        assert f"{MODELS}/model.zip" not in writes and f"{MODELS}/models/*" not in writes, job
    assert set(allowed_actions(policy(stack, "drift"))["s3:PutObject"]) == {
        f"{MODELS}/reports/drift/*", f"{MODELS}/alerts/sent/*"}  # fmt: skip
    assert set(allowed_actions(policy(stack, "summary"))["s3:PutObject"]) == {
        f"{MODELS}/reports/summary/*", f"{MODELS}/alerts/sent/*"}  # fmt: skip
    inference = allowed_actions(policy(stack, "inference"))
    assert set(inference["s3:PutObject"]) == {f"{MODELS}/batch-inference/output/*", f"{MODELS}/alerts/sent/*"}
    assert f"{MODELS}/batch-inference/input/*" in inference["s3:GetObject"]
    assert not any(r.startswith(CAPTURE) for r in resources_of(policy(stack, "inference")))


def test_drift_and_summary_read_only_the_prod_capture_prefix(stack: OfflineRun) -> None:
    for job in ("drift", "summary"):
        document = policy(stack, job)
        capture = [s for s in statements(document) if any(r.startswith(CAPTURE) for r in as_list(s["Resource"]))]
        by_action = {a: s for s in capture for a in as_list(s["Action"])}
        assert set(by_action) == {"s3:ListBucket", "s3:GetObject"}
        assert by_action["s3:GetObject"]["Resource"] == [f"{CAPTURE}/capture/prod/*"]
        assert by_action["s3:ListBucket"]["Condition"] == {"StringLike": {"s3:prefix": ["capture/prod/*"]}}
    assert "s3:GetObject" in allowed_actions(policy(stack, "drift"))
    assert f"{MODELS}/model.zip" in allowed_actions(policy(stack, "drift"))["s3:GetObject"]
    # The drift window marker (monitor/window.py) and nothing else under reports/ is readable.
    reads = allowed_actions(policy(stack, "drift"))["s3:GetObject"]
    assert [r for r in reads if "/reports/" in r] == [f"{MODELS}/reports/drift/*/last-success.json"]


def test_drift_may_submit_retrain_only_when_enabled(dev: OfflineRun, prod: OfflineRun) -> None:
    assert "batch:SubmitJob" not in allowed_actions(policy(dev, "drift"))
    retrain = "arn:aws:batch:us-east-1:123456789012:job-definition/ml-delivery-prod-retrain"
    assert sorted(allowed_actions(policy(prod, "drift"))["batch:SubmitJob"]) == sorted(
        [QUEUE_ARN.format(stack="prod"), retrain, f"{retrain}:*", "arn:aws:batch:us-east-1:123456789012:job/*"]
    )
    for job in ("retrain", "summary", "inference"):
        assert "batch:SubmitJob" not in allowed_actions(policy(prod, job))


def test_execution_role_pulls_only_the_jobs_image_and_writes_only_the_jobs_logs(stack: OfflineRun) -> None:
    actions = allowed_actions(policy(stack, "execution"))
    repository = "arn:aws:ecr:us-east-1:123456789012:repository/registry-jobs-0a1b2c3"
    for action in ("ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"):
        assert actions[action] == [repository]
    assert actions["ecr:GetAuthorizationToken"] == ["*"]
    streams = f"arn:aws:logs:us-east-1:123456789012:log-group:/ml-delivery/{stack.stack}/jobs:log-stream:*"
    assert actions["logs:CreateLogStream"] == actions["logs:PutLogEvents"] == [streams]
    assert not any(a.startswith("s3:") for a in actions)


def test_log_group_named_and_retained_per_config(stack: OfflineRun) -> None:
    group = stack.one("aws:cloudwatch/logGroup:LogGroup", "jobs-logs")
    assert group.inputs["name"] == f"/ml-delivery/{stack.stack}/jobs"
    assert group.inputs["retentionInDays"] == settings_of(stack.stack).log_retention_days


def test_component_hands_the_pipeline_definitions_and_passable_roles() -> None:
    def program() -> None:
        from infra.lib.stack_types import Account
        from infra.settings import load_settings
        from infra.stack import build_jobs, build_platform

        jobs = build_jobs(build_platform(load_settings(), Account.lookup()))
        pulumi.export("definitions", {job: d.name for job, d in jobs.job_definitions.items()})
        pulumi.export("queue", jobs.job_queue.arn)
        pulumi.export("passable", jobs.passable_role_arns)

    outputs = run_offline("dev", program=program).outputs
    assert outputs["definitions"] == {job: f"ml-delivery-dev-{job}" for job in JOB_NAMES}
    assert outputs["queue"] == QUEUE_ARN.format(stack="dev")
    assert sorted(outputs["passable"]) == sorted(
        f"arn:aws:iam::123456789012:role/jobs-{role}-role-0a1b2c3" for role in (*JOB_NAMES, "execution"))  # fmt: skip


def test_jobs_image_tag_follows_config() -> None:
    """Pinning the live tag keeps a changed job setting from reverting the jobs to the bootstrap image."""
    run = run_offline("dev", overrides={"ml-delivery:jobsImageTag": "0123456789ab"})
    images = {json.loads(j.inputs["containerProperties"])["image"] for j in run.of_type(JOB_DEFINITION)}
    assert len(images) == 1 and images.pop().endswith("registry-jobs-0a1b2c3:0123456789ab")


@pytest.mark.parametrize(("metric", "floor"), [("rmse", 25.0), ("macro_f1", 0.4), ("roc_auc", 0.7)])
def test_gate_keys_set_in_the_stack_reach_retrain_and_evaluate(metric: str, floor: float) -> None:
    run = run_offline("dev", overrides={"ml-delivery:gateMetric": metric, "ml-delivery:gateFloor": floor})
    retrain = environment(run, "retrain")
    assert (retrain["GATE_METRIC"], float(retrain["GATE_FLOOR"])) == (metric, floor)
    assert RetrainSettings.from_env(retrain).gate_metric == metric
    evaluate = run.one("aws:codebuild/project:Project", "delivery-evaluate-project")
    env = {e["name"]: e["value"] for e in evaluate.inputs["environment"]["environmentVariables"]}
    assert (env["GATE_METRIC"], float(env["GATE_FLOOR"])) == (metric, floor)


def test_evaluate_env_has_no_gate_metric_or_floor_unless_set(stack: OfflineRun) -> None:
    evaluate = stack.one("aws:codebuild/project:Project", "delivery-evaluate-project")
    names = {e["name"] for e in evaluate.inputs["environment"]["environmentVariables"]}
    assert "GATE_TOLERANCE" in names and not names & {"GATE_METRIC", "GATE_FLOOR"}


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        (
            {"gateMetric": "accuracy"},
            [
                'ml-delivery:gateMetric = "accuracy"',
                "binary: roc_auc, log_loss, lift",
                "multiclass: log_loss, macro_f1",
                "regression: rmse, mae, r2",
            ],
        ),
        ({"gateFloor": 0.7}, ["ml-delivery:gateFloor", "0.7", "needs ml-delivery:gateMetric"]),
        ({"gateMetric": "roc_auc", "gateFloor": 0.2}, ["ml-delivery:gateFloor", "0.2", "between 0.5 and 1"]),
        ({"gateMetric": "rmse", "gateFloor": -1}, ["ml-delivery:gateFloor", "-1", "greater than 0"]),
        ({"gateMetric": "r2", "gateFloor": 1.5}, ["ml-delivery:gateFloor", "1.5", "at most 1"]),
    ],
)
def test_gate_keys_invalid_name_key_value_and_allowed(keys: dict[str, Any], expected: list[str]) -> None:
    config, _ = load_stack_config("dev")
    changes = {f"ml-delivery:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in keys.items()}
    with pytest.raises(ConfigError) as caught:
        parse_settings({**config, **changes})
    for text in expected:
        assert text in str(caught.value)


def test_every_gate_metric_has_a_floor_rule() -> None:
    """The floor check covers every metric the package defines (a new metric without a rule would KeyError)."""
    assert set(GATE_FLOOR_RULES) == set(HIGHER_IS_BETTER)
