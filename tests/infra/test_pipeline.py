"""The delivery pipeline in the offline plan of both stacks: stages, sources, deploys, build projects.

Policies and triggers are in test_pipeline_access.py; the triggers' end-to-end behaviour on a real
(moto) EventBridge bus is in tests/pipeline/test_triggers.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.session import get_session
from botocore.validate import ParamValidator

from contracts.environment import EvaluateEnvironment, ReleaseEnvironment
from evaluation.job import SUMMARY_LIMIT
from evaluation.settings import EvaluationSettings
from infra.lib.images import BUILDKIT_IMAGE, PYTHON_BASE_IMAGE
from infra.pipeline.pipeline import STAGE_ORDER
from tools.plan.offline import OfflineRun, run_offline

# Job settings the infra leaves at the job's default on purpose (the app's default threshold, segment size).
OPTIONAL = {"EVALUATION_DECISION_THRESHOLD", "EVALUATION_MIN_SEGMENT_ROWS"}

PIPELINE = "aws:codepipeline/pipeline:Pipeline"
PROJECT = "aws:codebuild/project:Project"
CONNECTION_ARN = "arn:aws:codeconnections:us-east-1:123456789012:connection/0f2a4b1c-1111-2222-3333-444455556666"


def pipeline_of(run: OfflineRun) -> dict[str, Any]:
    return run.one(PIPELINE, "delivery-pipeline").inputs


def stages(run: OfflineRun) -> dict[str, list[dict[str, Any]]]:
    return {stage["name"]: stage["actions"] for stage in pipeline_of(run)["stages"]}


def action(run: OfflineRun, stage: str, name: str | None = None) -> dict[str, Any]:
    actions = stages(run)[stage]
    if name is None:
        assert len(actions) == 1, f"{stage} has {len(actions)} actions"
        return actions[0]
    return next(a for a in actions if a["name"] == name)


def project(run: OfflineRun, role: str) -> dict[str, Any]:
    return run.one(PROJECT, f"delivery-{role}-project").inputs


def project_env(run: OfflineRun, role: str) -> dict[str, str]:
    variables = project(run, role)["environment"]["environmentVariables"]
    assert all(v["type"] == "PLAINTEXT" for v in variables)
    return {v["name"]: v["value"] for v in variables}


def action_env(configuration: dict[str, str]) -> dict[str, str]:
    return {v["name"]: v["value"] for v in json.loads(configuration["EnvironmentVariables"])}


def physical(run: OfflineRun, type_token: str, name: str) -> str:
    return run.one(type_token, name).inputs.get("name") or f"{name}-0a1b2c3"


# --- shape -------------------------------------------------------------------------------------------
def test_v2_pipeline_with_stages_in_order_and_the_right_action_kinds(stack: OfflineRun) -> None:
    pipeline = pipeline_of(stack)
    assert pipeline["pipelineType"] == "V2"
    assert pipeline["name"] == f"ml-delivery-{stack.stack}"
    assert (
        tuple(stages(stack))
        == STAGE_ORDER
        == ("Source", "Build", "DeployStage", "Evaluate", "Approval", "DeployProd", "Release")
    )
    kinds = {
        stage: sorted((a["category"], a["owner"], a["provider"]) for a in actions)
        for stage, actions in stages(stack).items()
    }
    assert kinds == {
        "Source": [("Source", "AWS", "CodeCommit"), ("Source", "AWS", "S3")],
        "Build": [("Build", "AWS", "CodeBuild")],
        "DeployStage": [("Deploy", "AWS", "ECS")],
        "Evaluate": [("Build", "AWS", "CodeBuild")],
        "Approval": [("Approval", "AWS", "Manual")],
        "DeployProd": [("Deploy", "AWS", "ECS")],
        "Release": [("Build", "AWS", "CodeBuild")],
    }


def test_artifact_store_is_the_artifact_bucket_encrypted_with_the_stack_key(stack: OfflineRun) -> None:
    (store,) = pipeline_of(stack)["artifactStores"]
    key_arn = stack.one("aws:sns/topic:Topic", "alerts-topic").inputs["kmsMasterKeyId"]
    assert store["type"] == "S3" and store["location"] == stack.outputs["artifactBucket"]
    assert store["encryptionKey"] == {"type": "KMS", "id": key_arn}


def test_pipeline_definition_is_valid_for_the_codepipeline_api(stack: OfflineRun) -> None:
    """Translate the provider's shape to CreatePipeline's and let botocore check types and limits."""
    pipeline = pipeline_of(stack)
    declaration = {
        "name": pipeline["name"],
        "roleArn": pipeline["roleArn"],
        "pipelineType": pipeline["pipelineType"],
        "executionMode": pipeline["executionMode"],
        "artifactStore": dict(pipeline["artifactStores"][0]),
        "stages": [
            {
                "name": stage["name"],
                "actions": [
                    {
                        "name": a["name"],
                        "actionTypeId": {k: a[k] for k in ("category", "owner", "provider", "version")},
                        "runOrder": a.get("runOrder", 1),
                        "configuration": a.get("configuration", {}),
                        "inputArtifacts": [{"name": n} for n in a.get("inputArtifacts", [])],
                        "outputArtifacts": [{"name": n} for n in a.get("outputArtifacts", [])],
                        **({"namespace": a["namespace"]} if "namespace" in a else {}),
                        **({"timeoutInMinutes": a["timeoutInMinutes"]} if "timeoutInMinutes" in a else {}),
                    }
                    for a in stage["actions"]
                ],
            }
            for stage in pipeline["stages"]
        ],
    }
    shape = get_session().get_service_model("codepipeline").operation_model("CreatePipeline").input_shape
    report = ParamValidator().validate({"pipeline": declaration}, shape)
    assert not report.has_errors(), report.generate_report()
    # CustomData is limited to 500 characters (CodePipeline User Guide, manual approval action).
    assert len(action(stack, "Approval")["configuration"]["CustomData"]) <= 500


# --- sources -----------------------------------------------------------------------------------------
def test_both_sources_are_event_driven_with_the_contract_names(stack: OfflineRun) -> None:
    code, model = action(stack, "Source", "Code"), action(stack, "Source", "Model")
    assert code["configuration"] == {
        "RepositoryName": f"ml-delivery-{stack.stack}",
        "BranchName": "main",
        "PollForSourceChanges": "false",
        "OutputArtifactFormat": "CODE_ZIP",
    }
    assert (code["outputArtifacts"], code["namespace"]) == (["CodeSource"], "CodeSource")
    assert model["configuration"] == {
        "S3Bucket": stack.outputs["modelBucket"],
        "S3ObjectKey": "model.zip",
        "PollForSourceChanges": "false",
    }
    assert (model["outputArtifacts"], model["namespace"]) == (["ModelSource"], "ModelSource")
    repository = stack.one("aws:codecommit/repository:Repository", "delivery-code-repository")
    assert repository.inputs["repositoryName"] == f"ml-delivery-{stack.stack}"
    assert repository.inputs["defaultBranch"] == "main"
    assert "triggers" not in pipeline_of(stack) or not pipeline_of(stack)["triggers"]


def test_sources_follow_config() -> None:
    run = run_offline(
        "dev",
        overrides={
            "ml-delivery:repositoryName": "churn-model",
            "ml-delivery:branch": "release/v2",
            "ml-delivery:modelKey": "incoming/churn.zip",
        },
    )
    code, model = action(run, "Source", "Code"), action(run, "Source", "Model")
    assert (code["configuration"]["RepositoryName"], code["configuration"]["BranchName"]) == (
        "churn-model",
        "release/v2",
    )
    assert model["configuration"]["S3ObjectKey"] == "incoming/churn.zip"
    assert project_env(run, "build")["MODEL_KEY"] == project_env(run, "release")["MODEL_KEY"] == "incoming/churn.zip"
    assert run.outputs["codeCommitCloneUrl"].endswith("/v1/repos/churn-model")
    upload = json.loads(
        run.one("aws:cloudwatch/eventRule:EventRule", "delivery-triggers-model-upload").inputs["eventPattern"]
    )
    assert upload["detail"]["object"]["key"] == ["incoming/churn.zip"]
    push = json.loads(
        run.one("aws:cloudwatch/eventRule:EventRule", "delivery-triggers-code-push").inputs["eventPattern"]
    )
    assert push["detail"]["referenceName"] == ["release/v2"]
    assert push["resources"] == ["arn:aws:codecommit:us-east-1:123456789012:churn-model"]


def test_codeconnections_source_uses_a_connection_and_a_v2_push_trigger() -> None:
    run = run_offline(
        "dev",
        overrides={
            "ml-delivery:sourceProvider": "codeconnections",
            "ml-delivery:connectionArn": CONNECTION_ARN,
            "ml-delivery:fullRepositoryId": "acme/churn",
            "ml-delivery:branch": "trunk",
        },
    )
    code = action(run, "Source", "Code")
    assert code["provider"] == "CodeStarSourceConnection"
    assert code["configuration"] == {
        "ConnectionArn": CONNECTION_ARN,
        "FullRepositoryId": "acme/churn",
        "BranchName": "trunk",
        "DetectChanges": "true",
        "OutputArtifactFormat": "CODE_ZIP",
    }
    assert code["outputArtifacts"] == ["CodeSource"] and code["namespace"] == "CodeSource"
    assert action(run, "Source", "Model")["configuration"]["PollForSourceChanges"] == "false"
    (trigger,) = pipeline_of(run)["triggers"]
    assert trigger == {
        "providerType": "CodeStarSourceConnection",
        "gitConfiguration": {"sourceActionName": "Code", "pushes": [{"branches": {"includes": ["trunk"]}}]},
    }
    assert not run.of_type("aws:codecommit/repository:Repository")
    rules = {
        r.name for r in run.of_type("aws:cloudwatch/eventRule:EventRule") if r.name.startswith("delivery-triggers")
    }
    assert rules == {"delivery-triggers-model-upload"}, "a connection has no EventBridge rule of its own"
    assert run.outputs["codeCommitCloneUrl"] == "https://github.com/acme/churn.git"
    policy = json.loads(run.one("aws:iam/rolePolicy:RolePolicy", "delivery-pipeline-role-policy").inputs["policy"])
    actions = {a for s in policy["Statement"] for a in s["Action"]}
    assert "codeconnections:UseConnection" in actions and not any(a.startswith("codecommit:") for a in actions)


# --- build, deploys, approval, release ---------------------------------------------------------------
def test_build_action_and_project_keep_the_buildspec_contract(stack: OfflineRun) -> None:
    build = action(stack, "Build")
    assert build["inputArtifacts"] == ["CodeSource", "ModelSource"]
    assert build["outputArtifacts"] == ["ImageDefinitions", "BuildRecord"]
    assert build["namespace"] == "BuildVariables"
    assert build["configuration"]["ProjectName"] == f"ml-delivery-{stack.stack}-build"
    assert build["configuration"]["PrimarySource"] == "CodeSource"
    assert action_env(build["configuration"]) == {
        "GIT_SHA": "#{CodeSource.CommitId}",
        "MODEL_S3_VERSION_ID": "#{ModelSource.VersionId}",
    }
    inputs = project(stack, "build")
    assert inputs["name"] == f"ml-delivery-{stack.stack}-build"
    assert inputs["source"] == {"type": "CODEPIPELINE", "buildspec": "buildspec.yml"}
    assert inputs["artifacts"] == {"type": "CODEPIPELINE"}
    environment = inputs["environment"]
    assert (environment["image"], environment["type"]) == ("aws/codebuild/standard:7.0", "LINUX_CONTAINER")
    assert environment["privilegedMode"] is True
    assert inputs["cache"] == {"type": "LOCAL", "modes": ["LOCAL_DOCKER_LAYER_CACHE", "LOCAL_SOURCE_CACHE"]}
    assert project_env(stack, "build") == {
        "APP_REPOSITORY_URI": stack.outputs["appRepositoryUrl"],
        "JOBS_REPOSITORY_URI": stack.outputs["jobsRepositoryUrl"],
        "CONTAINER_NAME": "app",
        "MODEL_KEY": "model.zip",
        "MODEL_BUCKET": stack.outputs["modelBucket"],
        "ARTIFACT_BUCKET": stack.outputs["artifactBucket"],
        "AWS_ACCOUNT_ID": "123456789012",
        "AWS_REGION": "us-east-1",
        # Issue #16: BuildKit cache tag, digest-pinned base image, BuildKit image (infra/pipeline/registry.py).
        "BUILD_CACHE_TAG": "buildcache",
        "PYTHON_IMAGE": PYTHON_BASE_IMAGE,
        "BUILDKIT_IMAGE": BUILDKIT_IMAGE,
    }
    assert inputs["encryptionKey"].startswith("arn:aws:kms:us-east-1:123456789012:key/")


def test_build_size_and_timeout_follow_config() -> None:
    run = run_offline(
        "dev", overrides={"ml-delivery:buildComputeType": "BUILD_GENERAL1_LARGE", "ml-delivery:buildTimeoutMinutes": 90}
    )
    inputs = project(run, "build")
    assert inputs["environment"]["computeType"] == "BUILD_GENERAL1_LARGE"
    assert inputs["buildTimeout"] == 90


@pytest.mark.parametrize(("stage", "service"), [("DeployStage", "stage"), ("DeployProd", "prod")])
def test_each_deploy_targets_its_own_cluster_and_service(stack: OfflineRun, stage: str, service: str) -> None:
    deploy = action(stack, stage)
    assert (deploy["category"], deploy["provider"]) == ("Deploy", "ECS")
    assert deploy["inputArtifacts"] == ["ImageDefinitions"]
    configuration = deploy["configuration"]
    assert configuration["FileName"] == "imagedefinitions.json"
    assert configuration["ClusterName"] == physical(stack, "aws:ecs/cluster:Cluster", f"{service}-cluster")
    assert configuration["ServiceName"] == physical(stack, "aws:ecs/service:Service", f"{service}-service")
    other = "prod" if service == "stage" else "stage"
    assert other not in configuration["ClusterName"] and other not in configuration["ServiceName"]


def test_images_name_the_container_the_services_run() -> None:
    """imagedefinitions.json names CONTAINER_NAME; it must be the task definitions' container."""
    for run in (run_offline("dev"), run_offline("dev", overrides={"ml-delivery:containerName": "model-api"})):
        expected = "model-api" if run.outputs["containerName"] == "model-api" else "app"
        assert project_env(run, "build")["CONTAINER_NAME"] == expected
        for service in ("stage", "prod"):
            task = run.one("aws:ecs/taskDefinition:TaskDefinition", f"{service}-task").inputs
            assert [c["name"] for c in json.loads(task["containerDefinitions"])] == [expected]


def test_approval_follows_the_evaluation_and_shows_its_verdict_and_report(stack: OfflineRun) -> None:
    order = list(stages(stack))
    assert order.index("DeployStage") + 1 == order.index("Evaluate") == order.index("Approval") - 1
    assert order.index("Approval") + 1 == order.index("DeployProd")
    approval = action(stack, "Approval")
    configuration = approval["configuration"]
    assert configuration["NotificationArn"] == stack.outputs["alertsTopicArn"]
    # The report of this execution, from the Evaluate action's exported variables.
    assert configuration["ExternalEntityLink"] == "#{EvaluateVariables.EVAL_REPORT_URL}"
    note = configuration["CustomData"]
    for needed in (stack.outputs["stageUrl"], "#{BuildVariables.GIT_SHA}", "#{BuildVariables.MODEL_VERSION}",
                   "#{EvaluateVariables.EVAL_SUMMARY}"):  # fmt: skip
        assert needed in note
    # Resolved, with the longest summary the job writes, a full git sha and a large version: <= 500 characters.
    resolved = (
        note.replace("#{EvaluateVariables.EVAL_SUMMARY}", "x" * SUMMARY_LIMIT)
        .replace("#{BuildVariables.GIT_SHA}", "f" * 40)
        .replace("#{BuildVariables.MODEL_VERSION}", "999999")
    )
    assert len(resolved) <= 500, len(resolved)


def test_approval_times_out_after_the_configured_minutes() -> None:
    """CodePipeline's default is 7 days; the stack key sets the action's timeoutInMinutes."""
    assert action(run_offline("dev"), "Approval")["timeoutInMinutes"] == 1440
    assert (
        action(run_offline("dev", overrides={"ml-delivery:approvalTimeoutMinutes": 90}), "Approval")["timeoutInMinutes"]
        == 90
    )


def test_evaluate_action_runs_the_evaluation_project_with_the_candidate_and_exports_its_verdict(
    stack: OfflineRun,
) -> None:
    evaluate = action(stack, "Evaluate")
    assert evaluate["namespace"] == "EvaluateVariables"
    assert evaluate["inputArtifacts"] == ["CodeSource", "ModelSource"]
    assert evaluate["configuration"]["PrimarySource"] == "CodeSource"
    assert evaluate["configuration"]["ProjectName"] == f"ml-delivery-{stack.stack}-evaluate"
    assert action_env(evaluate["configuration"]) == {
        "GIT_SHA": "#{BuildVariables.GIT_SHA}",
        "PIPELINE_EXECUTION_ID": "#{codepipeline.PipelineExecutionId}",
    }
    evaluate_action = evaluate
    inputs = project(stack, "evaluate")
    assert inputs["source"] == {"type": "CODEPIPELINE", "buildspec": "evaluation/buildspec.yml"}
    assert inputs["environment"]["privilegedMode"] is False
    env = project_env(stack, "evaluate")
    assert env["STAGE_URL"] == stack.outputs["stageUrl"]
    assert env["MODEL_BUCKET"] == stack.outputs["modelBucket"]
    assert env["LABELLED_DATA_URI"] == f"s3://{stack.outputs['modelBucket']}/training-data/"
    assert env["CAPTURE_PREFIX"] == "capture/prod"
    # Every variable the project sets is one the job reads, and every threshold is set from the stack.
    variables = EvaluateEnvironment.variables()
    assert set(env) | set(action_env(evaluate_action["configuration"])) <= set(variables)
    assert {k for k in variables if k.startswith("EVALUATION_") and k not in OPTIONAL} <= set(env)
    settings = EvaluationSettings.from_env(env)
    assert settings.min_agreement == 0.9 and settings.gate_metric is None  # the candidate task's primary metric


def test_evaluation_thresholds_follow_config() -> None:
    keys = {"evaluationMinAgreement": 0.75, "evaluationMaxP99LatencyMs": 300, "evaluationTimeoutMinutes": 15}
    run = run_offline("dev", overrides={f"ml-delivery:{k}": v for k, v in keys.items()})
    env = project_env(run, "evaluate")
    settings = EvaluationSettings.from_env(env)
    assert (settings.min_agreement, settings.max_p99_latency_ms) == (0.75, 300)
    assert project(run, "evaluate")["buildTimeout"] == 15


def test_release_action_runs_the_unprivileged_release_project(stack: OfflineRun) -> None:
    release = action(stack, "Release")
    assert release["inputArtifacts"] == ["CodeSource", "BuildRecord"]
    assert release["configuration"]["PrimarySource"] == "CodeSource"
    assert release["configuration"]["ProjectName"] == f"ml-delivery-{stack.stack}-release"
    assert action_env(release["configuration"]) == {"PIPELINE_EXECUTION_ID": "#{codepipeline.PipelineExecutionId}"}
    inputs = project(stack, "release")
    assert inputs["source"] == {"type": "CODEPIPELINE", "buildspec": "release/buildspec.yml"}
    assert inputs["environment"]["privilegedMode"] is False


def test_release_project_environment_names_every_job_definition(stack: OfflineRun) -> None:
    """Waits on infra/jobs/jobs.py: the names are those of its four job definitions."""
    definitions = sorted(r.inputs["name"] for r in stack.of_type("aws:batch/jobDefinition:JobDefinition"))
    assert len(definitions) == 4
    assert {d.rsplit("-", 1)[-1] for d in definitions} == {"retrain", "drift", "summary", "inference"}
    env = project_env(stack, "release")
    assert sorted(env["JOB_DEFINITION_NAMES"].split(",")) == definitions
    assert env["MODEL_BUCKET"] == stack.outputs["modelBucket"] and env["MODEL_KEY"] == "model.zip"
    assert env["ALERTS_TOPIC_ARN"] == stack.outputs["alertsTopicArn"]
    # Every variable the project and the action set is one the release command reads (contracts.environment).
    given = set(env) | set(action_env(action(stack, "Release")["configuration"]))
    assert given - {"AWS_REGION"} <= set(ReleaseEnvironment.variables())


# --- network and logs --------------------------------------------------------------------------------
@pytest.mark.parametrize("role", ["build", "release", "evaluate"])
def test_codebuild_runs_in_the_private_subnets_behind_an_egress_only_group(stack: OfflineRun, role: str) -> None:
    private = sorted(
        f"{r.name}-id" for r in stack.of_type("aws:ec2/subnet:Subnet") if r.inputs["tags"]["tier"] == "private"
    )
    vpc = project(stack, role)["vpcConfig"]
    assert sorted(vpc["subnets"]) == private and len(private) == {"dev": 2, "prod": 3}[stack.stack]
    assert vpc["vpcId"] == "network-vpc-id"
    assert vpc["securityGroupIds"] == [f"delivery-{role}-sg-id"]
    group = stack.one("aws:ec2/securityGroup:SecurityGroup", f"delivery-{role}-sg").inputs
    assert not group.get("ingress") and not group.get("egress")
    ingress = [
        r
        for r in stack.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if r.inputs["securityGroupId"] == f"delivery-{role}-sg-id"
    ]
    assert ingress == []
    egress = {
        r.inputs["fromPort"]
        for r in stack.of_type("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
        if r.inputs["securityGroupId"] == f"delivery-{role}-sg-id"
    }
    assert egress == ({443, 80} if role in {"build", "evaluate"} else {443})


@pytest.mark.parametrize("role", ["build", "release", "evaluate"])
def test_codebuild_logs_to_its_own_log_group_with_the_stack_retention(stack: OfflineRun, role: str) -> None:
    group = stack.one("aws:cloudwatch/logGroup:LogGroup", f"delivery-{role}-logs").inputs
    assert group["name"] == f"/ml-delivery/{stack.stack}/codebuild/{role}"
    assert group["retentionInDays"] == {"dev": 14, "prod": 365}[stack.stack]
    logs = project(stack, role)["logsConfig"]
    assert logs["cloudwatchLogs"]["groupName"] == group["name"] and logs["cloudwatchLogs"]["status"] == "ENABLED"


def test_outputs_name_the_pipeline_its_console_and_the_clone_url(stack: OfflineRun) -> None:
    name = f"ml-delivery-{stack.stack}"
    assert stack.outputs["pipelineName"] == name
    assert stack.outputs["pipelineConsoleUrl"] == (
        f"https://us-east-1.console.aws.amazon.com/codesuite/codepipeline/pipelines/{name}/view?region=us-east-1"
    )
    clone_url = stack.outputs["codeCommitCloneUrl"]
    assert clone_url == f"https://git-codecommit.us-east-1.amazonaws.com/v1/repos/ml-delivery-{stack.stack}"


def test_pipeline_waits_for_its_role_policies_before_it_is_created(stack: OfflineRun) -> None:
    """CodePipeline starts an execution on create; it must not start without its permissions."""
    pipeline = stack.one(PIPELINE, "delivery-pipeline")
    needed = {
        stack.one("aws:iam/rolePolicy:RolePolicy", f"delivery-{r}-role-policy").urn
        for r in ("pipeline", "build", "release", "evaluate")
    }
    assert needed <= set(pipeline.dependencies)


@pytest.mark.parametrize("role", ["build", "release", "evaluate"])
def test_build_projects_are_valid_for_the_codebuild_api(stack: OfflineRun, role: str) -> None:
    inputs = project(stack, role)
    environment = inputs["environment"]
    logs = inputs["logsConfig"]
    params = {
        "name": inputs["name"],
        "source": inputs["source"],
        "artifacts": inputs["artifacts"],
        "environment": {
            "type": environment["type"],
            "image": environment["image"],
            "computeType": environment["computeType"],
            "privilegedMode": environment["privilegedMode"],
            "imagePullCredentialsType": environment["imagePullCredentialsType"],
            "environmentVariables": environment["environmentVariables"],
        },
        "serviceRole": inputs["serviceRole"],
        "timeoutInMinutes": inputs["buildTimeout"],
        "queuedTimeoutInMinutes": inputs["queuedTimeout"],
        "encryptionKey": inputs["encryptionKey"],
        "cache": inputs["cache"],
        "vpcConfig": inputs["vpcConfig"],
        "logsConfig": {"cloudWatchLogs": logs["cloudwatchLogs"], "s3Logs": logs["s3Logs"]},
    }
    shape = get_session().get_service_model("codebuild").operation_model("CreateProject").input_shape
    report = ParamValidator().validate(params, shape)
    assert not report.has_errors(), report.generate_report()
