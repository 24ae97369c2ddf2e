"""Who may do what in the pipeline: the CodePipeline, CodeBuild and EventBridge roles reach only this
stack's resources, and the triggers and notifications point where they should."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pulumi
import pytest

from contracts.bucket_layout import evaluation_report_keys
from infra.lib.iam import RESOURCE_STAR_ACTIONS
from tests.infra.plan_queries import allowed_actions, as_list, role_policy, statements
from tests.infra.test_pipeline import project_env
from tools.plan.offline import ACCOUNT_ID, OfflineRun, run_offline

PIPELINE_ROLES = ("delivery-pipeline-role", "delivery-build-role", "delivery-release-role", "delivery-triggers-role",
                  "delivery-evaluate-role")  # fmt: skip
RULE = "aws:cloudwatch/eventRule:EventRule"
TARGET = "aws:cloudwatch/eventTarget:EventTarget"


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def stack_identifiers(run: OfflineRun) -> set[str]:
    """Every name, id and ARN this stack's resources have or are referred to by, policies excluded."""
    found: set[str] = set()
    for resource in run.resources:
        if not resource.custom:
            continue
        found |= {resource.inputs.get("name") or f"{resource.name}-0a1b2c3", f"{resource.name}-id"}
        for key, value in resource.inputs.items():
            if key in ("policy", "assumeRolePolicy", "tags"):
                continue
            if key in ("family", "repositoryName", "bucket"):
                found.add(str(value))
            found |= {s for s in _strings(value) if s.startswith("arn:")}
    return found


def reaches_stack_resource(resource: str, identifiers: set[str]) -> bool:
    """An ARN in this account and region (S3 ARNs have neither) whose resource part names a stack resource."""
    if resource in identifiers:
        return True
    parts = resource.split(":", 5)
    if len(parts) < 6 or parts[0] != "arn" or parts[1] != "aws":
        return False
    service, region, account, rest = parts[2], parts[3], parts[4], parts[5]
    if service == "s3":
        return (region, account) == ("", "") and rest.split("/", 1)[0] in identifiers
    if (region, account) not in {("us-east-1", ACCOUNT_ID), ("", ACCOUNT_ID)}:
        return False
    if any(resource.startswith(arn + sep) for arn in identifiers if arn.startswith("arn:") for sep in "/:"):
        return True
    # An SSM parameter's ARN is parameter<its name>: the name's leading '/' is the separator.
    return any(re.search(rf"(^|[/:]){re.escape(i.lstrip('/'))}($|[/:])", rest) for i in identifiers if len(i) > 3)


@pytest.mark.parametrize("role", PIPELINE_ROLES)
def test_roles_reach_only_this_stacks_resources(stack: OfflineRun, role: str) -> None:
    identifiers = stack_identifiers(stack)
    for statement in statements(role_policy(stack, role)):
        assert statement["Effect"] == "Allow"
        for resource in as_list(statement["Resource"]):
            if resource == "*":
                assert set(statement["Action"]) <= set(RESOURCE_STAR_ACTIONS), statement
                continue
            if resource.endswith(":network-interface/*"):
                # New interfaces have no name yet: scoped instead by a subnet condition, or (CreateNetworkInterface)
                # by the stack's subnets and security group named in the same statement.
                subnets = (statement.get("Condition") or {}).get("ArnEquals", {}).get("ec2:Subnet") or [
                    r for r in as_list(statement["Resource"]) if ":subnet/" in r
                ]
                assert subnets and all(reaches_stack_resource(s, identifiers) for s in subnets), statement
                continue
            assert reaches_stack_resource(resource, identifiers), f"{role}: {resource} is not this stack's"


def test_the_reach_check_would_catch_a_foreign_resource(dev: OfflineRun) -> None:
    identifiers = stack_identifiers(dev)
    for foreign in (
        "arn:aws:s3:::someone-elses-bucket/*",
        "arn:aws:s3:::*",
        "arn:aws:ecr:us-east-1:999999999999:repository/registry-app-0a1b2c3",
        "arn:aws:codebuild:us-east-1:123456789012:project/*",
        "arn:aws:iam::123456789012:role/*",
    ):
        assert not reaches_stack_resource(foreign, identifiers), foreign
    assert reaches_stack_resource("arn:aws:s3:::buckets-models-0a1b2c3/releases/*", identifiers)


@pytest.mark.parametrize(
    ("role", "service", "source_arn"),
    [
        ("delivery-pipeline-role", "codepipeline.amazonaws.com", "codepipeline:us-east-1:{a}:ml-delivery-{s}"),
        ("delivery-build-role", "codebuild.amazonaws.com", "codebuild:us-east-1:{a}:project/ml-delivery-{s}-build"),
        ("delivery-release-role", "codebuild.amazonaws.com", "codebuild:us-east-1:{a}:project/ml-delivery-{s}-release"),
        ("delivery-triggers-role", "events.amazonaws.com", "events:us-east-1:{a}:rule/ml-delivery-{s}-start-*"),
    ],
)
def test_trust_policies_carry_confused_deputy_conditions(
    stack: OfflineRun, role: str, service: str, source_arn: str
) -> None:
    (trust,) = statements(json.loads(stack.one("aws:iam/role:Role", role).inputs["assumeRolePolicy"]))
    assert trust["Principal"] == {"Service": service}
    assert trust["Condition"] == {
        "StringEquals": {"aws:SourceAccount": ACCOUNT_ID},
        "ArnLike": {"aws:SourceArn": "arn:aws:" + source_arn.format(s=stack.stack, a=ACCOUNT_ID)},
    }


def test_trigger_role_may_only_start_this_pipeline(stack: OfflineRun) -> None:
    assert allowed_actions(role_policy(stack, "delivery-triggers-role")) == {
        "codepipeline:StartPipelineExecution": [
            f"arn:aws:codepipeline:us-east-1:123456789012:ml-delivery-{stack.stack}"
        ]
    }


def test_pipeline_role_deploys_both_services_and_passes_only_their_roles(stack: OfflineRun) -> None:
    policy = role_policy(stack, "delivery-pipeline-role")
    actions = allowed_actions(policy)
    ecs = "arn:aws:ecs:us-east-1:123456789012"
    assert sorted(actions["ecs:UpdateService"]) == sorted(
        f"{ecs}:service/{s}-cluster-0a1b2c3/{s}-service-0a1b2c3" for s in ("stage", "prod")
    )
    assert actions["codebuild:StartBuild"] == [
        f"arn:aws:codebuild:us-east-1:123456789012:project/ml-delivery-{stack.stack}-{p}"
        for p in ("build", "evaluate", "release")
    ]
    (pass_role,) = [s for s in statements(policy) if "iam:PassRole" in s["Action"]]
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}
    assert sorted(pass_role["Resource"]) == sorted(
        f"arn:aws:iam::123456789012:role/{s}-{r}-role-0a1b2c3" for s in ("stage", "prod") for r in ("task", "execution")
    )
    assert actions["sns:Publish"] == [stack.outputs["alertsTopicArn"]]
    bucket = stack.outputs["modelBucket"]
    model_reads = {r for a in ("s3:GetObject", "s3:GetObjectVersion") for r in actions[a] if bucket in r}
    assert model_reads == {f"arn:aws:s3:::{bucket}/model.zip"}
    assert not any(a.startswith(("s3:Delete", "ecs:Delete", "iam:Create")) for a in actions)


def test_build_role_pushes_only_to_its_own_repositories(stack: OfflineRun) -> None:
    actions = allowed_actions(role_policy(stack, "delivery-build-role"))
    repos = sorted(f"arn:aws:ecr:us-east-1:123456789012:repository/registry-{r}-0a1b2c3" for r in ("app", "jobs"))
    for action in ("ecr:PutImage", "ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload"):
        assert sorted(actions[action]) == repos
    assert actions["ecr:GetAuthorizationToken"] == ["*"]
    artifacts = stack.outputs["artifactBucket"]
    assert actions["s3:PutObject"] == [f"arn:aws:s3:::{artifacts}/*"], "the build writes only pipeline artifacts"
    assert actions["logs:PutLogEvents"] == [
        f"arn:aws:logs:us-east-1:123456789012:log-group:/ml-delivery/{stack.stack}/codebuild/build:log-stream:*"
    ]
    assert not any(a.startswith(("batch:", "ecs:", "iam:")) for a in actions)


@pytest.mark.parametrize("role", ["delivery-build-role", "delivery-release-role"])
def test_codebuild_network_interfaces_as_the_codebuild_vpc_docs_list_them(stack: OfflineRun, role: str) -> None:
    """The CodeBuild VPC doc's actions, with "*" only where EC2 has no resource types."""
    policy = role_policy(stack, role)
    actions = allowed_actions(policy)
    for describe in ("ec2:DescribeDhcpOptions", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets",
                     "ec2:DescribeSecurityGroups", "ec2:DescribeVpcs"):  # fmt: skip
        assert actions[describe] == ["*"]
    interfaces = "arn:aws:ec2:us-east-1:123456789012:network-interface/*"
    private = sorted(
        f"arn:aws:ec2:us-east-1:123456789012:subnet/{r.name}-id"
        for r in stack.of_type("aws:ec2/subnet:Subnet")
        if r.inputs["tags"]["tier"] == "private"
    )
    project = role.removesuffix("-role")
    create = sorted(actions["ec2:CreateNetworkInterface"])
    assert create == sorted(
        [interfaces, *private, f"arn:aws:ec2:us-east-1:123456789012:security-group/{project}-sg-id"]
    )
    (delete,) = [s for s in statements(policy) if s["Action"] == ["ec2:DeleteNetworkInterface"]]
    assert delete["Resource"] == [interfaces] and sorted(delete["Condition"]["ArnEquals"]["ec2:Subnet"]) == private
    (permission,) = [s for s in statements(policy) if s["Action"] == ["ec2:CreateNetworkInterfacePermission"]]
    assert permission["Resource"] == [interfaces]
    assert sorted(permission["Condition"]["ArnEquals"]["ec2:Subnet"]) == private
    assert permission["Condition"]["StringEquals"]["ec2:AuthorizedService"] == "codebuild.amazonaws.com"


def test_release_role_writes_only_the_release_keys_and_its_job_definitions(stack: OfflineRun) -> None:
    """Waits on infra/jobs/jobs.py for the Batch part (job definitions and passable roles)."""
    policy = role_policy(stack, "delivery-release-role")
    actions = allowed_actions(policy)
    bucket = f"arn:aws:s3:::{stack.outputs['modelBucket']}"
    model_writes = sorted(r for r in actions["s3:PutObject"] if r.startswith(bucket))
    assert model_writes == sorted(
        [f"{bucket}/releases/*", f"{bucket}/champion.json", f"{bucket}/alerts/sent/*", f"{bucket}/models/*/model.zip",
         f"{bucket}/ledger/*"]
    )  # fmt: skip
    # The ledger only with If-None-Match (write-once), and the approval evidence of this pipeline only.
    (ledger,) = [s for s in statements(policy) if s.get("Sid") == "AppendLedger"]
    assert as_list(ledger["Resource"]) == [f"{bucket}/ledger/*"]
    assert ledger["Condition"] == {"Null": {"s3:if-none-match": "false"}}
    pipeline = f"arn:aws:codepipeline:us-east-1:123456789012:ml-delivery-{stack.stack}"
    assert actions["codepipeline:ListActionExecutions"] == [pipeline]
    assert project_env(stack, "release")["PIPELINE_NAME"] == f"ml-delivery-{stack.stack}"
    assert {f"{bucket}/models/*", f"{bucket}/champion.json", f"{bucket}/releases/*"} <= set(actions["s3:GetObject"])
    assert [r for r in actions["s3:GetObjectVersion"] if r.startswith(bucket)] == [f"{bucket}/model.zip"]
    assert "ecs:UpdateService" not in actions  # ecr:PutImage: only to tag (test_release_role_records_...)
    definitions = stack.of_type("aws:batch/jobDefinition:JobDefinition")
    assert len(definitions) == 4
    expected = {
        f"arn:aws:batch:us-east-1:123456789012:job-definition/{d.inputs['name']}{suffix}"
        for d in definitions
        for suffix in ("", ":*")
    }
    assert set(actions["batch:RegisterJobDefinition"]) == expected
    assert actions["batch:DescribeJobDefinitions"] == ["*"]
    (pass_role,) = [s for s in statements(policy) if "iam:PassRole" in s["Action"] and s["Sid"] == "PassJobRoles"]
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "batch.amazonaws.com"}}
    job_roles = {
        f"arn:aws:iam::123456789012:role/{r.name}-0a1b2c3"
        for r in stack.of_type("aws:iam/role:Role")
        if r.name.startswith("jobs-")
    }
    assert pass_role["Resource"] and set(pass_role["Resource"]) <= job_roles


def test_evaluate_role_reads_champion_labels_and_prod_capture_and_writes_only_its_reports(stack: OfflineRun) -> None:
    policy = role_policy(stack, "delivery-evaluate-role")
    actions = allowed_actions(policy)
    models = f"arn:aws:s3:::{stack.outputs['modelBucket']}"
    capture = f"arn:aws:s3:::{stack.outputs['captureBucket']}"
    assert sorted(r for r in actions["s3:PutObject"] if not r.endswith("/*") or r.startswith(models)) == [
        f"{models}/reports/evaluation/*"
    ]
    assert set(actions["s3:GetObject"]) >= {
        f"{models}/champion.json", f"{models}/models/*", f"{models}/training-data/*", f"{capture}/capture/prod/*"
    }  # fmt: skip
    assert not any(r.startswith(capture) and "capture/stage" in r for r in actions["s3:GetObject"])
    (listing,) = [s for s in statements(policy) if s.get("Sid") == "ListProdCapture"]
    assert listing["Resource"] == [capture] or listing["Resource"] == capture
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["capture/prod/*"]}}
    for forbidden in ("ecs:UpdateService", "ecr:PutImage", "s3:DeleteObject", "codepipeline:PutApprovalResult"):
        assert forbidden not in actions


def test_approval_alert_links_this_executions_evaluation_report(stack: OfflineRun) -> None:
    """The alert carries what the approval shows: the report at the key the Evaluate action wrote."""
    _pattern, target = _rule(stack, "delivery-notifications-approval-waiting")
    template = json.loads(target["inputTransformer"]["inputTemplate"])
    report = (
        f"https://<region>.console.aws.amazon.com/s3/object/{stack.outputs['modelBucket']}?region=<region>"
        "&prefix=reports/evaluation/<execution>/report.html"
    )
    assert report in template
    # The same key the job writes for an execution id (contracts.bucket_layout.evaluation_report_keys).
    assert evaluation_report_keys("<execution>")[1] == "reports/evaluation/<execution>/report.html"


def test_release_without_job_definitions_grants_no_batch_or_pass_role() -> None:
    """While infra/jobs/jobs.py declares nothing, the pipeline still builds: no names, no Batch grants."""
    from infra import stack as stack_module
    from infra.pipeline.pipeline import DeliveryPipeline, ReleasedJobs

    def program() -> None:
        settings = stack_module.load_settings()
        platform = stack_module.build_platform(settings, stack_module.Account.lookup())
        stage, prod = stack_module.build_service(platform, "stage"), stack_module.build_service(platform, "prod")
        pipeline = DeliveryPipeline("delivery", stack_module.pipeline_args(platform, stage, prod, ReleasedJobs()))
        pulumi.export("pipelineName", pipeline.pipeline_name)

    run = run_offline("dev", program=program)
    assert run.outputs["pipelineName"] == "ml-delivery-dev"
    env = {
        v["name"]: v["value"]
        for v in run.one("aws:codebuild/project:Project", "delivery-release-project").inputs["environment"][
            "environmentVariables"
        ]
    }
    assert env["JOB_DEFINITION_NAMES"] == ""
    actions = allowed_actions(role_policy(run, "delivery-release-role"))
    assert not any(a.startswith("batch:") or a == "iam:PassRole" for a in actions)


# --- triggers and notifications ----------------------------------------------------------------------
def _rule(run: OfflineRun, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    rule = run.one(RULE, name)
    (target,) = [t for t in run.of_type(TARGET) if t.parent == rule.urn]
    return json.loads(rule.inputs["eventPattern"]), target.inputs


def test_start_rules_target_the_pipeline_with_the_trigger_role(stack: OfflineRun) -> None:
    role = "arn:aws:iam::123456789012:role/delivery-triggers-role-0a1b2c3"
    pipeline = f"arn:aws:codepipeline:us-east-1:123456789012:ml-delivery-{stack.stack}"
    upload, upload_target = _rule(stack, "delivery-triggers-model-upload")
    assert upload == {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": [stack.outputs["modelBucket"]]}, "object": {"key": ["model.zip"]}},
    }
    push, push_target = _rule(stack, "delivery-triggers-code-push")
    assert push["source"] == ["aws.codecommit"] and push["detail-type"] == ["CodeCommit Repository State Change"]
    assert push["resources"] == [f"arn:aws:codecommit:us-east-1:123456789012:ml-delivery-{stack.stack}"]
    assert push["detail"] == {
        "event": ["referenceCreated", "referenceUpdated"],
        "referenceType": ["branch"],
        "referenceName": ["main"],
    }
    for target in (upload_target, push_target):
        assert (target["arn"], target["roleArn"]) == (pipeline, role)
    names = {
        stack.one(RULE, n).inputs["name"] for n in ("delivery-triggers-model-upload", "delivery-triggers-code-push")
    }
    assert all(n.startswith(f"ml-delivery-{stack.stack}-start-") for n in names), "the trust policy's SourceArn"


@pytest.mark.parametrize(
    ("rule", "check"),
    [
        (
            "delivery-notifications-execution-finished",
            lambda p: (
                p["detail-type"] == ["CodePipeline Pipeline Execution State Change"]
                and p["detail"]["state"] == ["FAILED", "SUCCEEDED"]
            ),
        ),
        (
            "delivery-notifications-approval-waiting",
            lambda p: (
                p["detail-type"] == ["CodePipeline Action Execution State Change"]
                and p["detail"]["type"] == {"category": ["Approval"]}
                and p["detail"]["state"] == ["STARTED"]
            ),
        ),
    ],
)
def test_pipeline_events_reach_the_alerts_topic_as_sentences(
    stack: OfflineRun, rule: str, check: Callable[[dict[str, Any]], bool]
) -> None:
    pattern, target = _rule(stack, rule)
    assert pattern["source"] == ["aws.codepipeline"] and pattern["detail"]["pipeline"] == [f"ml-delivery-{stack.stack}"]
    assert check(pattern)
    assert target["arn"] == stack.outputs["alertsTopicArn"] and "roleArn" not in target
    template = json.loads(target["inputTransformer"]["inputTemplate"])
    assert template.startswith("Pipeline <pipeline> execution <execution> ") and "Where to look: https://" in template
    assert target["inputTransformer"]["inputPaths"]["execution"] == "$.detail.execution-id"


def test_release_role_records_the_deployed_image_and_tags_only_its_repositories(stack: OfflineRun) -> None:
    """The Release step writes both deployed-image parameters (SecureString via SSM) and the keep/release tags."""
    from release.contracts import deployed_image_parameter

    policy = role_policy(stack, "delivery-release-role")
    actions = allowed_actions(policy)
    parameter = "arn:aws:ssm:us-east-1:123456789012:parameter"
    expected = sorted(f"{parameter}{deployed_image_parameter(stack.stack, s)}" for s in ("stage", "prod"))
    assert sorted(actions["ssm:PutParameter"]) == expected == sorted(actions["ssm:GetParameter"])
    (encrypt,) = [s for s in statements(policy) if "kms:Encrypt" in s["Action"]]
    assert encrypt["Condition"] == {"StringEquals": {"kms:ViaService": "ssm.us-east-1.amazonaws.com"}}
    (key,) = encrypt["Resource"]
    assert key.startswith("arn:aws:kms:us-east-1:123456789012:key/")
    repositories = sorted(
        f"arn:aws:ecr:us-east-1:123456789012:repository/{r.name}-0a1b2c3"
        for r in stack.of_type("aws:ecr/repository:Repository")
    )
    assert len(repositories) == 2
    assert sorted(actions["ecr:PutImage"]) == repositories == sorted(actions["ecr:BatchGetImage"])
    env = {v["name"]: v["value"] for v in stack.one("aws:codebuild/project:Project", "delivery-release-project")
           .inputs["environment"]["environmentVariables"]}  # fmt: skip
    assert env["STACK_NAME"] == stack.stack and env["PARAMETER_KEY_ARN"] == key
