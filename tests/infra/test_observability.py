"""The dashboard, the Glue tables and Athena workgroup over captured payloads, and the job-failure alert,
in the offline plan of both stacks."""

from __future__ import annotations

import json
import string
from datetime import UTC, datetime
from typing import Any

from app.capture.record import capture_records
from app.capture.sinks import s3_key
from infra.settings import parse_settings
from tools.plan.offline import OfflineRun, load_stack_config

ACCOUNT = "123456789012"
CAPTURE_BUCKET = "buckets-capture-0a1b2c3"
TABLE = "aws:glue/catalogTable:CatalogTable"


def dashboard(run: OfflineRun) -> dict[str, Any]:
    (resource,) = run.of_type("aws:cloudwatch/dashboard:Dashboard")
    assert resource.inputs["dashboardName"] == f"ml-delivery-{run.stack}"
    return json.loads(resource.inputs["dashboardBody"])


def metric_rows(body: dict[str, Any]) -> list[list[Any]]:
    return [row for w in body["widgets"] if w["type"] == "metric" for row in w["properties"]["metrics"]]


def test_dashboard_shows_both_services_alb_and_ecs_metrics(stack: OfflineRun) -> None:
    body = dashboard(stack)
    rows = metric_rows(body)
    for service in ("stage", "prod"):
        load_balancer = f"app/{service}-alb-0a1b2c3/50dc6c495c0c9188"
        alb = {row[1] for row in rows if row[0] == "AWS/ApplicationELB" and load_balancer in row}
        assert {"RequestCount", "HTTPCode_Target_5XX_Count", "TargetResponseTime", "HealthyHostCount"} <= alb
        ecs = {row[1] for row in rows
               if row[0] == "AWS/ECS" and row[2:6] == ["ClusterName", f"{service}-cluster-0a1b2c3",
                                                       "ServiceName", f"{service}-service-0a1b2c3"]}  # fmt: skip
        assert ecs == {"CPUUtilization", "MemoryUtilization"}
    for widget in body["widgets"]:
        assert {"type", "x", "y", "width", "height", "properties"} <= set(widget)
        assert widget["x"] + widget["width"] <= 24
        assert widget["properties"]["region"] == "us-east-1"


def test_dashboard_queries_the_jobs_log_group(stack: OfflineRun) -> None:
    logs = [w for w in dashboard(stack)["widgets"] if w["type"] == "log"]
    assert logs
    for widget in logs:
        assert widget["properties"]["query"].startswith(f"SOURCE '/ml-delivery/{stack.stack}/jobs' |")
    rows = metric_rows(dashboard(stack))
    assert ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", "jobs-schedules-dlq-0a1b2c3"] in [
        row[:4] for row in rows
    ]


def tables(run: OfflineRun) -> dict[str, Any]:
    return {r.inputs["name"]: r.inputs for r in run.of_type(TABLE)}


def test_glue_tables_have_the_capture_record_columns_and_dt_hour_partitions(stack: OfflineRun) -> None:
    (database,) = stack.of_type("aws:glue/catalogDatabase:CatalogDatabase")
    assert database.inputs["name"] == f"ml_delivery_{stack.stack}"
    record = capture_records(uids=["a" * 32], inputs=[{"score": 1.0}],
                             outputs=[{"label": 1, "probability": 0.9, "prediction": 1}],
                             time="2026-01-01T00:00:00+00:00", service="prod", model_name="churn", model_version=1,
                             latency_ms=1.0, ids=[{"customer_id": "c-1"}])[0]  # fmt: skip
    found = tables(stack)
    assert set(found) == {"capture_stage", "capture_prod"}
    for table in found.values():
        assert table["databaseName"] == f"ml_delivery_{stack.stack}"
        assert table["tableType"] == "EXTERNAL_TABLE"
        columns = [c["name"] for c in table["storageDescriptor"]["columns"]]
        assert columns == list(record)  # the app's own record (with ids), in its order
        types = {c["name"]: c["type"] for c in table["storageDescriptor"]["columns"]}
        # bigint: manifest versions are not capped at 2**31 (the SQL column is BIGINT too)
        assert types["model_version"] == "bigint" and types["latency_ms"] == "double"
        assert types["ids"] == "map<string,string>"
        # every task's answer fits one struct (tests/app/test_capture_glue_schema.py checks real records)
        assert types["output"] == (
            "struct<label:string,probability:double,prediction:int,probabilities:map<string,double>,value:double>"
        )
        assert [p["name"] for p in table["partitionKeys"]] == ["dt", "hour"]
        assert table["storageDescriptor"]["serDeInfo"]["serializationLibrary"] == "org.openx.data.jsonserde.JsonSerDe"


def test_partition_projection_finds_the_keys_the_app_writes(stack: OfflineRun) -> None:
    retention = parse_settings(load_stack_config(stack.stack)[0]).capture_retention_days
    for name, table in tables(stack).items():
        service = name.removeprefix("capture_")
        parameters = table["parameters"]
        assert parameters["projection.enabled"] == "true"
        assert parameters["projection.dt.range"] == f"NOW-{retention}DAYS,NOW"
        assert (parameters["projection.hour.range"], parameters["projection.hour.digits"]) == ("0,23", "2")
        assert table["storageDescriptor"]["location"] == f"s3://{CAPTURE_BUCKET}/capture/{service}/"
        when = datetime(2026, 3, 7, 5, 30, tzinfo=UTC)
        record = {"uid": "f" * 32, "time": when.isoformat()}
        key = s3_key(f"capture/{service}", [record], "worker-1")
        location = string.Template(parameters["storage.location.template"]).substitute(
            dt=when.strftime(parameters["projection.dt.format"].replace("yyyy", "%Y").replace("MM", "%m")
                             .replace("dd", "%d")),
            hour=f"{when.hour:0{int(parameters['projection.hour.digits'])}d}",
        )  # fmt: skip
        assert f"s3://{CAPTURE_BUCKET}/{key}".startswith(location), (location, key)


def test_athena_workgroup_enforces_encrypted_results_in_the_capture_bucket(stack: OfflineRun) -> None:
    (workgroup,) = stack.of_type("aws:athena/workgroup:Workgroup")
    assert workgroup.inputs["name"] == f"ml-delivery-{stack.stack}"
    configuration = workgroup.inputs["configuration"]
    assert configuration["enforceWorkgroupConfiguration"] is True
    result = configuration["resultConfiguration"]
    assert result["outputLocation"] == f"s3://{CAPTURE_BUCKET}/athena-results/"
    assert result["encryptionConfiguration"] == {
        "encryptionOption": "SSE_KMS",
        "kmsKeyArn": f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    }
    assert configuration["bytesScannedCutoffPerQuery"] >= 10 * 1024**2
    lifecycle = next(r for r in stack.of_type("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
                     if r.inputs["bucket"] == CAPTURE_BUCKET)  # fmt: skip
    prefixes = {rule["filter"].get("prefix") for rule in lifecycle.inputs["rules"]}
    assert "athena-results/" in prefixes


def test_failed_jobs_of_the_queue_page_the_alerts_topic(stack: OfflineRun) -> None:
    rule = stack.one("aws:cloudwatch/eventRule:EventRule", "observability-job-failed")
    pattern = json.loads(rule.inputs["eventPattern"])
    assert pattern == {
        "source": ["aws.batch"],
        "detail-type": ["Batch Job State Change"],
        "detail": {"status": ["FAILED"],
                   "jobQueue": [f"arn:aws:batch:us-east-1:{ACCOUNT}:job-queue/ml-delivery-{stack.stack}-jobs"]},
    }  # fmt: skip
    target = stack.one("aws:cloudwatch/eventTarget:EventTarget", "observability-job-failed-alert").inputs
    assert target["arn"] == f"arn:aws:sns:us-east-1:{ACCOUNT}:alerts-topic-0a1b2c3"
    template = target["inputTransformer"]["inputTemplate"]
    # A JSON object with bare placeholders (issue #17; tests/security/test_event_delivery.py renders it).
    assert template.startswith("{") and template.endswith("}")
    assert f"/ml-delivery/{stack.stack}/jobs" in template
    assert set(target["inputTransformer"]["inputPaths"]) == {"job", "definition", "reason", "stream"}
