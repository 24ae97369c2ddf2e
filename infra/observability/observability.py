"""Dashboards and SQL over captured payloads: a CloudWatch dashboard for the services and jobs, a Glue
table per service plus an Athena workgroup over the capture bucket, and an alert when a Batch job fails.

Interface used by stack.py (keep it): ``Observability(name, ObservabilityArgs)``.

Why a table per service: the capture layout is ``capture/<service>/dt=YYYY-MM-DD/hour=HH/`` (contract 3)
and ``service`` is also a field of every record, so it cannot be a partition key of one table as well
(a partition key may not repeat a column name). Partition projection (Athena User Guide, "Partition
projection with Amazon Athena") computes the partitions from the key layout: no crawler and no
``MSCK REPAIR TABLE``, and the ``dt`` range starts at the capture retention, so queries never list
prefixes the lifecycle rule has already emptied.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial
from typing import Any

import pulumi
import pulumi_aws as aws

from contracts.bucket_layout import capture_prefix
from contracts.capture_record import GLUE_COLUMNS

# The capture record (contract 3) as Hive types for the OpenX JSON SerDe, derived from the contract so a
# new output key or field reaches the table: ``output`` is one struct holding every task's keys.
CAPTURE_COLUMNS: tuple[tuple[str, str], ...] = GLUE_COLUMNS
CAPTURE_PARTITIONS: tuple[tuple[str, str], ...] = (("dt", "string"), ("hour", "string"))
SERVICES = ("stage", "prod")
ATHENA_RESULTS_PREFIX = "athena-results/"
# Athena's per-query guard (Athena User Guide, "Workgroup data usage controls"): a query scanning more
# than 10 GiB of payloads is almost certainly missing a dt filter.
BYTES_SCANNED_CUTOFF = 10 * 1024**3


def capture_location(capture_bucket: str, service: str) -> str:
    """Where one service's captured payloads are (the app's key layout, app/capture/sinks.py)."""
    return f"s3://{capture_bucket}/{capture_prefix(service)}/"


def projection_parameters(capture_bucket: str, service: str, retention_days: int) -> dict[str, str]:
    """Table parameters for partition projection over one service's capture prefix. The relative ``dt``
    range ("NOW-<n>DAYS,NOW") and the two-digit integer ``hour`` follow Athena User Guide, "Supported types
    for partition projection"; the template follows the app's key layout (app/capture/sinks.py, s3_key)."""
    return {
        "EXTERNAL": "TRUE",
        "classification": "json",
        "projection.enabled": "true",
        "projection.dt.type": "date",
        "projection.dt.format": "yyyy-MM-dd",
        "projection.dt.range": f"NOW-{retention_days}DAYS,NOW",
        "projection.dt.interval": "1",
        "projection.dt.interval.unit": "DAYS",
        "projection.hour.type": "integer",
        "projection.hour.range": "0,23",
        "projection.hour.digits": "2",
        "storage.location.template": f"s3://{capture_bucket}/{capture_prefix(service)}/dt=${{dt}}/hour=${{hour}}/",
    }


@dataclass(frozen=True)
class ServiceMetrics:
    """The dimensions a service's metrics are published under."""

    service: str
    load_balancer: str
    target_group: str
    cluster: str
    ecs_service: str


def dashboard_body(
    region: str, services: list[ServiceMetrics], jobs_log_group: str, dead_letter_queue: str, alerts_topic: str
) -> str:
    """The dashboard as CloudWatch's dashboard body JSON (CloudWatch API Reference, "Dashboard Body
    Structure and Syntax"): one row per service, then the jobs."""
    widgets: list[dict[str, Any]] = []

    def metric(title: str, metrics: list[list[Any]], x: int, y: int, *, stat: str = "Sum", width: int = 8) -> None:
        widgets.append({"type": "metric", "x": x, "y": y, "width": width, "height": 6,
                        "properties": {"title": title, "region": region, "view": "timeSeries", "stat": stat,
                                       "period": 60, "metrics": metrics}})  # fmt: skip

    for row, s in enumerate(services):
        y = row * 6
        alb = ["LoadBalancer", s.load_balancer]
        metric(f"{s.service}: requests and errors",
               [["AWS/ApplicationELB", "RequestCount", *alb, {"label": "requests"}],
                ["AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", *alb, {"label": "5xx from the app"}],
                ["AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count", *alb, {"label": "5xx from the ALB"}],
                ["AWS/ApplicationELB", "HTTPCode_Target_4XX_Count", *alb, {"label": "4xx (rejected payloads)"}]],
               0, y)  # fmt: skip
        metric(f"{s.service}: response time p50 / p99 (s)",
               [["AWS/ApplicationELB", "TargetResponseTime", *alb, {"stat": "p50", "label": "p50"}],
                ["AWS/ApplicationELB", "TargetResponseTime", *alb, {"stat": "p99", "label": "p99"}]],
               8, y, stat="p99")  # fmt: skip
        ecs = ["ClusterName", s.cluster, "ServiceName", s.ecs_service]
        metric(f"{s.service}: ECS CPU / memory (%) and healthy tasks",
               [["AWS/ECS", "CPUUtilization", *ecs, {"label": "CPU %"}],
                ["AWS/ECS", "MemoryUtilization", *ecs, {"label": "memory %"}],
                ["AWS/ApplicationELB", "HealthyHostCount", "TargetGroup", s.target_group, *alb,
                 {"label": "healthy tasks", "yAxis": "right", "stat": "Minimum"}]],
               16, y, stat="Average")  # fmt: skip
    y = len(services) * 6
    widgets.append({
        "type": "log", "x": 0, "y": y, "width": 16, "height": 6,
        "properties": {
            "title": "Batch jobs: errors in the last period (retrain, drift, summary, inference)",
            "region": region, "view": "table",
            "query": f"SOURCE '{jobs_log_group}' | fields @timestamp, @logStream, @message "
                     "| filter @message like /ERROR|CRITICAL|Traceback|error:/ | sort @timestamp desc | limit 50",
        },
    })  # fmt: skip
    metric("Jobs: failed schedule submissions and alerts sent",
           [["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", dead_letter_queue,
             {"label": "submissions in the dead-letter queue", "stat": "Maximum"}],
            ["AWS/SNS", "NumberOfMessagesPublished", "TopicName", alerts_topic, {"label": "alerts published"}]],
           16, y)  # fmt: skip
    widgets.append({
        "type": "log", "x": 0, "y": y + 6, "width": 24, "height": 6,
        "properties": {
            "title": "Batch jobs: the latest lines of every job", "region": region, "view": "table",
            "query": f"SOURCE '{jobs_log_group}' | fields @timestamp, @logStream, @message "
                     "| sort @timestamp desc | limit 100",
        },
    })  # fmt: skip
    return json.dumps({"widgets": widgets}, sort_keys=True)


def job_failed_pattern(job_queue_arn: str) -> str:
    """Batch User Guide, "Job state change events": every job of this queue that ends FAILED."""
    return json.dumps(
        {
            "source": ["aws.batch"],
            "detail-type": ["Batch Job State Change"],
            "detail": {"status": ["FAILED"], "jobQueue": [job_queue_arn]},
        },
        sort_keys=True,
    )


@dataclass(frozen=True)
class ServiceDimensions:
    """The names one service's metrics are published under (its load balancer, target group, ECS service)."""

    load_balancer: pulumi.Input[str]  # the ALB's arn_suffix
    target_group: pulumi.Input[str]  # the target group's arn_suffix
    cluster: pulumi.Input[str]
    ecs_service: pulumi.Input[str]


@dataclass(frozen=True)
class ObservabilityArgs:
    """Only what the dashboard, the capture catalog and the job-failure alert read (issue #15: no reaching
    through the platform or other components)."""

    region: str
    deletion_protection: bool  # a protected stack keeps the Athena workgroup's query history on destroy
    capture_retention_days: int
    capture_bucket_name: pulumi.Input[str]
    data_key_arn: pulumi.Input[str]
    alerts_topic_name: pulumi.Input[str]
    alerts_topic_arn: pulumi.Input[str]
    stage: ServiceDimensions
    prod: ServiceDimensions
    job_queue_arn: pulumi.Input[str]
    jobs_log_group_name: pulumi.Input[str]
    schedules_dead_letter_queue_name: pulumi.Input[str]


def job_failed_template(stack: str, log_group: str) -> str:
    """The job-failed alert as a JSON object; ``<job>``, ``<reason>``, ``<definition>``, ``<stream>`` are each a
    whole JSON string value (never part of a longer string) so any statusReason arrives intact (issue #17)."""
    fixed = {
        "alert": f"[ml-delivery {stack}] Batch job FAILED",
        "where_to_look": f"CloudWatch Logs {log_group}, the stream below",
        "note": "a pull error before the first release is expected (docs/jobs-infra.md)",
    }
    body = ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in fixed.items())
    return "{" + body + ', "job": "<job>", "reason": "<reason>", "definition": "<definition>", "stream": "<stream>"}'


class Observability(pulumi.ComponentResource):
    def __init__(self, name: str, args: ObservabilityArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ml-delivery:observability:Observability", name, None, opts)
        self._args = args
        stack = pulumi.get_stack()
        self.dashboard = self._dashboard(name, args, stack)
        self.database, self.tables = self._catalog(name, args, stack)
        self.workgroup = self._workgroup(name, args, stack)
        self._job_failure_alert(name, args, stack)
        self.register_outputs(
            {
                "dashboard": self.dashboard.dashboard_name,
                "glueDatabase": self.database.name,
                "athenaWorkgroup": self.workgroup.name,
            }
        )

    def _dashboard(self, name: str, args: ObservabilityArgs, stack: str) -> aws.cloudwatch.Dashboard:
        def metrics(service: ServiceDimensions, label: str) -> pulumi.Output[ServiceMetrics]:
            return pulumi.Output.all(
                service.load_balancer, service.target_group, service.cluster, service.ecs_service
            ).apply(lambda v: ServiceMetrics(label, v[0], v[1], v[2], v[3]))

        region = args.region
        body = pulumi.Output.all(
            metrics(args.stage, "stage"),
            metrics(args.prod, "prod"),
            args.jobs_log_group_name,
            args.schedules_dead_letter_queue_name,
            args.alerts_topic_name,
        ).apply(lambda v: dashboard_body(region, [v[0], v[1]], v[2], v[3], v[4]))
        return aws.cloudwatch.Dashboard(
            f"{name}-dashboard",
            aws.cloudwatch.DashboardArgs(dashboard_name=f"ml-delivery-{stack}", dashboard_body=body),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _catalog(
        self, name: str, args: ObservabilityArgs, stack: str
    ) -> tuple[aws.glue.CatalogDatabase, dict[str, aws.glue.CatalogTable]]:
        capture_bucket = pulumi.Output.from_input(args.capture_bucket_name)
        retention = args.capture_retention_days
        # Glue/Athena names: lower case, digits and underscores (Athena User Guide, "Name databases,
        # tables, and columns").
        database = aws.glue.CatalogDatabase(
            f"{name}-capture-db",
            aws.glue.CatalogDatabaseArgs(
                name=f"ml_delivery_{stack}".replace("-", "_").lower(),
                description="Captured prediction payloads (contract 3), queried with Athena",
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        tables = {}
        for service in SERVICES:
            tables[service] = aws.glue.CatalogTable(
                f"{name}-capture-{service}",
                aws.glue.CatalogTableArgs(
                    name=f"capture_{service}",
                    database_name=database.name,
                    description=f"Payloads captured by the {service} service, partitioned by dt and hour (UTC)",
                    table_type="EXTERNAL_TABLE",
                    parameters=capture_bucket.apply(
                        partial(projection_parameters, service=service, retention_days=retention)
                    ),
                    partition_keys=[
                        aws.glue.CatalogTablePartitionKeyArgs(name=n, type=t) for n, t in CAPTURE_PARTITIONS
                    ],
                    storage_descriptor=aws.glue.CatalogTableStorageDescriptorArgs(
                        location=capture_bucket.apply(partial(capture_location, service=service)),
                        input_format="org.apache.hadoop.mapred.TextInputFormat",
                        output_format="org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
                        ser_de_info=aws.glue.CatalogTableStorageDescriptorSerDeInfoArgs(
                            serialization_library="org.openx.data.jsonserde.JsonSerDe",
                            parameters={"ignore.malformed.json": "false", "case.insensitive": "false"},
                        ),
                        columns=[
                            aws.glue.CatalogTableStorageDescriptorColumnArgs(name=n, type=t) for n, t in CAPTURE_COLUMNS
                        ],
                    ),
                ),
                opts=pulumi.ResourceOptions(parent=database),
            )
        return database, tables

    def _workgroup(self, name: str, args: ObservabilityArgs, stack: str) -> aws.athena.Workgroup:
        output = pulumi.Output.from_input(args.capture_bucket_name).apply(
            lambda bucket: f"s3://{bucket}/{ATHENA_RESULTS_PREFIX}"
        )
        # Athena User Guide, "Override client-side settings": with enforcement on, every query of the
        # workgroup writes its results here, encrypted with the stack key, whatever the client asks for.
        return aws.athena.Workgroup(
            f"{name}-athena",
            aws.athena.WorkgroupArgs(
                name=f"ml-delivery-{stack}",
                description="SQL over captured payloads; results in the capture bucket, KMS-encrypted",
                state="ENABLED",
                force_destroy=not args.deletion_protection,
                configuration=aws.athena.WorkgroupConfigurationArgs(
                    enforce_workgroup_configuration=True,
                    publish_cloudwatch_metrics_enabled=True,
                    bytes_scanned_cutoff_per_query=BYTES_SCANNED_CUTOFF,
                    result_configuration=aws.athena.WorkgroupConfigurationResultConfigurationArgs(
                        output_location=output,
                        encryption_configuration=aws.athena.WorkgroupConfigurationResultConfigurationEncryptionConfigurationArgs(
                            encryption_option="SSE_KMS", kms_key_arn=args.data_key_arn
                        ),
                    ),
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _job_failure_alert(self, name: str, args: ObservabilityArgs, stack: str) -> None:
        """A job that ends FAILED (including one that could not pull its image) pages the alerts topic.
        EventBridge publishes as a service principal, which the topic policy and the key policy allow."""
        rule = aws.cloudwatch.EventRule(
            f"{name}-job-failed",
            aws.cloudwatch.EventRuleArgs(
                description=f"ml-delivery {stack}: a Batch job of the jobs queue FAILED",
                event_pattern=pulumi.Output.from_input(args.job_queue_arn).apply(job_failed_pattern),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.cloudwatch.EventTarget(
            f"{name}-job-failed-alert",
            aws.cloudwatch.EventTargetArgs(
                rule=rule.name,
                arn=args.alerts_topic_arn,
                # EventBridge User Guide, "Transforming target input": a value pasted into the middle of a
                # quoted sentence is not escaped, so a statusReason with a quote broke the message. Each
                # placeholder is now a whole JSON string value ("reason": "<reason>"), the form EventBridge
                # keeps a valid JSON string.
                input_transformer=aws.cloudwatch.EventTargetInputTransformerArgs(
                    input_paths={
                        "job": "$.detail.jobName",
                        "definition": "$.detail.jobDefinition",
                        "reason": "$.detail.statusReason",
                        "stream": "$.detail.container.logStreamName",
                    },
                    input_template=pulumi.Output.from_input(args.jobs_log_group_name).apply(
                        lambda log_group: job_failed_template(stack, log_group)
                    ),
                ),
            ),
            opts=pulumi.ResourceOptions(parent=rule),
        )
