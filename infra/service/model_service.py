"""One serving environment (stage or prod): the same component used twice, never copied.

ECS on Fargate behind an ALB. Tasks run in private subnets with no public IP and accept traffic only
from the ALB; the ALB accepts only the configured CIDRs.

Who owns what (issue #16 item 4): Pulumi owns the task definition's shape (CPU, memory, environment,
secrets, mounts); the pipeline owns the image. After every ECS deploy the pipeline writes the image it
deployed (``<repository>@sha256:<digest>``) to the SSM parameter :func:`deployed_image_parameter`; Pulumi
reads it back, so ``pulumi up`` registers its shape with the deployed image and never reverts a release,
while a change of shape in ``infra/`` does reach the service.

Delivery (issue #16 item 3): stage rolls; prod uses ECS's built-in CANARY or LINEAR strategy, with a second
target group, a production listener rule whose weights ECS shifts, and CloudWatch alarms (5xx, p99 latency,
prediction shift) that roll the deployment back (ECS Developer Guide, "Amazon ECS canary deployments",
"Application Load Balancer resources for blue/green, linear, and canary deployments", "How CloudWatch alarms
detect Amazon ECS deployment failures").
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

import pulumi
import pulumi_aws as aws

from app import capture_contract
from contracts import prediction_metrics
from contracts.bucket_layout import capture_prefix
from contracts.environment import AppEnvironment
from contracts.runtime_settings import default_document
from infra.foundation.hardening import BOOTSTRAP_IMAGE, BOOTSTRAP_SERVER, WebFirewall, WebFirewallArgs
from infra.jobs.jobs_spec import runtime_settings_parameter
from infra.lib import iam
from infra.lib.images import check_deployed_image
from model_package.capture_privacy import HASH_KEY_ENV as CAPTURE_HASH_KEY_ENV
from release.contracts import deployed_image_parameter

# ALB security policy with TLS 1.3 and 1.2 only (ELB User Guide, "Security policies for your ALB").
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
# The task's ephemeral storage (Fargate: 21-200 GiB, https://docs.aws.amazon.com/AWSCloudFormation/latest/
# UserGuide/aws-properties-ecs-taskdefinition-ephemeralstorage.html) and the part of it the capture spool may
# fill. One place: the task definition's size and the app's CAPTURE_SPOOL_MAX_BYTES both derive from these.
EPHEMERAL_STORAGE_GIB = 30
# The ALB's connection idle timeout, and how much longer the app keeps an idle kept-alive connection open.
ALB_IDLE_TIMEOUT_SECONDS = 60
APP_KEEPALIVE_MARGIN_SECONDS = 5
CAPTURE_SPOOL_BUDGET_GIB = 20  # the rest holds the image layers and temp files
# Alarm when a sink's oldest unsent record is older than this (the app's /ready default is 300 s).
CAPTURE_OLDEST_UNSENT_ALARM_SECONDS = 900


def capture_environment(workers: int) -> dict[str, Any]:
    """The app's capture durability settings for one task (``AppEnvironment`` fields): spool cap per worker,
    EMF health lines on."""
    return {
        "capture_spool_max_bytes": CAPTURE_SPOOL_BUDGET_GIB * (1 << 30) // max(1, workers),
        "capture_spool_overflow": "drop_oldest",
        "capture_emf_seconds": capture_contract.EMF_PERIOD_SECONDS,
    }


# The runtime-settings document's defaults (contracts/runtime_settings.py, which the app validates against):
# the SSM parameter's first value; operators change it afterwards (docs/app.md "Serving policies").
RUNTIME_SETTINGS_DEFAULTS = default_document()
PROGRESSIVE = ("CANARY", "LINEAR")


@dataclass(frozen=True)
class DeploymentPolicy:
    """How a new task definition reaches the service: ROLLING (stage) or CANARY / LINEAR (prod).

    Minutes and percentages as the ECS API takes them (API Reference, DeploymentConfiguration,
    CanaryConfiguration, LinearConfiguration).
    """

    strategy: Literal["ROLLING", "CANARY", "LINEAR"] = "ROLLING"
    canary_percent: float = 10.0
    canary_bake_minutes: int = 10
    linear_step_percent: float = 25.0
    linear_step_bake_minutes: int = 5
    bake_minutes: int = 10

    @property
    def progressive(self) -> bool:
        return self.strategy in PROGRESSIVE


@dataclass(frozen=True)
class ServiceSizing:
    cpu: int
    memory: int
    desired_count: int
    max_count: int
    cpu_target_percent: int


@dataclass(frozen=True)
class ModelServiceArgs:
    service: Literal["stage", "prod"]
    sizing: ServiceSizing
    container_name: str
    container_port: int
    health_check_path: str
    bootstrap_image: str
    ingress_cidrs: tuple[str, ...]
    certificate_arn: str | None
    deletion_protection: bool
    log_retention_days: int
    alarm_5xx_threshold: int
    alarm_p99_latency_ms: int
    deployment: DeploymentPolicy
    alarm_score_shift: float
    vpc_id: pulumi.Input[str]
    public_subnet_ids: Sequence[pulumi.Input[str]]
    private_subnet_ids: Sequence[pulumi.Input[str]]
    alerts_topic_arn: pulumi.Input[str]
    capture_bucket_name: pulumi.Input[str]
    capture_bucket_arn: pulumi.Input[str]
    data_key_grant: iam.Statement
    app_repository_arn: pulumi.Input[str]
    sentry_secret_arn: pulumi.Input[str] | None
    capture_key_secret_arn: pulumi.Input[str] | None  # capture privacy HMAC key (docs/app.md)
    account_id: pulumi.Input[str]
    region: str
    # Issue #17: ALB access logs to this bucket (prefix alb/<service>); a WAF web ACL when a rate is given.
    access_logs_bucket: pulumi.Input[str] | None = None
    waf_rate_limit: int | None = None
    # An internal ALB in the private subnets (the stage default: its client, Evaluate, runs in the VPC), and
    # the name its certificate covers, answered by a private hosted zone (only with certificate_arn).
    internal: bool = False
    hostname: str | None = None
    data_key_arn: pulumi.Input[str] | None = None


class _AlarmTarget(TypedDict):
    """What a service's alarms share: typed so that ``**common`` is checked key by key against MetricAlarmArgs."""

    namespace: str
    dimensions: Mapping[str, pulumi.Input[str]]
    alarm_actions: Sequence[pulumi.Input[str]]
    ok_actions: Sequence[pulumi.Input[str]]
    treat_missing_data: str


class _CaptureAlarmCommon(_AlarmTarget):
    """The capture alarms also share their period (the EMF flush period) and a single evaluation period."""

    period: int
    evaluation_periods: int


class ModelService(pulumi.ComponentResource):
    def __init__(self, name: str, args: ModelServiceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ml-delivery:service:ModelService", name, None, opts)
        self._args = args
        self._name = name
        child = pulumi.ResourceOptions(parent=self)
        stack = pulumi.get_stack()

        self.cluster = aws.ecs.Cluster(
            f"{name}-cluster",
            aws.ecs.ClusterArgs(settings=[aws.ecs.ClusterSettingArgs(name="containerInsights", value="enabled")]),
            opts=child,
        )
        self.log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            aws.cloudwatch.LogGroupArgs(
                name=f"/ml-delivery/{stack}/{args.service}", retention_in_days=args.log_retention_days
            ),
            opts=child,
        )
        self.runtime_settings = aws.ssm.Parameter(
            f"{name}-runtime-settings",
            aws.ssm.ParameterArgs(
                name=runtime_settings_parameter(stack, args.service),
                # SecureString on the stack key (issue #17); the app reads it WithDecryption and its role
                # holds kms:Decrypt on the key (SSM User Guide, "SecureString parameters and KMS").
                type="SecureString",
                key_id=args.data_key_arn,
                value=json.dumps(RUNTIME_SETTINGS_DEFAULTS, sort_keys=True),
                description="Runtime settings the app re-reads without a redeploy (docs/app.md)",
            ),
            # Operators tune the threshold and capture here; a `pulumi up` must not reset their value.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["value"]),
        )
        self.deployed_image_parameter = aws.ssm.Parameter(
            f"{name}-deployed-image",
            aws.ssm.ParameterArgs(
                name=deployed_image_parameter(stack, args.service),
                # SecureString on the stack key like every parameter of the stack (issue #17); the reference
                # itself is not secret, so it is unsecreted when read back.
                type="SecureString",
                key_id=args.data_key_arn,
                value=args.bootstrap_image,
                description=f"Image the pipeline last deployed to {args.service} (repository@sha256:digest); "
                "Pulumi reads it so `pulumi up` keeps it (docs/pipeline.md)",
            ),
            # The pipeline writes the value after every deploy; Pulumi creates it once with the bootstrap image.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["value"]),
        )
        self.image = self._deployed_image(args)
        self.execution_role, self.task_role = self._roles(name, args)
        self.task_definition = self._task_definition(name, args)
        self.alb, self.target_group, listener = self._load_balancer(name, args)
        self.alternate_target_group: aws.lb.TargetGroup | None = None
        self.production_rule: aws.lb.ListenerRule | None = None
        self.load_balancer_role: aws.iam.Role | None = None
        traffic_ready: list[pulumi.Resource] = [listener]
        if args.deployment.progressive:
            traffic_ready += self._progressive_traffic(name, args, listener)
        self.deployment_alarms = self._alarms(name, args)
        self.service = self._service(name, args, traffic_ready)
        self._autoscaling(name, args)
        self._capture_alarms(name, args)

        self.url = self._url(name, args)
        self.cluster_name = self.cluster.name
        self.service_name = self.service.name
        self.container_name = args.container_name
        self.register_outputs(
            {
                "url": self.url,
                "clusterName": self.cluster.name,
                "serviceName": self.service.name,
                "containerName": args.container_name,
                "taskRoleArn": self.task_role.arn,
                "executionRoleArn": self.execution_role.arn,
            }
        )

    # --- the deployed image -------------------------------------------------------------------------
    @property
    def metrics_service_name(self) -> str:
        """The value of the app's EMF Service dimension: set on the task definition and read by the alarm,
        so the two cannot drift apart (contracts/prediction_metrics.py)."""
        return self._args.service

    def _deployed_image(self, args: ModelServiceArgs) -> pulumi.Output[str]:
        """The image the service runs now: the live value of the deployed-image parameter.

        Read with the SSM data source after the parameter exists (an invoke that depends on it), not from
        the parameter resource's state, which keeps the value Pulumi created it with (``ignore_changes``).
        """
        where = f"SSM parameter {deployed_image_parameter(pulumi.get_stack(), args.service)}"
        live = aws.ssm.get_parameter_output(
            name=self.deployed_image_parameter.name,
            with_decryption=True,
            opts=pulumi.InvokeOutputOptions(depends_on=[self.deployed_image_parameter], parent=self),
        )
        # The provider marks ``value`` secret; an image reference is not, and a secret one would hide the
        # whole task definition from previews.
        image = pulumi.Output.unsecret(live.value)
        return image.apply(lambda value: check_deployed_image(value, args.bootstrap_image, where))

    # --- IAM ------------------------------------------------------------------------------------
    def _roles(self, name: str, args: ModelServiceArgs) -> tuple[aws.iam.Role, aws.iam.Role]:
        log_streams = self.log_group.arn.apply(lambda arn: f"{arn}:log-stream:*")
        execution_statements = [
            # ECR User Guide, "Private registry authentication": GetAuthorizationToken has no resource-level
            # permissions, so it must be granted on "*".
            iam.allow(["ecr:GetAuthorizationToken"], ["*"], sid="EcrLogin"),
            iam.allow(["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                      [args.app_repository_arn], sid="PullAppImage"),
            iam.allow(["logs:CreateLogStream", "logs:PutLogEvents"], [log_streams], sid="WriteServiceLogs"),
        ]  # fmt: skip
        if args.sentry_secret_arn is not None:
            execution_statements.append(
                iam.allow(["secretsmanager:GetSecretValue"], [args.sentry_secret_arn], sid="ReadSentryDsn")
            )
        if args.capture_key_secret_arn is not None:  # ECS injects it with the execution role (secrets valueFrom)
            execution_statements.append(
                iam.allow(["secretsmanager:GetSecretValue"], [args.capture_key_secret_arn], sid="ReadCaptureHashKey")
            )
        execution_role = iam.role(
            f"{name}-execution-role",
            service="ecs-tasks.amazonaws.com",
            account_id=args.account_id,
            statements=execution_statements,
            parent=self,
            description=f"ECS agent for the {args.service} service: pull the image, write logs, read secrets",
        )
        capture_objects = pulumi.Output.concat(args.capture_bucket_arn, f"/{capture_prefix(args.service)}/*")
        task_role = iam.role(
            f"{name}-task-role",
            service="ecs-tasks.amazonaws.com",
            account_id=args.account_id,
            statements=[
                iam.allow(["s3:PutObject"], [capture_objects], sid="WriteCapturedPayloads"),
                args.data_key_grant,
                iam.allow(["ssm:GetParameter"], [self.runtime_settings.arn], sid="ReadRuntimeSettings"),
            ],
            parent=self,
            description=f"The {args.service} app: capture payloads, read its runtime settings",
        )
        return execution_role, task_role

    # --- task definition --------------------------------------------------------------------------
    def container_definitions(
        self,
        capture_bucket: str,
        log_group: str,
        sentry_arn: str | None,
        image: str,
        capture_key_arn: str | None = None,
    ) -> str:
        """The one container, as ECS RegisterTaskDefinition expects it (tests validate it with botocore).

        ``image`` is the one currently deployed (:meth:`_deployed_image`); everything else is Pulumi's.
        """
        args = self._args
        workers = max(1, args.sizing.cpu // 1024)
        # The app's own settings class (contracts/environment.py) writes the variables it reads.
        environment = AppEnvironment(
            **capture_environment(workers),
            service_name=args.service,
            port=args.container_port,
            workers=workers,
            model_dir="/opt/model",
            capture_s3_uri=f"s3://{capture_bucket}/{capture_prefix(args.service)}",
            spool_dir="/tmp/capture-spool",  # noqa: S108 - the task's private ephemeral volume
            settings_source=f"ssm:{runtime_settings_parameter(pulumi.get_stack(), args.service)}",
            settings_refresh_seconds=30,
            aws_region=args.region,
            log_level="INFO",
            # The Service dimension of the app's EMF prediction metrics: the score-shift alarm reads it.
            prediction_metrics_service=self.metrics_service_name,
            # Longer than the ALB's idle timeout, so the ALB, not the app, closes an idle connection: otherwise the
            # ALB may send a request on a connection the app is closing and answer the client 502 (ELB User
            # Guide, "Edit attributes for your Application Load Balancer", connection idle timeout).
            http_keepalive_seconds=ALB_IDLE_TIMEOUT_SECONDS + APP_KEEPALIVE_MARGIN_SECONDS,
        ).to_env()
        if "whoami" in args.bootstrap_image:
            # Only for the bootstrap image, which listens on 80 unless told otherwise.
            environment["WHOAMI_PORT_NUMBER"] = str(args.container_port)
        container: dict[str, object] = {
            "name": args.container_name,
            "image": image,
            "essential": True,
            "portMappings": [{"containerPort": args.container_port, "protocol": "tcp", "name": "http"}],
            "environment": [{"name": k, "value": v} for k, v in sorted(environment.items())],
            "readonlyRootFilesystem": True,
            # The root filesystem is read-only; the capture spool and temp files go to an ephemeral volume.
            "mountPoints": [{"sourceVolume": "tmp", "containerPath": "/tmp", "readOnly": False}],  # noqa: S108
            # Time for the app to flush captured payloads on SIGTERM before SIGKILL: uvicorn's graceful shutdown
            # plus each capture sink's final flush (docs/app.md, "Shutdown"); Fargate allows up to 120 s.
            "stopTimeout": 60,
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {
                    "awslogs-group": log_group,
                    "awslogs-region": args.region,
                    "awslogs-stream-prefix": args.service,
                    "mode": "non-blocking",
                    "max-buffer-size": "25m",
                },
            },
        }
        if image == BOOTSTRAP_IMAGE:
            # Only until the first release: the app image has its own CMD.
            container["command"] = ["python", "-c", BOOTSTRAP_SERVER]
        secrets = [{"name": "SENTRY_DSN", "valueFrom": sentry_arn}] if sentry_arn is not None else []
        if capture_key_arn is not None:
            secrets.append({"name": CAPTURE_HASH_KEY_ENV, "valueFrom": capture_key_arn})
        if secrets:
            container["secrets"] = secrets
        return json.dumps([container], sort_keys=True)

    def _task_definition(self, name: str, args: ModelServiceArgs) -> aws.ecs.TaskDefinition:
        definitions = pulumi.Output.all(
            args.capture_bucket_name,
            self.log_group.name,
            args.sentry_secret_arn,
            self.image,
            args.capture_key_secret_arn,
        ).apply(lambda v: self.container_definitions(v[0], v[1], v[2], v[3], v[4]))
        return aws.ecs.TaskDefinition(
            f"{name}-task",
            aws.ecs.TaskDefinitionArgs(
                family=f"ml-delivery-{pulumi.get_stack()}-{args.service}",
                cpu=str(args.sizing.cpu),
                memory=str(args.sizing.memory),
                network_mode="awsvpc",
                requires_compatibilities=["FARGATE"],
                runtime_platform=aws.ecs.TaskDefinitionRuntimePlatformArgs(
                    operating_system_family="LINUX", cpu_architecture="X86_64"
                ),
                execution_role_arn=self.execution_role.arn,
                task_role_arn=self.task_role.arn,
                volumes=[aws.ecs.TaskDefinitionVolumeArgs(name="tmp")],
                ephemeral_storage=aws.ecs.TaskDefinitionEphemeralStorageArgs(size_in_gib=EPHEMERAL_STORAGE_GIB),
                container_definitions=definitions,
                # A new shape registers a new revision; the previous one stays ACTIVE, because ECS rolls a
                # failed deployment back to it and the pipeline's deploy action copies the service's current
                # revision (CodePipeline User Guide, "Amazon ECS deploy action reference").
                skip_destroy=True,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

    # --- load balancer ------------------------------------------------------------------------------
    def _load_balancer(
        self, name: str, args: ModelServiceArgs
    ) -> tuple[aws.lb.LoadBalancer, aws.lb.TargetGroup, aws.lb.Listener]:
        child = pulumi.ResourceOptions(parent=self)
        self.alb_security_group = aws.ec2.SecurityGroup(
            f"{name}-alb-sg",
            aws.ec2.SecurityGroupArgs(vpc_id=args.vpc_id, description=f"{args.service} ALB: configured CIDRs only"),
            opts=child,
        )
        self.task_security_group = aws.ec2.SecurityGroup(
            f"{name}-task-sg",
            aws.ec2.SecurityGroupArgs(vpc_id=args.vpc_id, description=f"{args.service} tasks: from the ALB only"),
            opts=child,
        )
        listener_ports = [443, 80] if args.certificate_arn else [80]
        for cidr_index, cidr in enumerate(args.ingress_cidrs):
            for port in listener_ports:
                aws.vpc.SecurityGroupIngressRule(
                    f"{name}-alb-in-{port}-{cidr_index}",
                    aws.vpc.SecurityGroupIngressRuleArgs(
                        security_group_id=self.alb_security_group.id,
                        ip_protocol="tcp",
                        from_port=port,
                        to_port=port,
                        cidr_ipv4=cidr,
                        description=f"clients on {cidr}",
                    ),
                    opts=child,
                )
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-alb-out-tasks",
            aws.vpc.SecurityGroupEgressRuleArgs(
                security_group_id=self.alb_security_group.id,
                ip_protocol="tcp",
                from_port=args.container_port,
                to_port=args.container_port,
                referenced_security_group_id=self.task_security_group.id,
                description="to the tasks only",
            ),
            opts=child,
        )
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-task-in-alb",
            aws.vpc.SecurityGroupIngressRuleArgs(
                security_group_id=self.task_security_group.id,
                ip_protocol="tcp",
                from_port=args.container_port,
                to_port=args.container_port,
                referenced_security_group_id=self.alb_security_group.id,
                description="from the ALB only",
            ),
            opts=child,
        )
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-task-out-https",
            aws.vpc.SecurityGroupEgressRuleArgs(
                security_group_id=self.task_security_group.id,
                ip_protocol="tcp",
                from_port=443,
                to_port=443,
                cidr_ipv4="0.0.0.0/0",
                description="HTTPS to AWS APIs (ECR, S3, SSM, Logs) and Sentry through the NAT / S3 endpoint",
            ),
            opts=child,
        )
        alb = aws.lb.LoadBalancer(
            f"{name}-alb",
            aws.lb.LoadBalancerArgs(
                load_balancer_type="application",
                # ELB User Guide, "Application Load Balancers", scheme: an internal load balancer's nodes have
                # only private IP addresses and its DNS name resolves to them, so it serves only clients with
                # access to the VPC. Its nodes go in the private subnets.
                internal=args.internal,
                security_groups=[self.alb_security_group.id],
                subnets=args.private_subnet_ids if args.internal else args.public_subnet_ids,
                drop_invalid_header_fields=True,
                enable_deletion_protection=args.deletion_protection,
                idle_timeout=ALB_IDLE_TIMEOUT_SECONDS,
                # ELB User Guide, "Access logs for your Application Load Balancer" (bucket: foundation/hardening.py).
                access_logs=aws.lb.LoadBalancerAccessLogsArgs(
                    bucket=args.access_logs_bucket, prefix=f"alb/{args.service}", enabled=True
                )
                if args.access_logs_bucket is not None
                else None,
            ),
            opts=pulumi.ResourceOptions(parent=self, protect=args.deletion_protection),
        )
        target_group = aws.lb.TargetGroup(f"{name}-tg", self._target_group_args(args), opts=child)
        if args.certificate_arn:
            listener = aws.lb.Listener(
                f"{name}-https",
                aws.lb.ListenerArgs(
                    load_balancer_arn=alb.arn,
                    port=443,
                    protocol="HTTPS",
                    ssl_policy=TLS_POLICY,
                    certificate_arn=args.certificate_arn,
                    default_actions=[
                        aws.lb.ListenerDefaultActionArgs(type="forward", target_group_arn=target_group.arn)
                    ],
                ),
                opts=child,
            )
            aws.lb.Listener(
                f"{name}-http-redirect",
                aws.lb.ListenerArgs(
                    load_balancer_arn=alb.arn,
                    port=80,
                    protocol="HTTP",
                    default_actions=[
                        aws.lb.ListenerDefaultActionArgs(
                            type="redirect",
                            redirect=aws.lb.ListenerDefaultActionRedirectArgs(
                                port="443", protocol="HTTPS", status_code="HTTP_301"
                            ),
                        )
                    ],
                ),
                opts=child,
            )
        else:
            pulumi.log.warn(
                f"{args.service}: no ml-delivery:certificateArn configured, so the ALB listens on plain HTTP; "
                "set an ACM certificate ARN to serve HTTPS (and redirect HTTP to it).",
                resource=self,
            )
            listener = aws.lb.Listener(
                f"{name}-http",
                aws.lb.ListenerArgs(
                    load_balancer_arn=alb.arn,
                    port=80,
                    protocol="HTTP",
                    default_actions=[
                        aws.lb.ListenerDefaultActionArgs(type="forward", target_group_arn=target_group.arn)
                    ],
                ),
                opts=child,
            )
        if args.waf_rate_limit is not None:
            WebFirewall(
                f"{name}-waf",
                WebFirewallArgs(
                    load_balancer_arn=alb.arn,
                    rate_limit_per_5_minutes=args.waf_rate_limit,
                    log_retention_days=args.log_retention_days,
                ),
                opts=child,
            )
        return alb, target_group, listener

    @property
    def serving_port(self) -> int:
        """The port clients use: 443 with a certificate (80 only redirects there), else 80."""
        return 443 if self._args.certificate_arn else 80

    def _url(self, name: str, args: ModelServiceArgs) -> pulumi.Output[str]:
        """The base URL clients use, and for an internal ALB with a certificate the DNS that makes it true.

        TLS to an internal ALB: no certificate can cover its AWS name (internal-<name>-<id>.<region>.elb.
        amazonaws.com), so the certificate (``certificateArn``, ACM, public CA) covers ``hostname`` and a Route 53
        private hosted zone of exactly that name, associated with the stack's VPC, answers it with an alias to
        the ALB (Route 53 Developer Guide, "Working with private hosted zones"; alias records to an ELB load
        balancer are supported there). Clients in the VPC (Evaluate) then verify the certificate against
        ``hostname`` with the default CA bundle; nothing outside the VPC sees the zone. Without a certificate
        (dev) the URL is HTTP: it never leaves the VPC when the ALB is internal.
        """
        if not args.certificate_arn:
            return pulumi.Output.concat("http://", self.alb.dns_name)
        if args.internal and args.hostname:
            zone = aws.route53.Zone(
                f"{name}-private-zone",
                aws.route53.ZoneArgs(
                    name=args.hostname,
                    comment=f"ml-delivery {pulumi.get_stack()} {args.service}: the internal ALB's TLS name, VPC only",
                    vpcs=[aws.route53.ZoneVpcArgs(vpc_id=args.vpc_id, vpc_region=args.region)],
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
            aws.route53.Record(
                f"{name}-alias",
                aws.route53.RecordArgs(
                    zone_id=zone.zone_id,
                    name=args.hostname,
                    type="A",
                    aliases=[
                        aws.route53.RecordAliasArgs(
                            name=self.alb.dns_name, zone_id=self.alb.zone_id, evaluate_target_health=False
                        )
                    ],
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
            return pulumi.Output.from_input(f"https://{args.hostname}")
        return pulumi.Output.concat("https://", self.alb.dns_name)

    def allow_client(self, name: str, security_group_id: pulumi.Input[str], description: str) -> None:
        """Let one security group (e.g. the Evaluate CodeBuild project's) reach the serving listener.

        A security-group-referencing rule (VPC User Guide, "Security group rules": a referenced group allows
        traffic from the network interfaces associated with it), so the client needs no CIDR and nothing else
        in the VPC gets in. It only applies to traffic from inside the VPC: an internet-facing ALB sees a
        client in the private subnets through the NAT gateways' public addresses instead.
        """
        aws.vpc.SecurityGroupIngressRule(
            f"{self._name}-alb-in-{name}",
            aws.vpc.SecurityGroupIngressRuleArgs(
                security_group_id=self.alb_security_group.id,
                ip_protocol="tcp",
                from_port=self.serving_port,
                to_port=self.serving_port,
                referenced_security_group_id=security_group_id,
                description=description,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

    @staticmethod
    def _target_group_args(args: ModelServiceArgs) -> aws.lb.TargetGroupArgs:
        """Both target groups of a service alike: ECS moves production between them on every deployment."""
        return aws.lb.TargetGroupArgs(
            port=args.container_port,
            protocol="HTTP",
            target_type="ip",  # awsvpc tasks register by IP
            vpc_id=args.vpc_id,
            deregistration_delay=30,
            health_check=aws.lb.TargetGroupHealthCheckArgs(
                path=args.health_check_path,
                matcher="200",
                interval=15,
                timeout=5,
                healthy_threshold=2,
                unhealthy_threshold=3,
            ),
        )

    def _progressive_traffic(
        self, name: str, args: ModelServiceArgs, listener: aws.lb.Listener
    ) -> list[pulumi.Resource]:
        """What CANARY / LINEAR need of an ALB (ECS Developer Guide, "Application Load Balancer resources for
        blue/green, linear, and canary deployments"): an alternate target group, a production listener rule
        forwarding to both with weights ECS shifts, and an infrastructure role allowed to shift them."""
        child = pulumi.ResourceOptions(parent=self)
        alternate = aws.lb.TargetGroup(f"{name}-tg-alt", self._target_group_args(args), opts=child)
        rule = aws.lb.ListenerRule(
            f"{name}-production-rule",
            aws.lb.ListenerRuleArgs(
                listener_arn=listener.arn,
                priority=1,
                conditions=[
                    aws.lb.ListenerRuleConditionArgs(
                        path_pattern=aws.lb.ListenerRuleConditionPathPatternArgs(values=["/*"])
                    )
                ],
                actions=[
                    aws.lb.ListenerRuleActionArgs(
                        type="forward",
                        forward=aws.lb.ListenerRuleActionForwardArgs(
                            target_groups=[
                                aws.lb.ListenerRuleActionForwardTargetGroupArgs(arn=self.target_group.arn, weight=100),
                                aws.lb.ListenerRuleActionForwardTargetGroupArgs(arn=alternate.arn, weight=0),
                            ]
                        ),
                    )
                ],
            ),
            # ECS rewrites the weights during every deployment and leaves production on whichever target group
            # won; a `pulumi up` must not swing traffic back (ELB ModifyRule by the infrastructure role).
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["actions"]),
        )
        target_groups = [self.target_group.arn, alternate.arn]
        # Least privilege instead of the managed AmazonECSInfrastructureRolePolicyForLoadBalancers (which allows
        # every listener, rule and target group of the account): the same actions on this service's own ALB
        # pieces. The Describe* calls support no resource-level permissions (Service Authorization Reference,
        # Elastic Load Balancing V2), hence "*" (policy/exceptions.yaml).
        role, policy = iam.role_with_policy(
            f"{name}-ecs-lb-role",
            service="ecs.amazonaws.com",
            account_id=args.account_id,
            statements=[
                iam.allow(["elasticloadbalancing:DescribeListeners", "elasticloadbalancing:DescribeRules",
                           "elasticloadbalancing:DescribeTargetGroups", "elasticloadbalancing:DescribeTargetHealth"],
                          ["*"], sid="ReadLoadBalancer"),
                iam.allow(["elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets"],
                          target_groups, sid="RegisterTasks"),
                iam.allow(["elasticloadbalancing:ModifyListener"], [listener.arn], sid="ModifyProductionListener"),
                iam.allow(["elasticloadbalancing:ModifyRule"], [rule.arn], sid="ShiftProductionTraffic"),
            ],
            parent=self,
            description=f"ECS infrastructure role: shifts {args.service} traffic between its two target groups",
        )  # fmt: skip
        self.alternate_target_group, self.production_rule, self.load_balancer_role = alternate, rule, role
        return [rule, policy]

    # --- service ------------------------------------------------------------------------------------
    def _deployment_configuration(self, args: ModelServiceArgs) -> aws.ecs.ServiceDeploymentConfigurationArgs:
        policy = args.deployment
        if policy.strategy == "ROLLING":
            return aws.ecs.ServiceDeploymentConfigurationArgs(strategy="ROLLING")
        return aws.ecs.ServiceDeploymentConfigurationArgs(
            strategy=policy.strategy,
            # After 100 % of traffic has shifted, the old revision keeps running this long, and the alarms
            # can still roll back to it instantly (ECS Developer Guide, "deployment bake time").
            bake_time_in_minutes=str(policy.bake_minutes),
            canary_configuration=aws.ecs.ServiceDeploymentConfigurationCanaryConfigurationArgs(
                canary_percent=policy.canary_percent, canary_bake_time_in_minutes=str(policy.canary_bake_minutes)
            )
            if policy.strategy == "CANARY"
            else None,
            linear_configuration=aws.ecs.ServiceDeploymentConfigurationLinearConfigurationArgs(
                step_percent=policy.linear_step_percent,
                step_bake_time_in_minutes=str(policy.linear_step_bake_minutes),
            )
            if policy.strategy == "LINEAR"
            else None,
        )

    def _service(self, name: str, args: ModelServiceArgs, traffic_ready: list[pulumi.Resource]) -> aws.ecs.Service:
        advanced = None
        if args.deployment.progressive:
            assert self.alternate_target_group and self.production_rule and self.load_balancer_role
            advanced = aws.ecs.ServiceLoadBalancerAdvancedConfigurationArgs(
                alternate_target_group_arn=self.alternate_target_group.arn,
                production_listener_rule=self.production_rule.arn,
                role_arn=self.load_balancer_role.arn,
            )
        # desiredCount: Application Auto Scaling owns it after creation. loadBalancers (progressive only): ECS
        # records which target group is production after each deployment; re-sending the declared one with a
        # Pulumi-triggered update keeps ECS from alternating (hashicorp/terraform-provider-aws#45678).
        ignored = ["desiredCount"] + (["loadBalancers"] if args.deployment.progressive else [])
        return aws.ecs.Service(
            f"{name}-service",
            aws.ecs.ServiceArgs(
                cluster=self.cluster.arn,
                task_definition=self.task_definition.arn,
                desired_count=args.sizing.desired_count,
                launch_type="FARGATE",
                platform_version="LATEST",
                network_configuration=aws.ecs.ServiceNetworkConfigurationArgs(
                    subnets=args.private_subnet_ids,
                    security_groups=[self.task_security_group.id],
                    assign_public_ip=False,
                ),
                load_balancers=[
                    aws.ecs.ServiceLoadBalancerArgs(
                        target_group_arn=self.target_group.arn,
                        container_name=args.container_name,
                        container_port=args.container_port,
                        advanced_configuration=advanced,
                    )
                ],
                deployment_controller=aws.ecs.ServiceDeploymentControllerArgs(type="ECS"),
                deployment_configuration=self._deployment_configuration(args),
                # The deployment fails and rolls back when one of these alarms goes to ALARM while it runs,
                # including the bake times (ECS Developer Guide, "How CloudWatch alarms detect Amazon ECS
                # deployment failures").
                alarms=aws.ecs.ServiceAlarmsArgs(
                    alarm_names=[alarm.name for alarm in self.deployment_alarms], enable=True, rollback=True
                ),
                # A deployment whose tasks never turn healthy is stopped and rolled back to the last
                # good one (ECS Developer Guide, "deployment circuit breaker").
                deployment_circuit_breaker=aws.ecs.ServiceDeploymentCircuitBreakerArgs(enable=True, rollback=True),
                deployment_minimum_healthy_percent=100,
                deployment_maximum_percent=200,
                health_check_grace_period_seconds=60,
                availability_zone_rebalancing="ENABLED",
                propagate_tags="SERVICE",
                enable_ecs_managed_tags=True,
                enable_execute_command=False,
                wait_for_steady_state=False,
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=traffic_ready, ignore_changes=ignored),
        )

    def _autoscaling(self, name: str, args: ModelServiceArgs) -> None:
        target = aws.appautoscaling.Target(
            f"{name}-scaling-target",
            aws.appautoscaling.TargetArgs(
                service_namespace="ecs",
                scalable_dimension="ecs:service:DesiredCount",
                resource_id=pulumi.Output.concat("service/", self.cluster.name, "/", self.service.name),
                min_capacity=args.sizing.desired_count,
                max_capacity=args.sizing.max_count,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.appautoscaling.Policy(
            f"{name}-cpu-tracking",
            aws.appautoscaling.PolicyArgs(
                policy_type="TargetTrackingScaling",
                service_namespace=target.service_namespace,
                scalable_dimension=target.scalable_dimension,
                resource_id=target.resource_id,
                target_tracking_scaling_policy_configuration=aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationArgs(
                    target_value=float(args.sizing.cpu_target_percent),
                    predefined_metric_specification=aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationPredefinedMetricSpecificationArgs(
                        predefined_metric_type="ECSServiceAverageCPUUtilization"
                    ),
                    scale_in_cooldown=300,
                    scale_out_cooldown=60,
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _alarms(self, name: str, args: ModelServiceArgs) -> list[aws.cloudwatch.MetricAlarm]:
        """The service's alarms; the returned ones also roll a deployment back (``alarms`` on the service).

        5xx and p99 are per load balancer, not per target group: during a canary the new revision serves
        from the alternate target group, and ECS swaps the two on every deployment.
        """
        # Keyword arguments shared by MetricAlarmArgs of mixed types: Any, as the generated Args class types each.
        common: dict[str, Any] = {
            "alarm_actions": [args.alerts_topic_arn],
            "ok_actions": [args.alerts_topic_arn],
            "treat_missing_data": "notBreaching",
        }
        elb: dict[str, Any] = {
            "namespace": "AWS/ApplicationELB",
            "dimensions": {"LoadBalancer": self.alb.arn_suffix},
            **common,
        }
        where = f"ECS service logs /ml-delivery/{pulumi.get_stack()}/{args.service}"
        rollback = (
            " During a deployment this alarm rolls it back (ECS service events say which)."
            if args.deployment.progressive
            else ""
        )
        deployment_alarms = {
            "5xx": aws.cloudwatch.MetricAlarmArgs(
                alarm_description=f"{args.service}: the app answered {args.alarm_5xx_threshold}+ 5xx in 5 minutes. "
                f"Where to look: {where}; a bad model or release rolls back through the pipeline.{rollback}",
                metric_name="HTTPCode_Target_5XX_Count",
                statistic="Sum",
                period=300,
                evaluation_periods=1,
                threshold=float(args.alarm_5xx_threshold),
                comparison_operator="GreaterThanOrEqualToThreshold",
                **elb,
            ),
            "p99-latency": aws.cloudwatch.MetricAlarmArgs(
                alarm_description=f"{args.service}: p99 response time above {args.alarm_p99_latency_ms} ms for "
                f"3 minutes. Where to look: {where}, ECS CPU, the batch metrics on /metrics.{rollback}",
                metric_name="TargetResponseTime",
                extended_statistic="p99",
                period=60,
                evaluation_periods=3,
                threshold=args.alarm_p99_latency_ms / 1000.0,
                comparison_operator="GreaterThanThreshold",
                **elb,
            ),
            "score-shift": aws.cloudwatch.MetricAlarmArgs(
                alarm_description=f"{args.service}: a task's mean predicted probability moved more than "
                f"{args.alarm_score_shift} from the model package's baseline for 3 minutes running (metric "
                f"{prediction_metrics.NAMESPACE}/{prediction_metrics.SCORE_SHIFT_METRIC}, property "
                f"{prediction_metrics.MODEL_VERSION_PROPERTY} in {where} says which "
                f"model). A model that answers badly, not a crashing one.{rollback}",
                namespace=prediction_metrics.NAMESPACE,
                metric_name=prediction_metrics.SCORE_SHIFT_METRIC,
                # The value the app writes from SERVICE_NAME_ENV, which the task definition sets to the same.
                dimensions={prediction_metrics.SERVICE_DIMENSION: self.metrics_service_name},
                statistic="Maximum",
                period=60,
                evaluation_periods=3,
                datapoints_to_alarm=3,
                threshold=args.alarm_score_shift,
                comparison_operator="GreaterThanThreshold",
                **common,
            ),
        }
        created = [
            aws.cloudwatch.MetricAlarm(f"{name}-{suffix}", alarm_args, opts=pulumi.ResourceOptions(parent=self))
            for suffix, alarm_args in deployment_alarms.items()
        ]
        target_groups = {"": self.target_group}
        if self.alternate_target_group is not None:
            target_groups["-alt"] = self.alternate_target_group
        for suffix, group in target_groups.items():
            aws.cloudwatch.MetricAlarm(
                f"{name}-unhealthy-hosts{suffix}",
                aws.cloudwatch.MetricAlarmArgs(
                    alarm_description=f"{args.service}: at least one task failing its health check for 3 minutes. "
                    f"Where to look: {where} and the ECS service events.",
                    namespace="AWS/ApplicationELB",
                    dimensions={"LoadBalancer": self.alb.arn_suffix, "TargetGroup": group.arn_suffix},
                    metric_name="UnHealthyHostCount",
                    statistic="Maximum",
                    period=60,
                    evaluation_periods=3,
                    threshold=1.0,
                    comparison_operator="GreaterThanOrEqualToThreshold",
                    **common,
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
        return created

    def _capture_alarms(self, name: str, args: ModelServiceArgs) -> None:
        """Alarms on the app's capture health, which reaches CloudWatch as EMF log lines (app/capture_contract.py).

        Only the S3 sink is configured in the task (no CAPTURE_DB_URL), so only it is alarmed. Missing data is
        not breaching: a task that stopped logging is the unhealthy-hosts alarm's business.
        """
        where = f"ECS service logs /ml-delivery/{pulumi.get_stack()}/{args.service} (search 'capture')"
        common: _CaptureAlarmCommon = {
            "namespace": capture_contract.EMF_NAMESPACE,
            "dimensions": {"Service": args.service, "Sink": "s3"},
            "alarm_actions": [args.alerts_topic_arn],
            "ok_actions": [args.alerts_topic_arn],
            "treat_missing_data": "notBreaching",
            "period": capture_contract.EMF_PERIOD_SECONDS * 5,
            "evaluation_periods": 1,
        }
        lost = "Records are being lost"
        alarms = {
            "capture-oldest-unsent": (
                capture_contract.OLDEST_UNSENT,
                "Maximum",
                float(CAPTURE_OLDEST_UNSENT_ALARM_SECONDS),
                "GreaterThanThreshold",
                f"captured predictions older than {CAPTURE_OLDEST_UNSENT_ALARM_SECONDS} s are not in S3 yet "
                "(sink down or hung; they wait in the spool)",
            ),
            "capture-dropped": (
                capture_contract.DROPPED,
                "Sum",
                0.0,
                "GreaterThanThreshold",
                f"{lost}: the spool is full (overflow policy) or not writable",
            ),
            "capture-quarantined": (
                capture_contract.QUARANTINED,
                "Sum",
                0.0,
                "GreaterThanThreshold",
                "records were set aside in the spool's quarantine (corrupt segment or rejected by S3)",
            ),
            "capture-spool-errors": (
                capture_contract.SPOOL_WRITE_ERRORS,
                "Sum",
                0.0,
                "GreaterThanThreshold",
                "spool writes fail (disk full or I/O errors); records wait in memory and a kill loses them",
            ),
        }
        for suffix, (metric, statistic, threshold, comparison, what) in alarms.items():
            aws.cloudwatch.MetricAlarm(
                f"{name}-{suffix}",
                aws.cloudwatch.MetricAlarmArgs(
                    alarm_description=f"{args.service}: {what}. Where to look: {where}; docs/app.md, "
                    "'Durability contract'.",
                    metric_name=metric,
                    statistic=statistic,
                    threshold=threshold,
                    comparison_operator=comparison,
                    **common,
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
