"""The delivery pipeline: sources, CodeBuild in the VPC, ECS stage, approval, ECS prod, release record.

Interface used by stack.py (keep it): ``DeliveryPipeline(name, DeliveryPipelineArgs)`` with
``pipeline_name``, ``console_url`` and ``clone_url`` outputs.

One CodePipeline V2 pipeline, stages in this order (docs/pipeline.md has the walkthrough):

``Source`` (code + model) -> ``Build`` (test, verify, build and push both images) -> ``DeployStage``
(ECS) -> ``Approval`` (manual, notifies the alerts topic) -> ``DeployProd`` (ECS) -> ``Release``
(release record, champion pointer, Batch job definition revisions).

The parts live in their own components: :mod:`infra.pipeline_sources`, :mod:`infra.pipeline_build`,
:mod:`infra.pipeline_triggers`, :mod:`infra.pipeline_notifications`. This module wires them and owns
the pipeline's service role.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra import iam
from infra.jobs import BatchJobs
from infra.model_service import ModelService
from infra.pipeline_build import BuildProject, BuildProjectArgs, EgressPort
from infra.pipeline_notifications import PipelineNotifications, PipelineNotificationsArgs
from infra.pipeline_sources import CODE_ARTIFACT, MODEL_ARTIFACT, CodeSource, CodeSourceArgs, model_source_action
from infra.pipeline_triggers import PipelineTriggers, PipelineTriggersArgs
from infra.stack_types import Platform

# Contract with the buildspecs (buildspec.yml, release/buildspec.yml).
IMAGE_DEFINITIONS = "ImageDefinitions"
BUILD_RECORD = "BuildRecord"
BUILD_NAMESPACE = "BuildVariables"
STAGE_ORDER = ("Source", "Build", "DeployStage", "Approval", "DeployProd", "Release")

# CodeBuild User Guide, "Build caching in AWS CodeBuild": local Docker layer cache for the privileged build.
BUILD_CACHE_MODES = ("LOCAL_DOCKER_LAYER_CACHE", "LOCAL_SOURCE_CACHE")
# What the build pushes: ECR User Guide, "Pushing a Docker image" (IAM permissions), plus DescribeImages
# for `python -m release image-digest`.
ECR_PUSH_ACTIONS = (
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:CompleteLayerUpload",
    "ecr:DescribeImages",
    "ecr:GetDownloadUrlForLayer",
    "ecr:InitiateLayerUpload",
    "ecr:PutImage",
    "ecr:UploadLayerPart",
)
# CodePipeline User Guide, "Amazon Elastic Container Service deploy action reference", service role
# permissions. ecs:DescribeTaskDefinition has no resource types; RegisterTaskDefinition is scoped to the
# two services' task definition families (Service Authorization Reference, Amazon ECS).
ECS_DEPLOY_ACTIONS = ("ecs:DescribeServices", "ecs:UpdateService")


def console_url(region: str, pipeline_name: str) -> str:
    return (
        f"https://{region}.console.aws.amazon.com/codesuite/codepipeline/pipelines/{pipeline_name}/view?region={region}"
    )


@dataclass(frozen=True)
class DeliveryPipelineArgs:
    platform: Platform
    stage: ModelService
    prod: ModelService
    jobs: BatchJobs


class DeliveryPipeline(pulumi.ComponentResource):
    def __init__(self, name: str, args: DeliveryPipelineArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ml-delivery:pipeline:DeliveryPipeline", name, None, opts)
        platform = args.platform
        settings, account = platform.settings, platform.account
        stack = pulumi.get_stack()
        child = pulumi.ResourceOptions(parent=self)
        self._args = args
        self.name_prefix = f"ml-delivery-{stack}"
        pipeline_name = self.name_prefix
        pipeline_arn = f"arn:{account.partition}:codepipeline:{account.region}:{account.account_id}:{pipeline_name}"

        self.code = CodeSource(f"{name}-code", CodeSourceArgs(settings=settings), opts=child)
        self.build = BuildProject(f"{name}-build", self._build_args(), opts=child)
        self.release = BuildProject(f"{name}-release", self._release_args(), opts=child)
        self.role, role_policy = iam.role_with_policy(
            f"{name}-pipeline-role",
            service="codepipeline.amazonaws.com",
            account_id=account.account_id,
            source_arn=pipeline_arn,
            statements=self._pipeline_statements(),
            parent=self,
            description=f"CodePipeline {pipeline_name}: sources, builds, ECS deploys, approval notice",
        )
        self.pipeline = aws.codepipeline.Pipeline(
            f"{name}-pipeline",
            aws.codepipeline.PipelineArgs(
                name=pipeline_name,
                pipeline_type="V2",
                # A newer commit or model replaces one still waiting (e.g. at the approval).
                execution_mode="SUPERSEDED",
                role_arn=self.role.arn,
                artifact_stores=[
                    aws.codepipeline.PipelineArtifactStoreArgs(
                        type="S3",
                        location=platform.buckets.artifacts.name,
                        encryption_key=aws.codepipeline.PipelineArtifactStoreEncryptionKeyArgs(
                            type="KMS", id=platform.data_key.arn
                        ),
                    )
                ],
                stages=self._stages(),
                triggers=self.code.triggers() or None,
            ),
            # CodePipeline starts a first execution on create; the role must already have its policy,
            # and both projects theirs.
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[role_policy, self.build.role_policy, self.release.role_policy]
            ),
        )
        self.triggers = PipelineTriggers(
            f"{name}-triggers",
            PipelineTriggersArgs(
                pipeline_arn=self.pipeline.arn,
                rule_prefix=f"{self.name_prefix}-start",
                model_bucket_name=platform.buckets.models.name,
                model_key=settings.model_key,
                repository_arn=self.code.repository_arn,
                branch=settings.branch,
                account_id=account.account_id,
                region=account.region,
                partition=account.partition,
            ),
            opts=child,
        )
        self.notifications = PipelineNotifications(
            f"{name}-notifications",
            PipelineNotificationsArgs(
                pipeline_name=pipeline_name,
                rule_prefix=f"{self.name_prefix}-notify",
                topic_arn=platform.alerts.topic_arn,
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.pipeline]),
        )

        self.pipeline_name: pulumi.Output[str] = self.pipeline.name
        self.console_url: pulumi.Output[str] = self.pipeline.name.apply(lambda n: console_url(account.region, n))
        self.clone_url: pulumi.Output[str] = self.code.clone_url
        self.register_outputs(
            {"pipelineName": self.pipeline_name, "consoleUrl": self.console_url, "cloneUrl": self.clone_url}
        )

    # --- build projects ----------------------------------------------------------------------------
    def _project_args(self, role: str, **overrides: object) -> BuildProjectArgs:
        platform = self._args.platform
        settings, account = platform.settings, platform.account
        base: dict[str, object] = {
            "project_name": f"{self.name_prefix}-{role}",
            "vpc_id": platform.network.vpc_id,
            "private_subnet_ids": platform.network.private_subnet_ids,
            "artifact_bucket_arn": platform.buckets.artifacts.arn,
            "data_key_arn": platform.data_key.arn,
            "data_key_grant": platform.data_key.grant(),
            "log_group_name": f"/ml-delivery/{pulumi.get_stack()}/codebuild/{role}",
            "log_retention_days": settings.log_retention_days,
            "account_id": account.account_id,
            "region": account.region,
            "partition": account.partition,
        }
        return BuildProjectArgs(**{**base, **overrides})  # type: ignore[arg-type]

    def _build_args(self) -> BuildProjectArgs:
        platform = self._args.platform
        settings, registry = platform.settings, platform.registry
        return self._project_args(
            "build",
            description="tests, model verification, app and jobs images (privileged for docker)",
            buildspec="buildspec.yml",
            privileged=True,
            compute_type=settings.build_compute_type,
            timeout_minutes=settings.build_timeout_minutes,
            cache_modes=BUILD_CACHE_MODES,
            environment={
                "APP_REPOSITORY_URI": registry.app.repository_url,
                "JOBS_REPOSITORY_URI": registry.jobs.repository_url,
                "CONTAINER_NAME": settings.container_name,
                "MODEL_KEY": settings.model_key,
                "MODEL_BUCKET": platform.buckets.models.name,
                "AWS_ACCOUNT_ID": platform.account.account_id,
                "AWS_REGION": platform.account.region,
                # BuildKit cache tag and base image (issue #16 items 6, 8: infra/registry.py).
                **registry.build_environment(),
            },
            statements=[
                # ECR User Guide, "Private registry authentication": GetAuthorizationToken has no
                # resource-level permissions, so it needs "*".
                iam.allow(["ecr:GetAuthorizationToken"], ["*"], sid="EcrLogin"),
                iam.allow(list(ECR_PUSH_ACTIONS), [registry.app.arn, registry.jobs.arn], sid="PushOwnImages"),
                *registry.build_statements(),
            ],
            # apt (postgresql for the test suite) uses http mirrors; everything else is HTTPS.
            egress=(EgressPort(443, "HTTPS: AWS APIs, ECR, ECR Public, PyPI"), EgressPort(80, "HTTP: apt mirrors")),
        )

    def _release_args(self) -> BuildProjectArgs:
        platform = self._args.platform
        settings, jobs = platform.settings, self._args.jobs
        definitions = [jobs.job_definitions[k] for k in sorted(jobs.job_definitions)]
        names = pulumi.Output.all(*[d.name for d in definitions]).apply(",".join)
        return self._project_args(
            "release",
            description="release record, champion pointer, Batch job definition revisions",
            buildspec="release/buildspec.yml",
            privileged=False,
            compute_type="BUILD_GENERAL1_SMALL",
            timeout_minutes=20,
            environment={
                "MODEL_BUCKET": platform.buckets.models.name,
                "MODEL_KEY": settings.model_key,
                "ALERTS_TOPIC_ARN": platform.alerts.topic_arn,
                "JOB_DEFINITION_NAMES": names,
                # <group>/<name> of the job schedules the release enables (release/schedules.py).
                "SCHEDULE_NAMES": pulumi.Output.all(*_schedules(jobs).refs).apply(",".join),
                # `python -m release deployed-image`: release.contracts.deployed_image_parameter(STACK_NAME, ...)
                # as a SecureString on the stack key, like every parameter of the stack.
                "STACK_NAME": pulumi.get_stack(),
                "PARAMETER_KEY_ARN": platform.data_key.arn,
            },
            statements=self._release_statements(),
            egress=(EgressPort(443, "HTTPS: AWS APIs, PyPI"),),
        )

    def _release_statements(self) -> list[iam.Statement]:
        platform, jobs = self._args.platform, self._args.jobs
        settings = platform.settings
        models = platform.buckets.models.arn

        def objects(*keys: str) -> list[pulumi.Output[str]]:
            return [pulumi.Output.concat(models, "/", key) for key in keys]

        statements = [
            iam.allow(["s3:GetObject"], objects("models/*", "champion.json", "releases/*", settings.model_key),
                      sid="ReadReleaseInputs"),
            # The build record names the model key's S3 version; reading a version is its own action.
            iam.allow(["s3:GetObjectVersion"], objects(settings.model_key), sid="ReadReleasedModelVersion"),
            iam.allow(["s3:PutObject"], objects("releases/*", "champion.json"), sid="WriteReleaseRecord"),
            # A hand-uploaded model.zip has no archived copy yet; the release writes it (never replaces it).
            iam.allow(["s3:PutObject"], objects("models/*/model.zip"), sid="ArchiveReleasedPackage"),
            # The release-failed alert's dedup marker (alerting.S3DedupStore, prefix alerts/sent/).
            iam.allow(["s3:GetObject", "s3:PutObject"], objects("alerts/sent/*"), sid="AlertDedupMarkers"),
            # S3 API Reference, GetObject: without s3:ListBucket a missing key answers 403, not 404, and the
            # first-ever alert (no marker yet) could never be sent.
            iam.allow(["s3:ListBucket"], [models], sid="MissingKeysAnswer404"),
            platform.alerts.publish_grant(),
            # What the pipeline deployed, for Pulumi (release/deployed_image.py): exactly the two parameters.
            iam.allow(["ssm:GetParameter", "ssm:PutParameter"],
                      [s.deployed_image_parameter.arn for s in (self._args.stage, self._args.prod)],
                      sid="RecordDeployedImages"),
            # PutParameter of a SecureString encrypts with the key through SSM (Systems Manager User Guide,
            # "How AWS Systems Manager Parameter Store uses AWS KMS"); only through SSM.
            iam.allow(["kms:Encrypt", "kms:GenerateDataKey"], [platform.data_key.arn], sid="EncryptDeployedImages",
                      Condition={"StringEquals": {"kms:ViaService": f"ssm.{platform.account.region}.amazonaws.com"}}),
            # keep-*/release-* tags on the promoted images (release/image_tags.py: BatchGetImage + PutImage).
            iam.allow(["ecr:BatchGetImage", "ecr:PutImage"], [platform.registry.app.arn, platform.registry.jobs.arn],
                      sid="TagPromotedImages"),
        ]  # fmt: skip
        if not jobs.job_definitions:
            return statements
        definitions = [jobs.job_definitions[k] for k in sorted(jobs.job_definitions)]
        revisions = [arn for d in definitions for arn in (d.arn_prefix, d.arn_prefix.apply(lambda p: f"{p}:*"))]
        statements += [
            # Service Authorization Reference, AWS Batch: DescribeJobDefinitions has no resource types.
            iam.allow(["batch:DescribeJobDefinitions"], ["*"], sid="DescribeJobDefinitions"),
            # New revisions copy the infra's tags, and tagging on create needs batch:TagResource.
            iam.allow(["batch:RegisterJobDefinition", "batch:TagResource"], revisions, sid="RegisterJobRevisions"),
        ]
        if jobs.passable_role_arns:
            # IAM User Guide, "Granting a user permissions to pass a role to an AWS service".
            statements.append(
                iam.allow(["iam:PassRole"], list(jobs.passable_role_arns), sid="PassJobRoles",
                          Condition={"StringEquals": {"iam:PassedToService": "batch.amazonaws.com"}})
            )  # fmt: skip
        schedules = _schedules(jobs)
        if schedules.arns:
            # The release enables the schedules pulumi up created DISABLED (release/schedules.py). UpdateSchedule
            # names the schedule's execution role again, which needs iam:PassRole on it (EventBridge Scheduler
            # User Guide, "Setting up the execution role"; Service Authorization Reference, EventBridge
            # Scheduler: UpdateSchedule's dependent action iam:PassRole).
            statements += [
                iam.allow(["scheduler:GetSchedule", "scheduler:UpdateSchedule"], schedules.arns,
                          sid="EnableJobSchedules"),
                iam.allow(["iam:PassRole"], schedules.role_arns, sid="PassScheduleRoles",
                          Condition={"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}}),
            ]  # fmt: skip
        return statements

    # --- the pipeline ------------------------------------------------------------------------------
    def _pipeline_statements(self) -> list[iam.Statement]:
        platform = self._args.platform
        account, buckets = platform.account, platform.buckets
        ecs = f"arn:{account.partition}:ecs:{account.region}:{account.account_id}"
        services = (self._args.stage, self._args.prod)
        service_arns = [pulumi.Output.concat(ecs, ":service/", s.cluster_name, "/", s.service_name) for s in services]
        task_arns = [pulumi.Output.concat(ecs, ":task/", s.cluster_name, "/*") for s in services]
        cluster_arns = [pulumi.Output.concat(ecs, ":cluster/", s.cluster_name) for s in services]
        families = [pulumi.Output.concat(ecs, ":task-definition/", s.task_definition.family, ":*") for s in services]
        passable = [arn for s in services for arn in (s.task_role.arn, s.execution_role.arn)]
        model_object = pulumi.Output.concat(buckets.models.arn, "/", platform.settings.model_key)
        return [
            iam.allow(["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"],
                      [pulumi.Output.concat(buckets.artifacts.arn, "/*")], sid="PipelineArtifacts"),
            iam.allow(["s3:GetBucketAcl", "s3:GetBucketLocation", "s3:GetBucketVersioning"],
                      [buckets.artifacts.arn, buckets.models.arn], sid="PipelineBuckets"),
            # CodePipeline User Guide, "Amazon S3 source action reference", service role permissions.
            iam.allow(["s3:GetObject", "s3:GetObjectVersion"], [model_object], sid="ReadModelSource"),
            *self.code.pipeline_statements(buckets.artifacts.arn),
            iam.allow(["codebuild:BatchGetBuilds", "codebuild:StartBuild"], [self.build.arn, self.release.arn],
                      sid="RunBuildProjects"),
            iam.allow(list(ECS_DEPLOY_ACTIONS), service_arns, sid="DeployServices"),
            iam.allow(["ecs:DescribeTasks"], task_arns, sid="DescribeServiceTasks"),
            # Service Authorization Reference, Amazon ECS: a ListTasks of a whole cluster (what the ECS deploy
            # action does) is authorized against "*"; the ecs:cluster condition keeps it to our two clusters.
            iam.allow(["ecs:ListTasks"], ["*"], sid="ListServiceTasks",
                      Condition={"ArnEquals": {"ecs:cluster": cluster_arns}}),
            iam.allow(["ecs:TagResource"], families, sid="TagTaskDefinitions"),
            # Service Authorization Reference, Amazon ECS: DescribeTaskDefinition has no resource types.
            iam.allow(["ecs:DescribeTaskDefinition"], ["*"], sid="DescribeTaskDefinitions"),
            iam.allow(["ecs:RegisterTaskDefinition"], families, sid="RegisterServiceTaskDefinitions"),
            iam.allow(["iam:PassRole"], passable, sid="PassServiceRoles",
                      Condition={"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}),
            platform.alerts.publish_grant(),
            platform.data_key.grant(),
        ]  # fmt: skip

    def _stages(self) -> list[aws.codepipeline.PipelineStageArgs]:
        args = self._args
        platform = args.platform
        action = aws.codepipeline.PipelineStageActionArgs
        stage_url = args.stage.url
        approval_note = pulumi.Output.concat(
            f"Stage runs git #{{{BUILD_NAMESPACE}.GIT_SHA}} with model version #{{{BUILD_NAMESPACE}.MODEL_VERSION}}. ",
            "Check ",
            stage_url,
            " (health, a few predictions, the stage alarms) before approving prod.",
        )
        return [
            aws.codepipeline.PipelineStageArgs(
                name="Source",
                actions=[
                    self.code.action(),
                    model_source_action(platform.buckets.models.name, platform.settings.model_key),
                ],
            ),
            aws.codepipeline.PipelineStageArgs(
                name="Build",
                actions=[
                    action(
                        name="BuildAndPush",
                        category="Build",
                        owner="AWS",
                        provider="CodeBuild",
                        version="1",
                        namespace=BUILD_NAMESPACE,
                        input_artifacts=[CODE_ARTIFACT, MODEL_ARTIFACT],
                        output_artifacts=[IMAGE_DEFINITIONS, BUILD_RECORD],
                        configuration={
                            "ProjectName": self.build.name,
                            "PrimarySource": CODE_ARTIFACT,
                            "EnvironmentVariables": _environment_json(
                                {
                                    "GIT_SHA": f"#{{{CODE_ARTIFACT}.CommitId}}",
                                    "MODEL_S3_VERSION_ID": f"#{{{MODEL_ARTIFACT}.VersionId}}",
                                }
                            ),
                        },
                    )
                ],
            ),
            self._deploy_stage("DeployStage", args.stage),
            aws.codepipeline.PipelineStageArgs(
                name="Approval",
                actions=[
                    action(
                        name="ApproveProd",
                        category="Approval",
                        owner="AWS",
                        provider="Manual",
                        version="1",
                        configuration={
                            "NotificationArn": platform.alerts.topic_arn,
                            "CustomData": approval_note,
                            "ExternalEntityLink": stage_url,
                        },
                    )
                ],
            ),
            self._deploy_stage("DeployProd", args.prod),
            aws.codepipeline.PipelineStageArgs(
                name="Release",
                actions=[
                    action(
                        name="RecordRelease",
                        category="Build",
                        owner="AWS",
                        provider="CodeBuild",
                        version="1",
                        input_artifacts=[CODE_ARTIFACT, BUILD_RECORD],
                        configuration={
                            "ProjectName": self.release.name,
                            "PrimarySource": CODE_ARTIFACT,
                            "EnvironmentVariables": _environment_json(
                                {"PIPELINE_EXECUTION_ID": "#{codepipeline.PipelineExecutionId}"}
                            ),
                        },
                    )
                ],
            ),
        ]

    @staticmethod
    def _deploy_stage(stage_name: str, service: ModelService) -> aws.codepipeline.PipelineStageArgs:
        """CodePipeline User Guide, "Amazon Elastic Container Service deploy action reference"."""
        return aws.codepipeline.PipelineStageArgs(
            name=stage_name,
            actions=[
                aws.codepipeline.PipelineStageActionArgs(
                    name=f"{stage_name}Service",
                    category="Deploy",
                    owner="AWS",
                    provider="ECS",
                    version="1",
                    input_artifacts=[IMAGE_DEFINITIONS],
                    configuration={
                        "ClusterName": service.cluster_name,
                        "ServiceName": service.service_name,
                        "FileName": "imagedefinitions.json",
                    },
                )
            ],
        )


def _environment_json(variables: dict[str, str]) -> str:
    """The CodeBuild action's ``EnvironmentVariables`` configuration: a JSON list of name/value/type."""
    return json.dumps([{"name": k, "value": v, "type": "PLAINTEXT"} for k, v in variables.items()])


@dataclass(frozen=True)
class _ScheduleParts:
    refs: list[pulumi.Output[str]]
    arns: list[pulumi.Output[str]]
    role_arns: list[pulumi.Output[str]]


def _schedules(jobs: Any) -> _ScheduleParts:
    """The jobs' schedules as the release needs them; none while a jobs stand-in (tests) declares none."""
    schedules = getattr(jobs, "schedules", None)
    if schedules is None:
        return _ScheduleParts([], [], [])
    return _ScheduleParts(list(schedules.refs), list(schedules.arns), list(schedules.role_arns))
