"""The pipeline's two sources: the code (CodeCommit or a CodeConnections repository) and the model.

Code: ``sourceProvider: codecommit`` creates the CodeCommit repository and an EventBridge rule starts
the pipeline (infra/pipeline/pipeline_triggers.py). ``codeconnections`` uses a ``CodeStarSourceConnection``
action on an existing connection (GitHub, GitLab, Bitbucket); it has no EventBridge event, so the
pipeline declares a V2 trigger with a git push filter on the configured branch instead (CodePipeline
User Guide, "Automate starting pipelines using triggers and filtering"; with a trigger, default change
detection is off and only the filter starts the pipeline).

Model: the S3 source action on the versioned model bucket's model key. Both source actions have
``PollForSourceChanges`` false: EventBridge starts the pipeline (CodePipeline User Guide, "Migrate
polling pipelines to use event-based change detection").
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.lib import iam

# The one name infra/pipeline takes from infra.settings: a Literal alias, used only as a type (the settings validate
# the key against it). Re-exported (``as``) for PipelineConfig in pipeline.py.
from infra.settings import SourceProvider as SourceProvider  # noqa: PLC0414 (explicit re-export, mypy strict)

# Contract with buildspec.yml / release/buildspec.yml: artifact and namespace names.
CODE_ARTIFACT = "CodeSource"
MODEL_ARTIFACT = "ModelSource"
CODE_ACTION = "Code"
MODEL_ACTION = "Model"

# CodePipeline User Guide, "CodeCommit source action reference", service role permissions.
CODECOMMIT_ACTIONS = (
    "codecommit:CancelUploadArchive",
    "codecommit:GetBranch",
    "codecommit:GetCommit",
    "codecommit:GetRepository",
    "codecommit:GetUploadArchiveStatus",
    "codecommit:UploadArchive",
)
# CodePipeline User Guide, "CodeStarSourceConnection": both service prefixes name the same action; the
# connection ARN's prefix decides which one IAM evaluates.
CONNECTION_ACTIONS = ("codeconnections:UseConnection", "codestar-connections:UseConnection")


def connection_clone_url(full_repository_id: str) -> str:
    """The https URL of a connected repository. GitLab allows nested groups (``group/sub/repo``),
    GitHub and Bitbucket do not, so a path of three or more parts is GitLab; two parts default to GitHub."""
    host = "gitlab.com" if full_repository_id.count("/") >= 2 else "github.com"
    return f"https://{host}/{full_repository_id}.git"


@dataclass(frozen=True)
class CodeSourceArgs:
    """The source settings only (issue #15: a component takes what it uses, not the whole stack settings)."""

    provider: SourceProvider
    branch: str
    repository_name: str  # the CodeCommit repository (used when provider is codecommit)
    deletion_protection: bool  # protects the CodeCommit repository
    connection_arn: str | None = None  # codeconnections only; the settings cross-check requires both
    full_repository_id: str | None = None


class CodeSource(pulumi.ComponentResource):
    """Exposes the source action, its IAM statements for the pipeline role, V2 triggers, and the clone URL."""

    def __init__(self, name: str, args: CodeSourceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ml-delivery:pipeline:CodeSource", name, None, opts)
        self.provider = args.provider
        self.branch = args.branch
        self.repository: aws.codecommit.Repository | None = None
        self.repository_arn: pulumi.Output[str] | None = None
        if self.provider == "codecommit":
            self.repository = aws.codecommit.Repository(
                f"{name}-repository",
                aws.codecommit.RepositoryArgs(
                    repository_name=args.repository_name,
                    description=f"ml-delivery {pulumi.get_stack()}: code for the delivery pipeline",
                    default_branch=args.branch,
                ),
                # A repository holds history no `pulumi destroy` should take with it in prod.
                opts=pulumi.ResourceOptions(parent=self, protect=args.deletion_protection),
            )
            self.repository_arn = self.repository.arn
            self.clone_url: pulumi.Output[str] = self.repository.clone_url_http
        else:
            assert args.connection_arn and args.full_repository_id  # settings cross-check guarantees
            self.connection_arn = args.connection_arn
            self.full_repository_id = args.full_repository_id
            self.clone_url = pulumi.Output.from_input(connection_clone_url(args.full_repository_id))
        self.register_outputs({"cloneUrl": self.clone_url, "provider": self.provider})

    def action(self) -> aws.codepipeline.PipelineStageActionArgs:
        if self.provider == "codecommit":
            assert self.repository is not None
            configuration: dict[str, pulumi.Input[str]] = {
                "RepositoryName": self.repository.repository_name,
                "BranchName": self.branch,
                "PollForSourceChanges": "false",
                "OutputArtifactFormat": "CODE_ZIP",
            }
            provider, owner = "CodeCommit", "AWS"
        else:
            # CodePipeline User Guide, "CodeStarSourceConnection for Bitbucket Cloud, GitHub, GitHub
            # Enterprise Server, GitLab.com, and GitLab self-managed actions".
            configuration = {
                "ConnectionArn": self.connection_arn,
                "FullRepositoryId": self.full_repository_id,
                "BranchName": self.branch,
                "DetectChanges": "true",
                "OutputArtifactFormat": "CODE_ZIP",
            }
            provider, owner = "CodeStarSourceConnection", "AWS"
        return aws.codepipeline.PipelineStageActionArgs(
            name=CODE_ACTION,
            category="Source",
            owner=owner,
            provider=provider,
            version="1",
            namespace=CODE_ARTIFACT,
            output_artifacts=[CODE_ARTIFACT],
            configuration=configuration,
            run_order=1,
        )

    def triggers(self) -> list[aws.codepipeline.PipelineTriggerArgs]:
        """Only connections have V2 triggers; CodeCommit is started by its EventBridge rule."""
        if self.provider == "codecommit":
            return []
        return [
            aws.codepipeline.PipelineTriggerArgs(
                provider_type="CodeStarSourceConnection",
                git_configuration=aws.codepipeline.PipelineTriggerGitConfigurationArgs(
                    source_action_name=CODE_ACTION,
                    pushes=[
                        aws.codepipeline.PipelineTriggerGitConfigurationPushArgs(
                            branches=aws.codepipeline.PipelineTriggerGitConfigurationPushBranchesArgs(
                                includes=[self.branch]
                            )
                        )
                    ],
                ),
            )
        ]

    def pipeline_statements(self, artifact_bucket_arn: pulumi.Input[str]) -> list[iam.Statement]:
        """What the pipeline role needs for this source. A connections source writes its output artifact
        with an ACL (CodePipeline User Guide, "CodeStarSourceConnection ... actions", service role
        permissions: s3:PutObjectAcl on the artifact bucket); CodeCommit does not."""
        if self.provider == "codecommit":
            assert self.repository_arn is not None
            return [iam.allow(list(CODECOMMIT_ACTIONS), [self.repository_arn], sid="ReadCodeCommitSource")]
        return [
            iam.allow(list(CONNECTION_ACTIONS), [self.connection_arn], sid="UseSourceConnection"),
            iam.allow(["s3:PutObjectAcl"], [pulumi.Output.concat(artifact_bucket_arn, "/*")],
                      sid="ConnectionSourceArtifactAcl"),
        ]  # fmt: skip


def model_source_action(bucket_name: pulumi.Input[str], model_key: str) -> aws.codepipeline.PipelineStageActionArgs:
    """CodePipeline User Guide, "Amazon S3 source action reference" (the bucket must be versioned)."""
    return aws.codepipeline.PipelineStageActionArgs(
        name=MODEL_ACTION,
        category="Source",
        owner="AWS",
        provider="S3",
        version="1",
        namespace=MODEL_ARTIFACT,
        output_artifacts=[MODEL_ARTIFACT],
        configuration={"S3Bucket": bucket_name, "S3ObjectKey": model_key, "PollForSourceChanges": "false"},
        run_order=1,
    )
