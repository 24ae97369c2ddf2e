"""The delivery pipeline: sources, CodeBuild in the VPC, ECS stage, approval, ECS prod, release record.

Interface used by stack.py (keep it): ``DeliveryPipeline(name, DeliveryPipelineArgs)`` with
``pipeline_name``, ``console_url`` and ``clone_url`` outputs.

One CodePipeline V2 pipeline, stages in this order (docs/pipeline.md has the walkthrough):

``Source`` (code + model) -> ``Build`` (test, verify, build and push both images) -> ``DeployStage``
(ECS) -> ``Evaluate`` (candidate vs champion, prod replay, stage smoke; fails on the ``evaluation*``
thresholds) -> ``Approval`` (manual, shows the verdict and links the report, times out) -> ``DeployProd``
(ECS) -> ``Release`` (release record, ledger entry, champion pointer, Batch job definition revisions).

The parts live in their own components: :mod:`infra.pipeline.pipeline_sources`, :mod:`infra.pipeline.pipeline_build`,
:mod:`infra.pipeline.pipeline_triggers`, :mod:`infra.pipeline.pipeline_notifications`. This module wires them and owns
the pipeline's service role.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from contracts.bucket_layout import (
    CHAMPION_KEY,
    DEFAULT_MODEL_KEY,
    EVALUATION_REPORTS_PREFIX,
    LEDGER_PREFIX,
    MODELS_PREFIX,
    PROD_CAPTURE_PREFIX,
    RELEASES_PREFIX,
)
from contracts.environment import EvaluateEnvironment
from infra.jobs.jobs_spec import gate_environment
from infra.lib import iam
from infra.lib.stack_types import Account
from infra.pipeline.pipeline_build import BuildProject, BuildProjectArgs, EgressPort
from infra.pipeline.pipeline_notifications import PipelineNotifications, PipelineNotificationsArgs
from infra.pipeline.pipeline_sources import (
    CODE_ARTIFACT,
    MODEL_ARTIFACT,
    CodeSource,
    CodeSourceArgs,
    SourceProvider,
    model_source_action,
)
from infra.pipeline.pipeline_triggers import PipelineTriggers, PipelineTriggersArgs
from jobs_common.evaluation_contract import APPROVAL_STAGE, EVALUATE_NAMESPACE, EVALUATE_STAGE, REPORT_URL, SUMMARY

# Contract with the buildspecs (buildspec.yml, release/buildspec.yml).
IMAGE_DEFINITIONS = "ImageDefinitions"
BUILD_RECORD = "BuildRecord"
BUILD_NAMESPACE = "BuildVariables"
STAGE_ORDER = ("Source", "Build", "DeployStage", EVALUATE_STAGE, APPROVAL_STAGE, "DeployProd", "Release")
# Where prod's app writes its capture (infra/service/model_service.py CAPTURE_S3_URI: capture/<service>).

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
class DeployTarget:
    """One ECS service the pipeline deploys: what the deploy action, the role's grants and the approval name."""

    cluster_name: pulumi.Input[str]
    service_name: pulumi.Input[str]
    task_family: pulumi.Input[str]
    task_role_arn: pulumi.Input[str]
    execution_role_arn: pulumi.Input[str]
    url: pulumi.Input[str]
    # Where the Release step records the image it deployed (release/deployed_image.py), read by Pulumi.
    deployed_image_parameter_arn: pulumi.Input[str]
    # Lets a security group reach the service's load balancer (the ModelService's own rule; Evaluate's smoke test).
    allow_client: Callable[[str, pulumi.Input[str], str], None]


@dataclass(frozen=True)
class ReleasedJobs:
    """What the release step registers and enables: the jobs' definitions (sorted by job), the roles they pass
    and their schedules. Empty while the stack declares no jobs; the release then gets no Batch grants."""

    definition_names: Sequence[pulumi.Output[str]] = ()
    definition_arn_prefixes: Sequence[pulumi.Output[str]] = ()
    passable_role_arns: Sequence[pulumi.Input[str]] = ()
    schedule_refs: Sequence[pulumi.Output[str]] = ()  # <group>/<name>
    schedule_arns: Sequence[pulumi.Input[str]] = ()
    schedule_role_arns: Sequence[pulumi.Input[str]] = ()


@dataclass(frozen=True)
class PipelineConfig:
    """The stack's settings the pipeline uses, as plain values (``stack.pipeline_config`` builds it from the stack
    settings, under the same names): the pipeline component never sees the whole settings object."""

    # The code source: CodeCommit (repository_name, resolved per stack) or a CodeConnections repository.
    source_provider: SourceProvider
    repository_name: str
    branch: str
    connection_arn: str | None
    full_repository_id: str | None
    deletion_protection: bool
    # Whether stage's load balancer is internal (Evaluate's smoke test then runs in the VPC).
    internal_stage: bool
    # The build projects.
    log_retention_days: int
    build_compute_type: str
    build_timeout_minutes: int
    container_name: str
    # The model the pipeline releases, the labels Evaluate reads, the champion gate (GateConfig).
    model_key: str
    training_data_prefix: str
    gate_metric: str | None
    gate_tolerance: float
    gate_floor: float | None
    # Evaluate's thresholds (EvaluateEnvironment) and its attempt's upper bound; the approval's timeout.
    evaluation_min_agreement: float
    evaluation_max_score_psi: float
    evaluation_max_segment_shift: float
    evaluation_max_stage_difference: float
    evaluation_max_p99_latency_ms: int
    evaluation_replay_sample_size: int
    evaluation_replay_window_hours: int
    evaluation_smoke_requests: int
    evaluation_timeout_minutes: int
    approval_timeout_minutes: int


@dataclass(frozen=True)
class DeliveryPipelineArgs:
    """The pipeline's inputs by value (issue #15: no Platform, no reaching through the services or the jobs)."""

    config: PipelineConfig
    account: Account
    vpc_id: pulumi.Input[str]
    private_subnet_ids: Sequence[pulumi.Input[str]]
    artifact_bucket_name: pulumi.Input[str]
    artifact_bucket_arn: pulumi.Input[str]
    model_bucket_name: pulumi.Input[str]
    model_bucket_arn: pulumi.Input[str]
    capture_bucket_name: pulumi.Input[str]
    capture_bucket_arn: pulumi.Input[str]
    data_key_arn: pulumi.Input[str]
    data_key_grant: iam.Statement
    alerts_topic_arn: pulumi.Input[str]
    alerts_publish_grant: iam.Statement
    app_repository_url: pulumi.Input[str]
    app_repository_arn: pulumi.Input[str]
    jobs_repository_url: pulumi.Input[str]
    jobs_repository_arn: pulumi.Input[str]
    stage: DeployTarget
    prod: DeployTarget
    jobs: ReleasedJobs
    # The build's BuildKit registry cache and base image (infra/pipeline/registry.py), and the grants they need.
    build_environment: Mapping[str, pulumi.Input[str]]
    build_statements: Sequence[iam.Statement]


class DeliveryPipeline(pulumi.ComponentResource):
    def __init__(self, name: str, args: DeliveryPipelineArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ml-delivery:pipeline:DeliveryPipeline", name, None, opts)
        config, account = args.config, args.account
        stack = pulumi.get_stack()
        child = pulumi.ResourceOptions(parent=self)
        self._args = args
        self.name_prefix = f"ml-delivery-{stack}"
        pipeline_name = self.name_prefix
        pipeline_arn = f"arn:{account.partition}:codepipeline:{account.region}:{account.account_id}:{pipeline_name}"

        self._pipeline_arn = pipeline_arn
        code_args = CodeSourceArgs(
            provider=config.source_provider,
            branch=config.branch,
            repository_name=config.repository_name,
            deletion_protection=config.deletion_protection,
            connection_arn=config.connection_arn,
            full_repository_id=config.full_repository_id,
        )
        self.code = CodeSource(f"{name}-code", code_args, opts=child)
        self.build = BuildProject(f"{name}-build", self._build_args(), opts=child)
        self.release = BuildProject(f"{name}-release", self._release_args(), opts=child)
        self.evaluate = BuildProject(f"{name}-evaluate", self._evaluate_args(), opts=child)
        # Evaluate's smoke/latency test (c) calls the stage service from the private subnets. The stage ALB is
        # internal by default, so the call stays in the VPC and this rule is what lets it in (no CIDR needed).
        args.stage.allow_client(
            "evaluate", self.evaluate.security_group.id, "the pipeline's Evaluate project (smoke and latency test)"
        )
        if not args.config.internal_stage:
            pulumi.log.warn(
                "ml-delivery:stageInternetFacing is true: the Evaluate project reaches the stage ALB through the "
                "NAT gateways' public addresses, which ingressCidrs must list or its smoke test is refused "
                "(docs/pipeline.md, 'How Evaluate reaches stage')",
                resource=self,
            )
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
                        location=args.artifact_bucket_name,
                        encryption_key=aws.codepipeline.PipelineArtifactStoreEncryptionKeyArgs(
                            type="KMS", id=args.data_key_arn
                        ),
                    )
                ],
                stages=self._stages(),
                triggers=self.code.triggers() or None,
            ),
            # CodePipeline starts a first execution on create; the role must already have its policy,
            # and both projects theirs.
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[role_policy, self.build.role_policy, self.release.role_policy, self.evaluate.role_policy],
            ),
        )
        self.triggers = PipelineTriggers(
            f"{name}-triggers",
            PipelineTriggersArgs(
                pipeline_arn=self.pipeline.arn,
                rule_prefix=f"{self.name_prefix}-start",
                model_bucket_name=args.model_bucket_name,
                model_key=config.model_key,
                repository_arn=self.code.repository_arn,
                branch=config.branch,
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
                topic_arn=args.alerts_topic_arn,
                model_bucket_name=args.model_bucket_name,
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
        args = self._args
        config, account = args.config, args.account
        base: dict[str, object] = {
            "project_name": f"{self.name_prefix}-{role}",
            "vpc_id": args.vpc_id,
            "private_subnet_ids": args.private_subnet_ids,
            "artifact_bucket_arn": args.artifact_bucket_arn,
            "data_key_arn": args.data_key_arn,
            "data_key_grant": args.data_key_grant,
            "log_group_name": f"/ml-delivery/{pulumi.get_stack()}/codebuild/{role}",
            "log_retention_days": config.log_retention_days,
            "account_id": account.account_id,
            "region": account.region,
            "partition": account.partition,
        }
        return BuildProjectArgs(**{**base, **overrides})  # type: ignore[arg-type]

    def _build_args(self) -> BuildProjectArgs:
        args = self._args
        config = args.config
        return self._project_args(
            "build",
            description="tests, model verification, app and jobs images (privileged for docker)",
            buildspec="buildspec.yml",
            privileged=True,
            compute_type=config.build_compute_type,
            timeout_minutes=config.build_timeout_minutes,
            cache_modes=BUILD_CACHE_MODES,
            environment={
                "APP_REPOSITORY_URI": args.app_repository_url,
                "JOBS_REPOSITORY_URI": args.jobs_repository_url,
                "CONTAINER_NAME": config.container_name,
                "MODEL_KEY": config.model_key,
                "MODEL_BUCKET": args.model_bucket_name,
                # test-passed/<git sha>.json: the suite runs once per commit (release/test_record.py).
                "ARTIFACT_BUCKET": args.artifact_bucket_name,
                "AWS_ACCOUNT_ID": args.account.account_id,
                "AWS_REGION": args.account.region,
                # BuildKit cache tag and base image (issue #16 items 6, 8: infra/pipeline/registry.py).
                **args.build_environment,
            },
            statements=[
                # ECR User Guide, "Private registry authentication": GetAuthorizationToken has no
                # resource-level permissions, so it needs "*".
                iam.allow(["ecr:GetAuthorizationToken"], ["*"], sid="EcrLogin"),
                iam.allow(
                    list(ECR_PUSH_ACTIONS), [args.app_repository_arn, args.jobs_repository_arn], sid="PushOwnImages"
                ),
                *args.build_statements,
            ],
            # apt (postgresql for the test suite) uses http mirrors; everything else is HTTPS.
            egress=(EgressPort(443, "HTTPS: AWS APIs, ECR, ECR Public, PyPI"), EgressPort(80, "HTTP: apt mirrors")),
        )

    def _release_args(self) -> BuildProjectArgs:
        args = self._args
        config, jobs = args.config, args.jobs
        names = pulumi.Output.all(*jobs.definition_names).apply(",".join)
        return self._project_args(
            "release",
            description="release record, champion pointer, Batch job definition revisions",
            buildspec="release/buildspec.yml",
            privileged=False,
            compute_type="BUILD_GENERAL1_SMALL",
            timeout_minutes=20,
            environment={
                "MODEL_BUCKET": args.model_bucket_name,
                "MODEL_KEY": config.model_key,
                "ALERTS_TOPIC_ARN": args.alerts_topic_arn,
                "JOB_DEFINITION_NAMES": names,
                # <group>/<name> of the job schedules the release enables (release/schedules.py).
                "SCHEDULE_NAMES": pulumi.Output.all(*jobs.schedule_refs).apply(",".join),
                # release/ledger.py asks CodePipeline who approved this execution.
                "PIPELINE_NAME": self.name_prefix,
                # `python -m release deployed-image`: release.contracts.deployed_image_parameter(STACK_NAME, ...)
                # as a SecureString on the stack key, like every parameter of the stack.
                "STACK_NAME": pulumi.get_stack(),
                "PARAMETER_KEY_ARN": args.data_key_arn,
            },
            statements=self._release_statements(),
            egress=(EgressPort(443, "HTTPS: AWS APIs, PyPI"),),
        )

    def _evaluate_args(self) -> BuildProjectArgs:
        """In the VPC because (c) calls the stage service; not privileged: it runs Python, no docker."""
        args = self._args
        config, stage = args.config, args.stage
        return self._project_args(
            "evaluate",
            description="candidate vs champion on labelled data, prod capture replay, stage smoke and latency",
            buildspec="evaluation/buildspec.yml",
            privileged=False,
            compute_type="BUILD_GENERAL1_SMALL",
            timeout_minutes=config.evaluation_timeout_minutes,
            environment={
                "MODEL_BUCKET": args.model_bucket_name,
                "MODEL_KEY": config.model_key,
                "LABELLED_DATA_URI": pulumi.Output.concat(
                    "s3://", args.model_bucket_name, "/", config.training_data_prefix
                ),
                "CAPTURE_BUCKET": args.capture_bucket_name,
                "CAPTURE_PREFIX": PROD_CAPTURE_PREFIX,
                "STAGE_URL": stage.url,
                **gate_environment(config),
                **evaluation_environment(config),
            },
            statements=self._evaluate_statements(),
            # 443: AWS APIs and PyPI; 80: the stage ALB when it has no certificate (dev).
            egress=(EgressPort(443, "HTTPS: AWS APIs, PyPI, stage ALB"), EgressPort(80, "HTTP: stage ALB (dev)")),
        )

    def _evaluate_statements(self) -> list[iam.Statement]:
        args = self._args
        config, models, capture = args.config, args.model_bucket_arn, args.capture_bucket_arn

        def objects(bucket: pulumi.Input[str], *keys: str) -> list[pulumi.Output[str]]:
            return [pulumi.Output.concat(bucket, "/", key) for key in keys]

        return [
            iam.allow(["s3:GetObject"], objects(models, CHAMPION_KEY, f"{MODELS_PREFIX}*",
                                                f"{config.training_data_prefix}*"), sid="ReadChampionAndLabels"),
            iam.allow(["s3:PutObject"], objects(models, f"{EVALUATION_REPORTS_PREFIX}*"), sid="WriteEvaluationReport"),
            # S3 API Reference, GetObject: without s3:ListBucket a missing champion.json (the first model)
            # answers 403, not 404; the labelled data is read by listing its prefix.
            iam.allow(["s3:ListBucket"], [models], sid="ListModelBucket"),
            iam.allow(["s3:ListBucket"], [capture], sid="ListProdCapture",
                      Condition={"StringLike": {"s3:prefix": [f"{PROD_CAPTURE_PREFIX}/*"]}}),
            iam.allow(["s3:GetObject"], objects(capture, f"{PROD_CAPTURE_PREFIX}/*"), sid="ReadProdCapture"),
        ]  # fmt: skip

    def _release_statements(self) -> list[iam.Statement]:
        args = self._args
        config, jobs = args.config, args.jobs
        models = args.model_bucket_arn

        def objects(*keys: str) -> list[pulumi.Output[str]]:
            return [pulumi.Output.concat(models, "/", key) for key in keys]

        statements = [
            iam.allow(["s3:GetObject"], objects(f"{MODELS_PREFIX}*", CHAMPION_KEY, f"{RELEASES_PREFIX}*",
                                                f"{LEDGER_PREFIX}*", config.model_key), sid="ReadReleaseInputs"),
            # The build record names the model key's S3 version; reading a version is its own action.
            iam.allow(["s3:GetObjectVersion"], objects(config.model_key), sid="ReadReleasedModelVersion"),
            iam.allow(["s3:PutObject"], objects(f"{RELEASES_PREFIX}*", CHAMPION_KEY), sid="WriteReleaseRecord"),
            # The ledger is write-once: S3 User Guide, "Enforce conditional writes on Amazon S3 buckets" (the
            # s3:if-none-match condition key), so even this role cannot replace an entry.
            iam.allow(["s3:PutObject"], objects(f"{LEDGER_PREFIX}*"), sid="AppendLedger",
                      Condition={"Null": {"s3:if-none-match": "false"}}),
            # Who approved, the Evaluate action's variables (Service Authorization Reference, AWS CodePipeline:
            # ListActionExecutions on the pipeline resource).
            iam.allow(["codepipeline:ListActionExecutions"], [self._pipeline_arn], sid="ReadApprovalEvidence"),
            # A hand-uploaded model.zip has no archived copy yet; the release writes it (never replaces it).
            iam.allow(["s3:PutObject"], objects(f"{MODELS_PREFIX}*/{DEFAULT_MODEL_KEY}"), sid="ArchiveReleasedPackage"),
            # The release-failed alert's dedup marker (alerting.S3DedupStore, prefix alerts/sent/).
            iam.allow(["s3:GetObject", "s3:PutObject"], objects("alerts/sent/*"), sid="AlertDedupMarkers"),
            # S3 API Reference, GetObject: without s3:ListBucket a missing key answers 403, not 404, and the
            # first-ever alert (no marker yet) could never be sent.
            iam.allow(["s3:ListBucket"], [models], sid="MissingKeysAnswer404"),
            args.alerts_publish_grant,
            # What the pipeline deployed, for Pulumi (release/deployed_image.py): exactly the two parameters.
            iam.allow(["ssm:GetParameter", "ssm:PutParameter"],
                      [s.deployed_image_parameter_arn for s in (self._args.stage, self._args.prod)],
                      sid="RecordDeployedImages"),
            # PutParameter of a SecureString encrypts with the key through SSM (Systems Manager User Guide,
            # "How AWS Systems Manager Parameter Store uses AWS KMS"); only through SSM.
            iam.allow(["kms:Encrypt", "kms:GenerateDataKey"], [args.data_key_arn], sid="EncryptDeployedImages",
                      Condition={"StringEquals": {"kms:ViaService": f"ssm.{args.account.region}.amazonaws.com"}}),
            # keep-*/release-* tags on the promoted images (release/image_tags.py: BatchGetImage + PutImage).
            iam.allow(["ecr:BatchGetImage", "ecr:PutImage"], [args.app_repository_arn, args.jobs_repository_arn],
                      sid="TagPromotedImages"),
        ]  # fmt: skip
        if not jobs.definition_arn_prefixes:
            return statements
        revisions = [arn for p in jobs.definition_arn_prefixes for arn in (p, p.apply(lambda prefix: f"{prefix}:*"))]
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
        if jobs.schedule_arns:
            # The release enables the schedules pulumi up created DISABLED (release/schedules.py). UpdateSchedule
            # names the schedule's execution role again, which needs iam:PassRole on it (EventBridge Scheduler
            # User Guide, "Setting up the execution role"; Service Authorization Reference, EventBridge
            # Scheduler: UpdateSchedule's dependent action iam:PassRole).
            statements += [
                iam.allow(["scheduler:GetSchedule", "scheduler:UpdateSchedule"], list(jobs.schedule_arns),
                          sid="EnableJobSchedules"),
                iam.allow(["iam:PassRole"], list(jobs.schedule_role_arns), sid="PassScheduleRoles",
                          Condition={"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}}),
            ]  # fmt: skip
        return statements

    # --- the pipeline ------------------------------------------------------------------------------
    def _pipeline_statements(self) -> list[iam.Statement]:
        args = self._args
        account = args.account
        ecs = f"arn:{account.partition}:ecs:{account.region}:{account.account_id}"
        services = (args.stage, args.prod)
        service_arns = [pulumi.Output.concat(ecs, ":service/", s.cluster_name, "/", s.service_name) for s in services]
        task_arns = [pulumi.Output.concat(ecs, ":task/", s.cluster_name, "/*") for s in services]
        cluster_arns = [pulumi.Output.concat(ecs, ":cluster/", s.cluster_name) for s in services]
        families = [pulumi.Output.concat(ecs, ":task-definition/", s.task_family, ":*") for s in services]
        passable = [arn for s in services for arn in (s.task_role_arn, s.execution_role_arn)]
        model_object = pulumi.Output.concat(args.model_bucket_arn, "/", args.config.model_key)
        return [
            iam.allow(["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"],
                      [pulumi.Output.concat(args.artifact_bucket_arn, "/*")], sid="PipelineArtifacts"),
            iam.allow(["s3:GetBucketAcl", "s3:GetBucketLocation", "s3:GetBucketVersioning"],
                      [args.artifact_bucket_arn, args.model_bucket_arn], sid="PipelineBuckets"),
            # CodePipeline User Guide, "Amazon S3 source action reference", service role permissions.
            iam.allow(["s3:GetObject", "s3:GetObjectVersion"], [model_object], sid="ReadModelSource"),
            *self.code.pipeline_statements(args.artifact_bucket_arn),
            iam.allow(["codebuild:BatchGetBuilds", "codebuild:StartBuild"],
                      [self.build.arn, self.evaluate.arn, self.release.arn], sid="RunBuildProjects"),
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
            args.alerts_publish_grant,
            args.data_key_grant,
        ]  # fmt: skip

    def _stages(self) -> list[aws.codepipeline.PipelineStageArgs]:
        args = self._args
        action = aws.codepipeline.PipelineStageActionArgs
        stage_url = args.stage.url
        # CodePipeline User Guide, "Variables reference": variables resolve in action configuration, so the
        # approver reads this execution's verdict (the Evaluate action's exported variables), not a plan-time text.
        approval_note = pulumi.Output.concat(
            f"Evaluation #{{{EVALUATE_NAMESPACE}.{SUMMARY}}} | Stage runs git #{{{BUILD_NAMESPACE}.GIT_SHA}} ",
            f"with model version #{{{BUILD_NAMESPACE}.MODEL_VERSION}}: ",
            stage_url,
        )
        return [
            aws.codepipeline.PipelineStageArgs(
                name="Source",
                actions=[
                    self.code.action(),
                    model_source_action(args.model_bucket_name, args.config.model_key),
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
                name=EVALUATE_STAGE,
                actions=[
                    action(
                        name="EvaluateCandidate",
                        category="Build",
                        owner="AWS",
                        provider="CodeBuild",
                        version="1",
                        namespace=EVALUATE_NAMESPACE,
                        input_artifacts=[CODE_ARTIFACT, MODEL_ARTIFACT],
                        configuration={
                            "ProjectName": self.evaluate.name,
                            "PrimarySource": CODE_ARTIFACT,
                            "EnvironmentVariables": _environment_json(
                                {
                                    "GIT_SHA": f"#{{{BUILD_NAMESPACE}.GIT_SHA}}",
                                    "PIPELINE_EXECUTION_ID": "#{codepipeline.PipelineExecutionId}",
                                }
                            ),
                        },
                    )
                ],
            ),
            aws.codepipeline.PipelineStageArgs(
                name=APPROVAL_STAGE,
                actions=[
                    action(
                        name="ApproveProd",
                        category="Approval",
                        owner="AWS",
                        provider="Manual",
                        version="1",
                        # CodePipeline API Reference, ActionDeclaration.timeoutInMinutes: only for manual
                        # approval actions, 5 to 86400 (default 7 days).
                        timeout_in_minutes=args.config.approval_timeout_minutes,
                        configuration={
                            "NotificationArn": args.alerts_topic_arn,
                            "CustomData": approval_note,
                            # The report of this very execution (a presigned URL would be made at plan time
                            # and expire; the S3 console object page needs the approver's own S3 access).
                            "ExternalEntityLink": f"#{{{EVALUATE_NAMESPACE}.{REPORT_URL}}}",
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
    def _deploy_stage(stage_name: str, service: DeployTarget) -> aws.codepipeline.PipelineStageArgs:
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


def evaluation_environment(config: PipelineConfig) -> dict[str, str]:
    """The stack's ``evaluation*`` keys as the EVALUATION_* variables evaluation/settings.py reads, written by the
    Evaluate action's own settings class (contracts/environment.py)."""
    return EvaluateEnvironment(
        evaluation_min_agreement=config.evaluation_min_agreement,
        evaluation_max_score_psi=config.evaluation_max_score_psi,
        evaluation_max_segment_shift=config.evaluation_max_segment_shift,
        evaluation_max_stage_difference=config.evaluation_max_stage_difference,
        evaluation_max_p99_latency_ms=config.evaluation_max_p99_latency_ms,
        evaluation_replay_sample_size=config.evaluation_replay_sample_size,
        evaluation_replay_window_hours=config.evaluation_replay_window_hours,
        evaluation_smoke_requests=config.evaluation_smoke_requests,
    ).to_env()


def _environment_json(variables: dict[str, str]) -> str:
    """The CodeBuild action's ``EnvironmentVariables`` configuration: a JSON list of name/value/type."""
    return json.dumps([{"name": k, "value": v, "type": "PLAINTEXT"} for k, v in variables.items()])
