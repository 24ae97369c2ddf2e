"""One CodeBuild project the pipeline runs: the privileged image ``build`` or the plain ``release``.

Both run in the private subnets behind their own egress-only security group, log to an explicit
log group, and carry a role that reaches only this stack's resources. The same component is used
twice (like ModelService), so the two projects cannot drift in their network or logging baseline;
what differs (privileged mode, cache, environment, extra grants) is in :class:`BuildProjectArgs`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from infra.lib import iam

# CodeBuild User Guide, "Docker images provided by CodeBuild": Ubuntu 22.04, Python 3.11 available.
BUILD_IMAGE = "aws/codebuild/standard:7.0"

# CodeBuild User Guide, "Allow CodeBuild access to AWS services required to create a VPC network
# interface". The doc grants all of them on "*"; the Service Authorization Reference (Amazon EC2) gives
# Create/DeleteNetworkInterface resource types, so those two are scoped below and only these describe
# actions, which have none, stay on "*" (each in infra/lib/iam.py RESOURCE_STAR_ACTIONS).
VPC_DESCRIBE_ACTIONS = (
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    "ec2:DescribeVpcs",
)


@dataclass(frozen=True)
class EgressPort:
    port: int
    description: str


@dataclass(frozen=True)
class BuildProjectArgs:
    """``project_name`` is the physical name, so the role's trust policy can name the project's ARN."""

    project_name: str
    description: str
    buildspec: str
    privileged: bool
    compute_type: str
    timeout_minutes: int
    environment: Mapping[str, pulumi.Input[str]]
    statements: Sequence[iam.Statement]
    egress: Sequence[EgressPort]
    vpc_id: pulumi.Input[str]
    private_subnet_ids: Sequence[pulumi.Input[str]]
    artifact_bucket_arn: pulumi.Input[str]
    data_key_arn: pulumi.Input[str]
    data_key_grant: iam.Statement
    log_group_name: str
    log_retention_days: int
    account_id: str
    region: str
    partition: str
    cache_modes: Sequence[str] = field(default_factory=tuple)


class BuildProject(pulumi.ComponentResource):
    def __init__(self, name: str, args: BuildProjectArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ml-delivery:pipeline:BuildProject", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.arn = f"arn:{args.partition}:codebuild:{args.region}:{args.account_id}:project/{args.project_name}"
        self.log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            aws.cloudwatch.LogGroupArgs(name=args.log_group_name, retention_in_days=args.log_retention_days),
            opts=child,
        )
        self.security_group = self._security_group(name, args)
        self.role, self.role_policy = iam.role_with_policy(
            f"{name}-role",
            service="codebuild.amazonaws.com",
            account_id=args.account_id,
            source_arn=self.arn,
            statements=[*self._baseline_statements(args), *args.statements],
            parent=self,
            description=f"CodeBuild project {args.project_name}: {args.description}",
        )
        self.project = aws.codebuild.Project(
            f"{name}-project",
            aws.codebuild.ProjectArgs(
                name=args.project_name,
                description=args.description,
                service_role=self.role.arn,
                build_timeout=args.timeout_minutes,
                queued_timeout=60,
                # Build outputs (the secondary artifacts) encrypted with the stack key, like the bucket.
                encryption_key=args.data_key_arn,
                source=aws.codebuild.ProjectSourceArgs(type="CODEPIPELINE", buildspec=args.buildspec),
                artifacts=aws.codebuild.ProjectArtifactsArgs(type="CODEPIPELINE"),
                environment=aws.codebuild.ProjectEnvironmentArgs(
                    type="LINUX_CONTAINER",
                    image=BUILD_IMAGE,
                    compute_type=args.compute_type,
                    image_pull_credentials_type="CODEBUILD",
                    # CodeBuild User Guide, "Docker in custom image sample": docker builds need privileged mode.
                    privileged_mode=args.privileged,
                    environment_variables=[
                        aws.codebuild.ProjectEnvironmentEnvironmentVariableArgs(name=k, value=v, type="PLAINTEXT")
                        for k, v in sorted(args.environment.items())
                    ],
                ),
                # CodeBuild User Guide, "Build caching in AWS CodeBuild", local caching modes.
                cache=aws.codebuild.ProjectCacheArgs(type="LOCAL", modes=list(args.cache_modes))
                if args.cache_modes
                else aws.codebuild.ProjectCacheArgs(type="NO_CACHE"),
                logs_config=aws.codebuild.ProjectLogsConfigArgs(
                    cloudwatch_logs=aws.codebuild.ProjectLogsConfigCloudwatchLogsArgs(
                        status="ENABLED", group_name=self.log_group.name, stream_name=args.project_name
                    ),
                    s3_logs=aws.codebuild.ProjectLogsConfigS3LogsArgs(status="DISABLED"),
                ),
                vpc_config=aws.codebuild.ProjectVpcConfigArgs(
                    vpc_id=args.vpc_id,
                    subnets=list(args.private_subnet_ids),
                    security_group_ids=[self.security_group.id],
                ),
            ),
            # The role's policy must exist before the first build runs with it.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.role_policy]),
        )
        self.name = self.project.name
        self.register_outputs({"name": self.project.name, "roleArn": self.role.arn, "logGroup": self.log_group.name})

    def _security_group(self, name: str, args: BuildProjectArgs) -> aws.ec2.SecurityGroup:
        """No ingress rule at all: nothing connects to a build. Egress only to the listed ports."""
        group = aws.ec2.SecurityGroup(
            f"{name}-sg",
            aws.ec2.SecurityGroupArgs(vpc_id=args.vpc_id, description=f"{args.project_name}: egress only"),
            opts=pulumi.ResourceOptions(parent=self),
        )
        for egress in args.egress:
            aws.vpc.SecurityGroupEgressRule(
                f"{name}-out-{egress.port}",
                aws.vpc.SecurityGroupEgressRuleArgs(
                    security_group_id=group.id,
                    ip_protocol="tcp",
                    from_port=egress.port,
                    to_port=egress.port,
                    cidr_ipv4="0.0.0.0/0",
                    description=egress.description,
                ),
                opts=pulumi.ResourceOptions(parent=group),
            )
        return group

    def _baseline_statements(self, args: BuildProjectArgs) -> list[iam.Statement]:
        log_streams = self.log_group.arn.apply(lambda arn: f"{arn.removesuffix(':*')}:log-stream:*")
        subnet_arns = [
            pulumi.Output.concat(f"arn:{args.partition}:ec2:{args.region}:{args.account_id}:subnet/", subnet)
            for subnet in args.private_subnet_ids
        ]
        ec2_arn = f"arn:{args.partition}:ec2:{args.region}:{args.account_id}"
        interfaces = f"{ec2_arn}:network-interface/*"
        security_group = pulumi.Output.concat(f"{ec2_arn}:security-group/", self.security_group.id)
        return [
            iam.allow(["logs:CreateLogStream", "logs:PutLogEvents"], [log_streams], sid="WriteBuildLogs"),
            # CodePipeline hands inputs to and takes outputs from CodeBuild through the artifact bucket.
            iam.allow(["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"],
                      [pulumi.Output.concat(args.artifact_bucket_arn, "/*")], sid="PipelineArtifacts"),
            iam.allow(["s3:GetBucketAcl", "s3:GetBucketLocation"], [args.artifact_bucket_arn],
                      sid="PipelineArtifactBucket"),
            args.data_key_grant,
            # CodeBuild User Guide, "Allow CodeBuild access to AWS services required to create a VPC network
            # interface": the describe actions have no resource-level permissions, so "*" is required.
            iam.allow(list(VPC_DESCRIBE_ACTIONS), ["*"], sid="VpcDescribe"),
            # Interfaces only in the private subnets with this project's security group.
            iam.allow(["ec2:CreateNetworkInterface"], [interfaces, *subnet_arns, security_group],
                      sid="VpcCreateNetworkInterface"),
            iam.allow(["ec2:DeleteNetworkInterface"], [interfaces], sid="VpcDeleteNetworkInterface",
                      Condition={"ArnEquals": {"ec2:Subnet": subnet_arns}}),
            # Same doc: the permission to attach the interface is scoped to the private subnets.
            iam.allow(
                ["ec2:CreateNetworkInterfacePermission"], [interfaces], sid="VpcNetworkInterfacePermission",
                Condition={"ArnEquals": {"ec2:Subnet": subnet_arns},
                           "StringEquals": {"ec2:AuthorizedService": "codebuild.amazonaws.com"}},
            ),
        ]  # fmt: skip
