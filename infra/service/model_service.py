"""One serving environment (stage or prod): the same component used twice, never copied.

ECS on Fargate behind an ALB. Tasks run in private subnets with no public IP and accept traffic only
from the ALB; the ALB accepts only the configured CIDRs. The pipeline owns task definition revisions
after the first deploy, so Pulumi ignores changes to the service's task definition.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypedDict

import pulumi
import pulumi_aws as aws

from app import capture_contract
from infra.foundation.hardening import BOOTSTRAP_IMAGE, BOOTSTRAP_SERVER, WebFirewall, WebFirewallArgs
from infra.jobs.jobs_spec import runtime_settings_parameter
from infra.lib import iam
from model_package.capture_privacy import HASH_KEY_ENV as CAPTURE_HASH_KEY_ENV

# ALB security policy with TLS 1.3 and 1.2 only (ELB User Guide, "Security policies for your ALB").
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
# The task's ephemeral storage (Fargate: 21-200 GiB, https://docs.aws.amazon.com/AWSCloudFormation/latest/
# UserGuide/aws-properties-ecs-taskdefinition-ephemeralstorage.html) and the part of it the capture spool may
# fill. One place: the task definition's size and the app's CAPTURE_SPOOL_MAX_BYTES both derive from these.
EPHEMERAL_STORAGE_GIB = 30
CAPTURE_SPOOL_BUDGET_GIB = 20  # the rest holds the image layers and temp files
# Alarm when a sink's oldest unsent record is older than this (the app's /ready default is 300 s).
CAPTURE_OLDEST_UNSENT_ALARM_SECONDS = 900


def capture_environment(workers: int) -> dict[str, str]:
    """The app's capture durability settings for one task: spool cap per worker, EMF health lines on."""
    return {
        "CAPTURE_SPOOL_MAX_BYTES": str(CAPTURE_SPOOL_BUDGET_GIB * (1 << 30) // max(1, workers)),
        "CAPTURE_SPOOL_OVERFLOW": "drop_oldest",
        "CAPTURE_EMF_SECONDS": str(capture_contract.EMF_PERIOD_SECONDS),
    }


# Every key of app.runtime_settings.RuntimeSettings with its default (tests/app/test_settings.py checks they
# agree). The three violation policies start strict ("reject"); docs/app.md "Serving policies" lists the
# lenient values (unknown_category: missing, extra_feature: ignore, unexpected_null: impute).
# capture_policy: feature -> keep|hash|drop (docs/app.md "Capture privacy"); empty = keep every feature.
RUNTIME_SETTINGS_DEFAULTS = {
    "decision_threshold": 0.5,
    "out_of_range": "warn",
    "unknown_category": "reject",
    "extra_feature": "reject",
    "unexpected_null": "reject",
    "capture_enabled": True,
    "capture_policy": {},
}


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
        self.execution_role, self.task_role = self._roles(name, args)
        self.task_definition = self._task_definition(name, args)
        self.alb, self.target_group, listener = self._load_balancer(name, args)
        self.service = self._service(name, args, listener)
        self._autoscaling(name, args)
        self._alarms(name, args)
        self._capture_alarms(name, args)

        scheme = "https" if args.certificate_arn else "http"
        self.url = pulumi.Output.concat(scheme, "://", self.alb.dns_name)
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
        capture_objects = pulumi.Output.concat(args.capture_bucket_arn, f"/capture/{args.service}/*")
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
        self, capture_bucket: str, log_group: str, sentry_arn: str | None, capture_key_arn: str | None = None
    ) -> str:
        """The one container, as ECS RegisterTaskDefinition expects it (tests validate it with botocore)."""
        args = self._args
        workers = max(1, args.sizing.cpu // 1024)
        environment = {
            **capture_environment(workers),
            "SERVICE_NAME": args.service,
            "PORT": str(args.container_port),
            "WORKERS": str(workers),
            "MODEL_DIR": "/opt/model",
            "CAPTURE_S3_URI": f"s3://{capture_bucket}/capture/{args.service}",
            "SPOOL_DIR": "/tmp/capture-spool",  # noqa: S108 - the task's private ephemeral volume
            "SETTINGS_SOURCE": f"ssm:{runtime_settings_parameter(pulumi.get_stack(), args.service)}",
            "SETTINGS_REFRESH_SECONDS": "30",
            "AWS_REGION": args.region,
            "LOG_LEVEL": "INFO",
        }
        if "whoami" in args.bootstrap_image:
            # Only for the bootstrap image, which listens on 80 unless told otherwise.
            environment["WHOAMI_PORT_NUMBER"] = str(args.container_port)
        container: dict[str, object] = {
            "name": args.container_name,
            "image": args.bootstrap_image,
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
        if args.bootstrap_image == BOOTSTRAP_IMAGE:
            container["command"] = ["python", "-c", BOOTSTRAP_SERVER]
        secrets = [{"name": "SENTRY_DSN", "valueFrom": sentry_arn}] if sentry_arn is not None else []
        if capture_key_arn is not None:
            secrets.append({"name": CAPTURE_HASH_KEY_ENV, "valueFrom": capture_key_arn})
        if secrets:
            container["secrets"] = secrets
        return json.dumps([container], sort_keys=True)

    def _task_definition(self, name: str, args: ModelServiceArgs) -> aws.ecs.TaskDefinition:
        definitions = pulumi.Output.all(
            args.capture_bucket_name, self.log_group.name, args.sentry_secret_arn, args.capture_key_secret_arn
        ).apply(lambda v: self.container_definitions(v[0], v[1], v[2], v[3]))
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
                internal=False,
                security_groups=[self.alb_security_group.id],
                subnets=args.public_subnet_ids,
                drop_invalid_header_fields=True,
                enable_deletion_protection=args.deletion_protection,
                idle_timeout=60,
                # ELB User Guide, "Access logs for your Application Load Balancer" (bucket: foundation/hardening.py).
                access_logs=aws.lb.LoadBalancerAccessLogsArgs(
                    bucket=args.access_logs_bucket, prefix=f"alb/{args.service}", enabled=True
                )
                if args.access_logs_bucket is not None
                else None,
            ),
            opts=pulumi.ResourceOptions(parent=self, protect=args.deletion_protection),
        )
        target_group = aws.lb.TargetGroup(
            f"{name}-tg",
            aws.lb.TargetGroupArgs(
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
            ),
            opts=child,
        )
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

    # --- service ------------------------------------------------------------------------------------
    def _service(self, name: str, args: ModelServiceArgs, listener: aws.lb.Listener) -> aws.ecs.Service:
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
                    )
                ],
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
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[listener],
                # After the first deploy the pipeline's ECS deploy action registers the task definition
                # revisions (new image per release) and autoscaling owns the desired count; a `pulumi up`
                # must not roll either back.
                ignore_changes=["taskDefinition", "desiredCount"],
            ),
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

    def _alarms(self, name: str, args: ModelServiceArgs) -> None:
        dimensions = {"LoadBalancer": self.alb.arn_suffix, "TargetGroup": self.target_group.arn_suffix}
        common: _AlarmTarget = {
            "namespace": "AWS/ApplicationELB",
            "alarm_actions": [args.alerts_topic_arn],
            "ok_actions": [args.alerts_topic_arn],
            "treat_missing_data": "notBreaching",
            "dimensions": dimensions,
        }
        where = f"ECS service logs /ml-delivery/{pulumi.get_stack()}/{args.service}"
        alarms = {
            "5xx": aws.cloudwatch.MetricAlarmArgs(
                alarm_description=f"{args.service}: the app answered {args.alarm_5xx_threshold}+ 5xx in 5 minutes. "
                f"Where to look: {where}; a bad model or release rolls back through the pipeline.",
                metric_name="HTTPCode_Target_5XX_Count",
                statistic="Sum",
                period=300,
                evaluation_periods=1,
                threshold=float(args.alarm_5xx_threshold),
                comparison_operator="GreaterThanOrEqualToThreshold",
                **common,
            ),
            "p99-latency": aws.cloudwatch.MetricAlarmArgs(
                alarm_description=f"{args.service}: p99 response time above {args.alarm_p99_latency_ms} ms for "
                f"3 minutes. Where to look: {where}, ECS CPU, the batch metrics on /metrics.",
                metric_name="TargetResponseTime",
                extended_statistic="p99",
                period=60,
                evaluation_periods=3,
                threshold=args.alarm_p99_latency_ms / 1000.0,
                comparison_operator="GreaterThanThreshold",
                **common,
            ),
            "unhealthy-hosts": aws.cloudwatch.MetricAlarmArgs(
                alarm_description=f"{args.service}: at least one task failing its health check for 3 minutes. "
                f"Where to look: {where} and the ECS service events.",
                metric_name="UnHealthyHostCount",
                statistic="Maximum",
                period=60,
                evaluation_periods=3,
                threshold=1.0,
                comparison_operator="GreaterThanOrEqualToThreshold",
                **common,
            ),
        }
        for suffix, alarm_args in alarms.items():
            aws.cloudwatch.MetricAlarm(f"{name}-{suffix}", alarm_args, opts=pulumi.ResourceOptions(parent=self))

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
