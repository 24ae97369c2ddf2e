"""The README's configuration reference, generated from :class:`StackSettings` and the stack files.

``python -m tools.plan.config_reference`` prints the table; ``make docs`` writes it into the README between
the ``config-reference`` markers, and a test fails when the README and the code disagree.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic_core import PydanticUndefined

from infra.settings import SECRET_KEYS, StackSettings, parse_settings
from tools.plan.offline import load_stack_config

ROOT = Path(__file__).resolve().parents[2]
START, END = "<!-- config-reference:start -->", "<!-- config-reference:end -->"

DESCRIPTIONS: dict[str, str] = {
    "environment": "`dev` or `prod`; prod enforces the minimums below",
    "vpcCidr": "VPC CIDR, /16 to /23 (its 16 blocks must be ≥ /27 for an ALB); public from the 1st, private "
    "from the 9th",
    "azCount": "availability zones used (2–4; an ALB needs 2)",
    "natGateways": "NAT gateways, at most one per AZ; prod needs ≥ 2",
    "ingressCidrs": "CIDRs allowed to reach the ALBs (nothing else can)",
    "certificateArn": "ACM certificate ARN: HTTPS on 443 (TLS 1.2+) and HTTP→HTTPS redirect; required in prod and "
    "whenever `ingressCidrs` holds 0.0.0.0/0 (preview refuses otherwise); unset in dev = HTTP with a plan warning",
    "stageInternetFacing": "false (default): the stage ALB is internal, in the private subnets, and lets in the "
    "Evaluate project's security group; true: internet-facing like prod (Evaluate then comes through the NAT "
    "addresses, which `ingressCidrs` must list)",
    "stageHostname": "with `certificateArn` and an internal stage: the name the certificate covers; a private "
    "hosted zone answers it in the VPC and Evaluate calls `https://<it>` (required then, refused otherwise)",
    "wafEnabled": "WAFv2 web ACL (AWS managed rule groups + per-IP rate rule) on both ALBs; unset = on in prod only",
    "wafRateLimit": "requests per source IP per 5 minutes before the WAF rate rule blocks (≥ 100)",
    "deletionProtection": "ALB deletion protection and Pulumi `protect` on the model and capture buckets; true in prod",
    "logRetentionDays": "CloudWatch Logs retention (a value CloudWatch accepts); ≥ 365 in prod",
    "containerName": "container name in the task definitions and `imagedefinitions.json`",
    "containerPort": "port the app listens on",
    "healthCheckPath": "ALB target group health check path",
    "bootstrapImage": "image the services run until the pipeline's first deploy (answers 200 on any path); "
    "must be pinned by digest and not from Docker Hub",
    "taskCpu": "Fargate task CPU units (256–16384)",
    "taskMemory": "Fargate task memory MiB; must be a pair Fargate offers with `taskCpu`",
    "stageDesiredCount": "stage tasks (autoscaling minimum)",
    "stageMaxCount": "stage autoscaling maximum",
    "prodDesiredCount": "prod tasks (autoscaling minimum); ≥ 2 in prod",
    "prodMaxCount": "prod autoscaling maximum",
    "cpuTargetPercent": "target-tracking CPU utilisation",
    "alarm5xxThreshold": "5xx answers in 5 minutes that raise the 5xx alarm",
    "alarmP99LatencyMs": "p99 response time (ms) that raises the latency alarm",
    "prodDeploymentStrategy": "`CANARY` or `LINEAR`: how prod shifts traffic to a new revision (stage always rolls); "
    'the 5xx, p99 and score-shift alarms roll it back (docs/pipeline.md, "Canary and rollback")',
    "canaryPercent": "CANARY: share of prod traffic (0.1–100 %) the new revision gets during the canary bake",
    "canaryBakeMinutes": "CANARY: minutes the canary serves its share before the rest shifts (0–1440)",
    "linearStepPercent": "LINEAR: share of traffic shifted per step (3–100 %)",
    "linearStepBakeMinutes": "LINEAR: minutes between steps (0–1440)",
    "deploymentBakeMinutes": "minutes the old prod revision keeps running after 100 % shifted, still able to roll "
    "back instantly (0–1440)",
    "alarmScoreShift": "largest |mean predicted probability of a task's minute − the package's baseline mean| "
    "for 3 minutes before the prediction alarm (and a prod rollback)",
    "releaseKeepCount": "release-tagged images (`release-*`) kept in ECR besides the running ones (`keep-*`)",
    "baseImageSource": "`ecr-public` (pull `public.ecr.aws` directly) or `pull-through-cache` (an ECR pull-through "
    "cache rule of the account; builds pull through it)",
    "alertEmails": "e-mail subscriptions of the alerts topic (everything but INFO; docs/monitoring.md)",
    "alertSmsNumbers": "SMS subscriptions (E.164) of the alerts topic (everything but INFO). An account in the SNS "
    "SMS sandbox delivers only to verified numbers, and US numbers need an origination identity: docs/security.md",
    "modelKey": "object key of the model package in the model bucket: the pipeline's S3 source",
    "captureRetentionDays": "days captured payloads are kept (to Standard-IA after 30 when > 60)",
    "artifactRetentionDays": "days pipeline artifacts are kept",
    "imageRetentionCount": "images kept per ECR repository",
    "sourceProvider": "`codecommit` or `codeconnections` (GitHub, GitLab, Bitbucket)",
    "repositoryName": "CodeCommit repository for the app code; unset: `ml-delivery-<stack>` (unique per account)",
    "branch": "branch that triggers the pipeline",
    "connectionArn": "CodeConnections connection ARN (with `codeconnections`)",
    "fullRepositoryId": "`owner/repo` for the connection (with `codeconnections`)",
    "buildComputeType": "CodeBuild compute type",
    "buildTimeoutMinutes": "CodeBuild timeout",
    "evaluationMinAgreement": "Evaluate: least share of replayed prod requests on which candidate and champion decide "
    "alike",
    "evaluationMaxScorePsi": "Evaluate: largest PSI of the candidate's scores against the champion's on the replay",
    "evaluationMaxSegmentShift": "Evaluate: largest mean-score change in any categorical segment of the replay",
    "evaluationMaxStageDifference": "Evaluate: largest difference between the stage service's and the in-process "
    "candidate's probability",
    "evaluationMaxP99LatencyMs": "Evaluate: p99 (ms) of single-record requests to the stage service",
    "evaluationReplaySampleSize": "Evaluate: most recent captured prod requests replayed",
    "evaluationReplayWindowHours": "Evaluate: how far back the replay reads prod capture",
    "evaluationSmokeRequests": "Evaluate: single-record requests of the stage latency test",
    "evaluationTimeoutMinutes": "Evaluate CodeBuild timeout",
    "approvalTimeoutMinutes": "minutes the prod approval waits before it fails (CodePipeline default: 7 days)",
    "retrainSchedule": "EventBridge Scheduler expression that submits the retrain job",
    "scheduleTimezone": "IANA time zone of the cron schedules (e.g. `Europe/Berlin`)",
    "retrainVcpu": "retrain job vCPU (Batch on Fargate)",
    "retrainMemoryMib": "retrain job memory MiB; a pair Batch on Fargate offers with `retrainVcpu`",
    "retrainTimeoutMinutes": "retrain job timeout",
    "trainingDataPrefix": "prefix in the model bucket the retrain job reads training data from",
    "gateMetric": "metric the gate compares, one of the champion task's (binary `roc_auc`/`log_loss`/`lift`, "
    "multiclass `log_loss`/`macro_f1`, regression `rmse`/`mae`/`r2`); unset: the task's primary metric",
    "gateTolerance": "how much worse than the champion a candidate may be and still ship",
    "gateFloor": "absolute bound a candidate must beat on `gateMetric` (needs it); unset: the task's default "
    "floor (docs/retrain.md)",
    "minTrainingRows": "fewer rows stop the retrain job",
    "driftSchedule": "schedule of the drift job",
    "summarySchedule": "schedule of the prediction summary",
    "driftRetrainEnabled": "submit the retrain job when drift passes the retrain threshold",
    "alertWindowMinutes": "the same job alert is not sent again within this window",
    "summaryMinCount": "prediction count in a window that makes the summary a report",
    "jobsImageTag": "jobs image tag of the job definition revisions Pulumi registers; the pipeline's release "
    "registers newer ones. Set it to the live release's git sha before changing a job setting (docs/jobs-infra.md)",
    "jobsVcpu": "drift, summary and inference jobs vCPU",
    "jobsMemoryMib": "drift, summary and inference jobs memory MiB",
    "sentryDsn": "Sentry DSN for the app, **secret** (`pulumi config set --secret sentryDsn …`); in Secrets Manager",
    "captureHashKey": "HMAC key of capture privacy (at least 16 bytes), **secret** (`pulumi config set --secret "
    "captureHashKey …`); in Secrets Manager, injected as CAPTURE_HASH_KEY. Unset: a `hash` capture policy refuses "
    "to start (docs/app.md, Capture privacy)",
}


def _stack_values(stack: str) -> dict[str, Any]:
    """Effective values of a stack: its file's keys over the defaults."""
    config, _ = load_stack_config(stack)
    return parse_settings(config).model_dump(by_alias=True)


def _show(value: Any) -> str:
    if value is None or value is PydanticUndefined:
        return "—"
    text = json.dumps(list(value) if isinstance(value, tuple) else value)
    return f"`{text.strip(chr(34))}`" if isinstance(value, str) else f"`{text}`"


def _type_name(annotation: Any) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _type_name(args[0])
    if origin is Literal:
        return " or ".join(f"`{a}`" for a in args)
    if origin in (Union, UnionType):
        present = [a for a in args if a is not type(None)]
        return f"{_type_name(present[0])}, optional"
    if origin is tuple:
        return f"list of {_type_name(args[0])}"
    return {int: "int", float: "number", bool: "bool", str: "string"}.get(annotation, str(annotation))


def render_table() -> str:
    dev, prod = _stack_values("dev"), _stack_values("prod")
    rows = ["| key | type | default | dev | prod | meaning |", "|---|---|---|---|---|---|"]
    for name, field in StackSettings.model_fields.items():
        key = field.alias or name
        default = "required" if field.is_required() else _show(field.default)
        rows.append(f"| `{key}` | {_type_name(field.annotation)} | {default} | {_show(dev.get(key))} | "
                    f"{_show(prod.get(key))} | {DESCRIPTIONS[key]} |")  # fmt: skip
    for key in sorted(SECRET_KEYS):
        rows.append(f"| `{key}` | secret string | — | — | — | {DESCRIPTIONS[key]} |")
    return "\n".join(rows)


def update_readme(path: Path = ROOT / "README.md") -> bool:
    text = path.read_text()
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    updated = f"{before}{START}\n{render_table()}\n{END}{after}"
    if updated != text:
        path.write_text(updated)
    return updated != text


if __name__ == "__main__":
    import sys

    if "--write" in sys.argv:
        print("README updated" if update_readme() else "README already up to date")
    else:
        print(render_table())
