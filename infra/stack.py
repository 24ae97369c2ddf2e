"""Wires the components into one stack. Reads config once, declares, exports; no logic of its own."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra.foundation.encryption import DataKey, DataKeyArgs
from infra.foundation.hardening import (
    AccessLogs,
    AccessLogsArgs,
    EventDelivery,
    EventDeliveryArgs,
    empty_default_security_group,
    register_encryption_at_rest,
)
from infra.foundation.network import Network, NetworkArgs
from infra.foundation.storage import Buckets, BucketsArgs
from infra.jobs.jobs import BatchJobs, BatchJobsArgs
from infra.jobs.jobs_spec import JobsConfig, runtime_settings_parameter
from infra.lib.stack_types import Account, Platform
from infra.lib.tagging import register_required_tags
from infra.observability.alerts import Alerts, AlertsArgs
from infra.observability.observability import Observability, ObservabilityArgs, ServiceDimensions
from infra.pipeline.pipeline import (
    DeliveryPipeline,
    DeliveryPipelineArgs,
    DeployTarget,
    PipelineConfig,
    ReleasedJobs,
)
from infra.pipeline.registry import Registry, RegistryArgs
from infra.service.model_service import DeploymentPolicy, ModelService, ModelServiceArgs, ServiceSizing
from infra.settings import StackSettings, capture_hash_key, load_settings, sentry_dsn


def build_platform(settings: StackSettings, account: Account) -> Platform:
    if len(account.availability_zones) < settings.az_count:
        raise ValueError(
            f"ml-delivery:azCount = {settings.az_count} but region {account.region} offers only "
            f"{len(account.availability_zones)} available AZs: {account.availability_zones}"
        )
    data_key = DataKey(
        "data",
        DataKeyArgs(
            account_id=account.account_id,
            partition=account.partition,
            deletion_window_days=30 if settings.is_prod else 7,
            region=account.region,
        ),
    )
    # Every log group, schedule and ECR repository declared from here on is on the stack key (issue #17).
    register_encryption_at_rest(data_key.arn)
    network = Network(
        "network",
        NetworkArgs(
            cidr=settings.vpc_cidr,
            availability_zones=account.availability_zones[: settings.az_count],
            nat_gateways=settings.nat_gateways,
            log_retention_days=settings.log_retention_days,
            region=account.region,
            account_id=account.account_id,
        ),
    )
    empty_default_security_group("network", network.vpc_id, network)
    access_logs = AccessLogs(
        "access-logs",
        AccessLogsArgs(
            account_id=account.account_id,
            partition=account.partition,
            protect=settings.deletion_protection,
            region=account.region,
        ),
    )
    buckets = Buckets(
        "buckets",
        BucketsArgs(
            kms_key_arn=data_key.arn,
            capture_retention_days=settings.capture_retention_days,
            artifact_retention_days=settings.artifact_retention_days,
            protect=settings.deletion_protection,
        ),
    )
    for purpose, secure_bucket in (("artifacts", buckets.artifacts), ("models", buckets.models),
                                   ("capture", buckets.capture)):  # fmt: skip
        access_logs.log_bucket(f"buckets-{purpose}", secure_bucket.bucket, secure_bucket)
    registry = Registry(
        "registry",
        RegistryArgs(
            image_retention_count=settings.image_retention_count,
            force_delete=not settings.deletion_protection,
            release_keep_count=settings.release_keep_count,
            base_image_source=settings.base_image_source,
            account_id=account.account_id,
            region=account.region,
        ),
    )
    alerts = Alerts(
        "alerts",
        AlertsArgs(
            kms_key_arn=data_key.arn,
            account_id=account.account_id,
            emails=settings.alert_emails,
            sms_numbers=settings.alert_sms_numbers,
        ),
    )
    # Every EventBridge target declared from here on gets a dead-letter queue; every rule an alarm (issue #17).
    event_delivery = EventDelivery(
        "events",
        EventDeliveryArgs(
            account_id=account.account_id,
            region=account.region,
            partition=account.partition,
            alerts_topic_arn=alerts.topic_arn,
        ),
    )
    event_delivery.register()
    dsn = sentry_dsn()
    sentry_secret = None
    if dsn is not None:
        sentry_secret = aws.secretsmanager.Secret(
            "sentry-dsn", aws.secretsmanager.SecretArgs(description="Sentry DSN for the serving app")
        )
        aws.secretsmanager.SecretVersion(
            "sentry-dsn-value",
            aws.secretsmanager.SecretVersionArgs(secret_id=sentry_secret.id, secret_string=dsn),
            opts=pulumi.ResourceOptions(parent=sentry_secret),
        )
    return Platform(settings, account, data_key, network, buckets, registry, alerts, sentry_secret,
                    _capture_key_secret(), access_logs, event_delivery)  # fmt: skip


def _capture_key_secret() -> aws.secretsmanager.Secret | None:
    """The capture privacy HMAC key (docs/app.md "Capture privacy"), from the secret config captureHashKey.

    pulumi_random is not available, so the value is an operator-set Pulumi secret (encrypted in the stack
    state and plan) written to Secrets Manager; ECS injects it as CAPTURE_HASH_KEY through the task
    definition's ``secrets`` (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/secrets-envvar-secrets-manager.html).
    Encrypted with the account's aws/secretsmanager key, like the Sentry DSN, so no KMS grant is needed.
    """
    key = capture_hash_key()
    if key is None:
        return None
    secret = aws.secretsmanager.Secret(
        "capture-hash-key", aws.secretsmanager.SecretArgs(description="HMAC key of capture privacy (hash policy)")
    )
    aws.secretsmanager.SecretVersion(
        "capture-hash-key-value",
        aws.secretsmanager.SecretVersionArgs(secret_id=secret.id, secret_string=key),
        opts=pulumi.ResourceOptions(parent=secret),
    )
    return secret


def build_service(platform: Platform, service: str) -> ModelService:
    settings = platform.settings
    desired, maximum = (
        (settings.stage_desired_count, settings.stage_max_count)
        if service == "stage"
        else (settings.prod_desired_count, settings.prod_max_count)
    )
    return ModelService(
        service,
        ModelServiceArgs(
            service=service,  # type: ignore[arg-type]
            sizing=ServiceSizing(
                cpu=settings.task_cpu,
                memory=settings.task_memory,
                desired_count=desired,
                max_count=maximum,
                cpu_target_percent=settings.cpu_target_percent,
            ),
            container_name=settings.container_name,
            container_port=settings.container_port,
            health_check_path=settings.health_check_path,
            bootstrap_image=settings.bootstrap_image,
            ingress_cidrs=settings.ingress_cidrs,
            certificate_arn=settings.certificate_arn,
            deletion_protection=settings.deletion_protection,
            log_retention_days=settings.log_retention_days,
            alarm_5xx_threshold=settings.alarm_5xx_threshold,
            alarm_p99_latency_ms=settings.alarm_p99_latency_ms,
            # Stage rolls (it is the first to get a candidate anyway); prod shifts traffic by the stack key.
            deployment=DeploymentPolicy(
                strategy="ROLLING" if service == "stage" else settings.prod_deployment_strategy,
                canary_percent=settings.canary_percent,
                canary_bake_minutes=settings.canary_bake_minutes,
                linear_step_percent=settings.linear_step_percent,
                linear_step_bake_minutes=settings.linear_step_bake_minutes,
                bake_minutes=settings.deployment_bake_minutes,
            ),
            alarm_score_shift=settings.alarm_score_shift,
            vpc_id=platform.network.vpc_id,
            public_subnet_ids=platform.network.public_subnet_ids,
            private_subnet_ids=platform.network.private_subnet_ids,
            alerts_topic_arn=platform.alerts.topic_arn,
            capture_bucket_name=platform.buckets.capture.name,
            capture_bucket_arn=platform.buckets.capture.arn,
            data_key_grant=platform.data_key.grant(),
            app_repository_arn=platform.registry.app.arn,
            sentry_secret_arn=platform.sentry_secret.arn if platform.sentry_secret else None,
            capture_key_secret_arn=platform.capture_key_secret.arn if platform.capture_key_secret else None,
            account_id=platform.account.account_id,
            region=platform.account.region,
            access_logs_bucket=platform.access_logs.name,
            waf_rate_limit=settings.waf_rate_limit if settings.waf else None,
            internal=service == "stage" and settings.internal_stage,
            hostname=settings.stage_hostname if service == "stage" else None,
            data_key_arn=platform.data_key.arn,
        ),
    )


def jobs_config(settings: StackSettings) -> JobsConfig:
    """The settings the Batch jobs use, as plain values under the same names."""
    return JobsConfig(
        log_retention_days=settings.log_retention_days,
        jobs_image_tag=settings.jobs_image_tag,
        schedule_timezone=settings.schedule_timezone,
        retrain_schedule=settings.retrain_schedule,
        drift_schedule=settings.drift_schedule,
        summary_schedule=settings.summary_schedule,
        retrain_vcpu=settings.retrain_vcpu,
        retrain_memory_mib=settings.retrain_memory_mib,
        retrain_timeout_minutes=settings.retrain_timeout_minutes,
        jobs_vcpu=settings.jobs_vcpu,
        jobs_memory_mib=settings.jobs_memory_mib,
        training_data_prefix=settings.training_data_prefix,
        model_key=settings.model_key,
        gate_metric=settings.gate_metric,
        gate_tolerance=settings.gate_tolerance,
        gate_floor=settings.gate_floor,
        min_training_rows=settings.min_training_rows,
        alert_window_minutes=settings.alert_window_minutes,
        drift_retrain_enabled=settings.drift_retrain_enabled,
        summary_min_count=settings.summary_min_count,
    )


def build_jobs(platform: Platform) -> BatchJobs:
    return BatchJobs(
        "jobs",
        BatchJobsArgs(
            config=jobs_config(platform.settings),
            account_id=platform.account.account_id,
            region=platform.account.region,
            vpc_id=platform.network.vpc_id,
            private_subnet_ids=platform.network.private_subnet_ids,
            model_bucket_name=platform.buckets.models.name,
            model_bucket_arn=platform.buckets.models.arn,
            capture_bucket_name=platform.buckets.capture.name,
            capture_bucket_arn=platform.buckets.capture.arn,
            jobs_repository_url=platform.registry.jobs.repository_url,
            jobs_repository_arn=platform.registry.jobs.arn,
            alerts_topic_arn=platform.alerts.topic_arn,
            data_key_grant=platform.data_key.grant(),
            capture_key_secret_arn=platform.capture_key_secret.arn if platform.capture_key_secret else None,
            runtime_settings_arn=pulumi.Output.concat(
                "arn:",
                platform.account.partition,
                ":ssm:",
                platform.account.region,
                ":",
                platform.account.account_id,
                ":parameter",
                runtime_settings_parameter(pulumi.get_stack(), "prod"),
            ),
        ),
    )


def deploy_target(service: ModelService) -> DeployTarget:
    return DeployTarget(
        cluster_name=service.cluster_name,
        service_name=service.service_name,
        task_family=service.task_definition.family,
        task_role_arn=service.task_role.arn,
        execution_role_arn=service.execution_role.arn,
        url=service.url,
        deployed_image_parameter_arn=service.deployed_image_parameter.arn,
        allow_client=service.allow_client,
    )


def released_jobs(jobs: BatchJobs) -> ReleasedJobs:
    definitions = [jobs.job_definitions[k] for k in sorted(jobs.job_definitions)]
    return ReleasedJobs(
        definition_names=[d.name for d in definitions],
        definition_arn_prefixes=[d.arn_prefix for d in definitions],
        passable_role_arns=list(jobs.passable_role_arns),
        schedule_refs=list(jobs.schedules.refs),
        schedule_arns=list(jobs.schedules.arns),
        schedule_role_arns=list(jobs.schedules.role_arns),
    )


def pipeline_config(settings: StackSettings, stack: str) -> PipelineConfig:
    """The settings the delivery pipeline uses, as plain values under the same names; the CodeCommit repository's
    name resolved for ``stack`` (the ``repositoryName`` key, or the per-stack default)."""
    return PipelineConfig(
        repository_name=settings.repository_name_for(stack),
        source_provider=settings.source_provider,
        branch=settings.branch,
        connection_arn=settings.connection_arn,
        full_repository_id=settings.full_repository_id,
        deletion_protection=settings.deletion_protection,
        internal_stage=settings.internal_stage,
        log_retention_days=settings.log_retention_days,
        build_compute_type=settings.build_compute_type,
        build_timeout_minutes=settings.build_timeout_minutes,
        container_name=settings.container_name,
        model_key=settings.model_key,
        training_data_prefix=settings.training_data_prefix,
        gate_metric=settings.gate_metric,
        gate_tolerance=settings.gate_tolerance,
        gate_floor=settings.gate_floor,
        evaluation_min_agreement=settings.evaluation_min_agreement,
        evaluation_max_score_psi=settings.evaluation_max_score_psi,
        evaluation_max_segment_shift=settings.evaluation_max_segment_shift,
        evaluation_max_stage_difference=settings.evaluation_max_stage_difference,
        evaluation_max_p99_latency_ms=settings.evaluation_max_p99_latency_ms,
        evaluation_replay_sample_size=settings.evaluation_replay_sample_size,
        evaluation_replay_window_hours=settings.evaluation_replay_window_hours,
        evaluation_smoke_requests=settings.evaluation_smoke_requests,
        evaluation_timeout_minutes=settings.evaluation_timeout_minutes,
        approval_timeout_minutes=settings.approval_timeout_minutes,
    )


def pipeline_args(
    platform: Platform, stage: ModelService, prod: ModelService, jobs: ReleasedJobs
) -> DeliveryPipelineArgs:
    return DeliveryPipelineArgs(
        config=pipeline_config(platform.settings, pulumi.get_stack()),
        account=platform.account,
        vpc_id=platform.network.vpc_id,
        private_subnet_ids=platform.network.private_subnet_ids,
        artifact_bucket_name=platform.buckets.artifacts.name,
        artifact_bucket_arn=platform.buckets.artifacts.arn,
        model_bucket_name=platform.buckets.models.name,
        model_bucket_arn=platform.buckets.models.arn,
        capture_bucket_name=platform.buckets.capture.name,
        capture_bucket_arn=platform.buckets.capture.arn,
        data_key_arn=platform.data_key.arn,
        data_key_grant=platform.data_key.grant(),
        alerts_topic_arn=platform.alerts.topic_arn,
        alerts_publish_grant=platform.alerts.publish_grant(),
        app_repository_url=platform.registry.app.repository_url,
        app_repository_arn=platform.registry.app.arn,
        jobs_repository_url=platform.registry.jobs.repository_url,
        jobs_repository_arn=platform.registry.jobs.arn,
        stage=deploy_target(stage),
        prod=deploy_target(prod),
        jobs=jobs,
        build_environment=platform.registry.build_environment(),
        build_statements=platform.registry.build_statements(),
    )


def service_dimensions(service: ModelService) -> ServiceDimensions:
    return ServiceDimensions(
        load_balancer=service.alb.arn_suffix,
        target_group=service.target_group.arn_suffix,
        cluster=service.cluster_name,
        ecs_service=service.service_name,
    )


def observability_args(
    platform: Platform, stage: ModelService, prod: ModelService, jobs: BatchJobs
) -> ObservabilityArgs:
    return ObservabilityArgs(
        region=platform.account.region,
        deletion_protection=platform.settings.deletion_protection,
        capture_retention_days=platform.settings.capture_retention_days,
        capture_bucket_name=platform.buckets.capture.name,
        data_key_arn=platform.data_key.arn,
        alerts_topic_name=platform.alerts.topic.name,
        alerts_topic_arn=platform.alerts.topic_arn,
        stage=service_dimensions(stage),
        prod=service_dimensions(prod),
        job_queue_arn=jobs.job_queue.arn,
        jobs_log_group_name=jobs.log_group.name,
        schedules_dead_letter_queue_name=jobs.schedules.dead_letter_queue.name,
    )


def build_stack() -> None:
    """The whole program: ``infra/__main__.py`` calls this, and so does the offline plan."""
    settings = load_settings()
    register_required_tags(settings.environment)
    platform = build_platform(settings, Account.lookup())
    stage = build_service(platform, "stage")
    prod = build_service(platform, "prod")
    jobs = build_jobs(platform)
    pipeline = DeliveryPipeline("delivery", pipeline_args(platform, stage, prod, released_jobs(jobs)))
    observability = Observability("observability", observability_args(platform, stage, prod, jobs))
    platform.event_delivery.alarm_failed_invocations()

    pulumi.export("stageUrl", stage.url)
    pulumi.export("prodUrl", prod.url)
    pulumi.export("artifactBucket", platform.buckets.artifacts.name)
    pulumi.export("modelBucket", platform.buckets.models.name)
    pulumi.export("captureBucket", platform.buckets.capture.name)
    pulumi.export("modelObjectKey", settings.model_key)
    pulumi.export("appRepositoryUrl", platform.registry.app.repository_url)
    pulumi.export("jobsRepositoryUrl", platform.registry.jobs.repository_url)
    pulumi.export("alertsTopicArn", platform.alerts.topic_arn)
    pulumi.export("containerName", settings.container_name)
    pulumi.export("vpcId", platform.network.vpc_id)
    pulumi.export("pipelineName", pipeline.pipeline_name)
    pulumi.export("pipelineConsoleUrl", pipeline.console_url)
    pulumi.export("codeCommitCloneUrl", pipeline.clone_url)
    pulumi.export("jobQueueName", jobs.job_queue.name)
    pulumi.export("jobDefinitionNames", jobs.job_definition_names)
    pulumi.export("dashboardName", observability.dashboard.dashboard_name)
    pulumi.export("athenaWorkgroup", observability.workgroup.name)
