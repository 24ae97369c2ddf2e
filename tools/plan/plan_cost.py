"""``--cost``: an itemised monthly estimate of a stack, read off its plan and a dated price table.

Every item is derived from resources in the plan (a config change that adds NAT gateways or tasks moves the
estimate), priced from ``tools/plan/prices/<region>.json`` (on-demand list prices with their date), with usage
assumptions printed alongside. Data transfer is excluded and said so.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contracts.prediction_metrics import METRICS as PREDICTION_METRICS
from contracts.prediction_metrics import NAMESPACE as PREDICTION_NAMESPACE
from infra.settings import PROD_TASK_START_MINUTES
from tools.plan.offline import OfflineRun, RegisteredResource

PRICES_DIR = Path(__file__).resolve().parent / "prices"
MINUTES_PER_MONTH = 730 * 60
DAYS_PER_MONTH = 30.42
WEEKS_PER_MONTH = DAYS_PER_MONTH / 7


@dataclass(frozen=True)
class CostItem:
    item: str
    quantity: str
    monthly_usd: float


@dataclass(frozen=True)
class CostEstimate:
    stack: str
    region: str
    as_of: str
    items: list[CostItem]
    assumptions: dict[str, Any]
    excluded: str

    @property
    def total(self) -> float:
        return round(sum(i.monthly_usd for i in self.items), 2)


def _field_count(field: str, full_range: int) -> float:
    """How many values a cron field selects: '*', '*/k', 'a-b', 'a,b,c', single values."""
    if field in ("*", "?"):
        return full_range
    count = 0.0
    for part in field.split(","):
        if step := re.fullmatch(r"(\*|\d+(?:-\d+)?)/(\d+)", part):
            span = full_range if step.group(1) == "*" else _field_count(step.group(1), full_range)
            count += math.ceil(span / int(step.group(2)))
        elif bounds := re.fullmatch(r"(\d+)-(\d+)", part):
            count += int(bounds.group(2)) - int(bounds.group(1)) + 1
        else:
            count += 1
    return count


def runs_per_month(expression: str) -> float:
    """Approximate runs a month of an EventBridge Scheduler expression (0 for a one-off ``at()``)."""
    if rate := re.fullmatch(r"rate\((\d+) (minute|hour|day)s?\)", expression):
        unit_minutes = {"minute": 1, "hour": 60, "day": 1440}[rate.group(2)]
        return MINUTES_PER_MONTH / (int(rate.group(1)) * unit_minutes)
    if cron := re.fullmatch(r"cron\((.+)\)", expression):
        minutes, hours, day_of_month, month, day_of_week, _year = cron.group(1).split()
        per_day = _field_count(minutes, 60) * _field_count(hours, 24)
        if day_of_month == "?":
            days = DAYS_PER_MONTH if day_of_week == "*" else _field_count(day_of_week, 7) * WEEKS_PER_MONTH
        else:
            days = DAYS_PER_MONTH if day_of_month == "*" else _field_count(day_of_month, 31)
        months = 1 if month == "*" else _field_count(month, 12) / 12
        return per_day * days * months
    return 0.0


def _task_size(run: OfflineRun, service: RegisteredResource) -> tuple[float, float]:
    family = str(service.inputs["taskDefinition"]).rsplit("/", 1)[-1].split(":")[0]
    task = next(r for r in run.of_type("aws:ecs/taskDefinition:TaskDefinition") if r.inputs.get("family") == family)
    return int(task.inputs["cpu"]) / 1024, int(task.inputs["memory"]) / 1024


def _job_size(job: RegisteredResource) -> tuple[float, float]:
    properties = json.loads(job.inputs.get("containerProperties") or "{}")
    requirements = {r["type"]: float(r["value"]) for r in properties.get("resourceRequirements", [])}
    return requirements.get("VCPU", 1.0), requirements.get("MEMORY", 2048) / 1024


def _schedule_job_name(schedule: RegisteredResource) -> str:
    target = schedule.inputs.get("target") or {}
    text = json.dumps(target)
    match = re.search(r'\\"JobDefinition\\": \\"([^\\"]+)\\"|"JobDefinition": "([^"]+)"', text)
    return (match.group(1) or match.group(2)) if match else schedule.name


@dataclass(frozen=True)
class _Pricing:
    prices: dict[str, Any]
    assumptions: dict[str, Any]
    hours: int
    env: str


def _network(run: OfflineRun, c: _Pricing) -> list[CostItem]:
    p, a, hours = c.prices, c.assumptions, c.hours
    nats = len(run.of_type("aws:ec2/natGateway:NatGateway"))
    albs = run.of_type("aws:lb/loadBalancer:LoadBalancer")
    # An internal ALB's nodes have private addresses only (the stage ALB by default): no public IPv4 charge.
    public_ips = len(run.of_type("aws:ec2/eip:Eip")) + sum(
        len(lb.inputs.get("subnets", [])) for lb in albs if not lb.inputs.get("internal")
    )
    endpoint_azs = sum(len(e.inputs.get("subnetIds", [])) for e in run.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
                       if e.inputs.get("vpcEndpointType") == "Interface")  # fmt: skip
    return [
        CostItem("NAT gateways", f"{nats} × {hours} h", nats * hours * p["nat_gateway_hour"]),
        CostItem("Application load balancers", f"{len(albs)} × {hours} h, {a['alb_average_lcu']} LCU",
                 len(albs) * hours * (p["alb_hour"] + a["alb_average_lcu"] * p["alb_lcu_hour"])),
        CostItem("Public IPv4 addresses (NAT EIPs, ALB nodes)", f"{public_ips} × {hours} h",
                 public_ips * hours * p["public_ipv4_hour"]),
        CostItem("Interface VPC endpoints", f"{endpoint_azs} endpoint-AZs × {hours} h",
                 endpoint_azs * hours * p["interface_endpoint_az_hour"]),
    ]  # fmt: skip


def _services(run: OfflineRun, c: _Pricing) -> list[CostItem]:
    items = []
    for service in sorted(run.of_type("aws:ecs/service:Service"), key=lambda r: r.name):
        vcpu, memory_gb = _task_size(run, service)
        tasks = int(service.inputs.get("desiredCount", 1))
        hourly = vcpu * c.prices["fargate_vcpu_hour"] + memory_gb * c.prices["fargate_gb_hour"]
        items.append(CostItem(f"Fargate {service.name}", f"{tasks} tasks × {vcpu:g} vCPU / {memory_gb:g} GB × "
                              f"{c.hours} h", tasks * c.hours * hourly))  # fmt: skip
        overlap = _deployment_overlap_minutes(service)
        if overlap:
            # CANARY / LINEAR run a full second set of tasks from the first shift until the bake ends.
            releases = c.assumptions["prod_releases_per_month"]
            items.append(CostItem(f"Fargate {service.name} canary overlap",
                                  f"{releases} releases × {overlap} min × {tasks} extra tasks",
                                  releases * overlap / 60 * tasks * hourly))  # fmt: skip
    return items


def _deployment_overlap_minutes(service: RegisteredResource) -> int:
    """Minutes both revisions run in one progressive deployment: bake times from the plan + task start."""
    configuration = service.inputs.get("deploymentConfiguration") or {}
    strategy = configuration.get("strategy", "ROLLING")
    if strategy not in ("CANARY", "LINEAR"):
        return 0
    bake = int(configuration.get("bakeTimeInMinutes", 0))
    if strategy == "CANARY":
        shift = int((configuration.get("canaryConfiguration") or {}).get("canaryBakeTimeInMinutes", 0))
    else:
        linear = configuration.get("linearConfiguration") or {}
        steps = math.ceil(100 / float(linear.get("stepPercent", 100)))
        shift = (steps - 1) * int(linear.get("stepBakeTimeInMinutes", 0))
    return shift + bake + PROD_TASK_START_MINUTES


def _delivery(run: OfflineRun, c: _Pricing) -> list[CostItem]:
    p, a = c.prices, c.assumptions
    runs = a["pipeline_runs_per_month"]
    items = []
    for project in sorted(run.of_type("aws:codebuild/project:Project"), key=lambda r: r.name):
        compute = (project.inputs.get("environment") or {}).get("computeType", "BUILD_GENERAL1_MEDIUM")
        # Per project: the release and evaluate projects run a pip install and one short command each.
        role = next((r for r in ("release", "evaluate") if r in project.name), None)
        minutes = a[f"{role}_build_minutes_per_run"] if role else a["build_minutes_per_run"]
        per_minute = p["codebuild_minute"].get(compute, p["codebuild_minute"]["BUILD_GENERAL1_MEDIUM"])
        items.append(CostItem(f"CodeBuild {project.name}", f"{runs} runs × {minutes} min ({compute})",
                              runs * minutes * per_minute))  # fmt: skip
    if run.of_type("aws:codepipeline/pipeline:Pipeline"):
        minutes = a["pipeline_action_minutes_per_run"]
        items.append(CostItem("CodePipeline V2", f"{runs} runs × {minutes} action-min",
                              runs * minutes * p["codepipeline_v2_action_minute"]))  # fmt: skip
    return items


def _jobs(run: OfflineRun, c: _Pricing) -> list[CostItem]:
    jobs = {j.inputs.get("name", j.name): j for j in run.of_type("aws:batch/jobDefinition:JobDefinition")}
    items = []
    for schedule in sorted(run.of_type("aws:scheduler/schedule:Schedule"), key=lambda r: r.name):
        job_name = _schedule_job_name(schedule)
        job = jobs.get(job_name) or next((j for n, j in jobs.items() if n in job_name or job_name in n), None)
        if job is None:
            continue
        kind = next((k for k in ("retrain", "drift", "summary") if k in job.name), "drift")
        minutes = c.assumptions[f"{kind}_job_minutes"]
        count = runs_per_month(str(schedule.inputs.get("scheduleExpression", "")))
        vcpu, memory_gb = _job_size(job)
        hourly = vcpu * c.prices["fargate_vcpu_hour"] + memory_gb * c.prices["fargate_gb_hour"]
        items.append(CostItem(f"Batch on Fargate {kind} job", f"{count:.0f} runs × {minutes} min × {vcpu:g} vCPU / "
                              f"{memory_gb:g} GB", count * minutes / 60 * hourly))  # fmt: skip
    return items


def _storage_and_operations(run: OfflineRun, c: _Pricing) -> list[CostItem]:
    p, a = c.prices, c.assumptions
    capture_gb = a["capture_gb_per_month"][c.env] * min(12, _capture_retention_months(run))
    s3_gb = a["model_bucket_gb"] + a["artifact_bucket_gb"] + capture_gb
    repositories = len(run.of_type("aws:ecr/repository:Repository"))
    log_gb = a["log_ingest_gb_per_month"][c.env]
    alarms = len(run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm"))
    # The app's EMF prediction metrics (one series per metric and service), alarmed per service.
    custom_metrics = len(PREDICTION_METRICS) * len(
        [
            a
            for a in run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
            if a.inputs.get("namespace") == PREDICTION_NAMESPACE
        ]
    )
    dashboards = len(run.of_type("aws:cloudwatch/dashboard:Dashboard"))
    keys = len(run.of_type("aws:kms/key:Key"))
    zones = len(run.of_type("aws:route53/zone:Zone"))
    secrets = len(run.of_type("aws:secretsmanager/secret:Secret"))
    acls = run.of_type("aws:wafv2/webAcl:WebAcl")
    waf_rules = sum(len(acl.inputs.get("rules") or []) for acl in acls)
    waf = (
        [
            CostItem(
                "WAF web ACLs",
                f"{len(acls)} ACLs, {waf_rules} rules",
                len(acls) * p["wafv2_web_acl_month"] + waf_rules * p["wafv2_rule_month"],
            )
        ]
        if acls
        else []
    )
    return [*waf,
        CostItem("S3 Standard storage", f"{s3_gb:g} GB (models, artifacts, captured payloads)",
                 s3_gb * p["s3_standard_gb_month"]),
        CostItem("ECR storage", f"{a['ecr_gb']} GB in {repositories} repositories",
                 a["ecr_gb"] * p["ecr_storage_gb_month"]),
        CostItem("ECR BuildKit registry cache", f"{a['ecr_build_cache_gb']} GB (:buildcache manifests)",
                 a["ecr_build_cache_gb"] * p["ecr_storage_gb_month"]),
        CostItem("CloudWatch custom metrics (app EMF)", f"{custom_metrics} metrics",
                 custom_metrics * p["cloudwatch_custom_metric_month"]),
        CostItem("CloudWatch Logs", f"{log_gb} GB ingested",
                 log_gb * (p["cloudwatch_logs_ingest_gb"] + p["cloudwatch_logs_store_gb_month"])),
        CostItem("CloudWatch alarms", f"{alarms} alarms", alarms * p["cloudwatch_alarm_month"]),
        CostItem("CloudWatch dashboards", f"{dashboards} dashboards", dashboards * p["cloudwatch_dashboard_month"]),
        CostItem("KMS customer-managed keys", f"{keys} keys", keys * p["kms_key_month"]),
        # The internal stage ALB's private hosted zone (only with a certificate; alias queries to an ALB are free).
        CostItem("Route 53 private hosted zones", f"{zones} zones", zones * p["route53_hosted_zone_month"]),
        CostItem("Secrets Manager secrets", f"{secrets} secrets", secrets * p["secrets_manager_secret_month"]),
    ]  # fmt: skip


def estimate(run: OfflineRun, region: str = "us-east-1") -> CostEstimate:
    table = json.loads((PRICES_DIR / f"{region}.json").read_text())
    pricing = _Pricing(table["prices"], table["assumptions"], table["hours_per_month"],
                       "prod" if run.stack == "prod" else "dev")  # fmt: skip
    items = [
        CostItem(i.item, i.quantity, round(i.monthly_usd, 2))
        for area in (_network, _services, _delivery, _jobs, _storage_and_operations)
        for i in area(run, pricing)
        if i.monthly_usd > 0
    ]
    return CostEstimate(run.stack, table["region"], table["as_of"], items, table["assumptions"], table["excluded"])


def _capture_retention_months(run: OfflineRun) -> float:
    for lifecycle in run.of_type("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"):
        for rule in lifecycle.inputs.get("rules", []):
            if (rule.get("filter") or {}).get("prefix") == "capture/" and rule.get("expiration"):
                return float(rule["expiration"]["days"]) / 30
    return 1.0


def render(estimate_: CostEstimate) -> str:
    width = max(len(i.item) for i in estimate_.items) + 2
    quantity_width = max(len(i.quantity) for i in estimate_.items) + 2
    lines = [
        f"Monthly cost estimate, stack {estimate_.stack} "
        f"({estimate_.region} on-demand list prices as of {estimate_.as_of})",
        f"  {'item':<{width}}{'quantity':<{quantity_width}}{'USD/month':>10}",
    ]
    lines += [f"  {i.item:<{width}}{i.quantity:<{quantity_width}}{i.monthly_usd:>10.2f}" for i in estimate_.items]
    lines.append(f"  {'Total':<{width + quantity_width}}{estimate_.total:>10.2f}")
    lines.append("Assumptions: " + ", ".join(f"{k}={json.dumps(v)}" for k, v in estimate_.assumptions.items()))
    lines.append(f"Excluded: {estimate_.excluded}")
    return "\n".join(lines)
