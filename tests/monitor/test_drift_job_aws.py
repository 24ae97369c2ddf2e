"""The scheduled jobs against a real moto server (S3, SNS, SQS, Batch) and PostgreSQL."""

from __future__ import annotations

import json
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta

import boto3
import pytest
import sqlalchemy as sa

from contracts.bucket_layout import CHAMPION_KEY, versioned_model_key
from contracts.exit_codes import ExitCode
from jobs_common.capture import SqlCaptureReader
from model_package.registry import ChampionPointer
from monitor.__main__ import main
from tests.monitor.conftest import capture_records, fresh


def drain(aws) -> list[dict]:
    messages = []
    while batch := aws["sqs"].receive_message(QueueUrl=aws["queue"], MaxNumberOfMessages=10).get("Messages", []):
        for message in batch:
            messages.append(json.loads(message["Body"]))
            aws["sqs"].delete_message(QueueUrl=aws["queue"], ReceiptHandle=message["ReceiptHandle"])
    return messages


def publish_model(aws, trained) -> None:
    key = versioned_model_key(trained.manifest.version)
    aws["s3"].put_object(Bucket=aws["model"], Key=key, Body=trained.path.read_bytes())
    pointer = ChampionPointer(
        model_name=trained.manifest.name,
        model_version=trained.manifest.version,
        package_key=key,
        model_sha256=trained.package.sha256,
        release_key="releases/x.json",
        updated_at=datetime.now(UTC),
    )
    aws["s3"].put_object(Bucket=aws["model"], Key=CHAMPION_KEY, Body=pointer.model_dump_json().encode())


def put_capture(aws, records: list[dict], prefix: str = "capture/prod") -> None:
    """The app's S3 layout: <prefix>/dt=YYYY-MM-DD/hour=HH/<time>-<worker>-<uuid>.jsonl."""
    by_hour: dict[str, list[dict]] = {}
    for record in records:
        at = datetime.fromisoformat(record["time"])
        by_hour.setdefault(f"{prefix}/dt={at:%Y-%m-%d}/hour={at:%H}", []).append(record)
    for folder, items in by_hour.items():
        key = f"{folder}/{items[0]['time']}-w1-{uuid.uuid4().hex}.jsonl"
        body = "".join(json.dumps(r) + "\n" for r in items).encode()
        aws["s3"].put_object(Bucket=aws["capture"], Key=key, Body=body)


def job_env(monkeypatch: pytest.MonkeyPatch, aws, **extra: str) -> None:
    for name in ("MODEL_KEY", "CAPTURE_DB_URL", "LABELS_URI", "DRIFT_RETRAIN_ENABLED"):
        monkeypatch.delenv(name, raising=False)
    values = {
        "MODEL_BUCKET": aws["model"],
        "CAPTURE_BUCKET": aws["capture"],
        "ALERTS_TOPIC_ARN": aws["topic"],
        "ALERT_WINDOW_MINUTES": "60",
        **extra,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def drifted_capture(trained, rows: int = 2000, seed: int = 41) -> list[dict]:
    frame = fresh(rows, seed=seed)
    frame["satisfaction_score"] *= 1.10
    start = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    return capture_records(frame, trained.package, start=start, seconds_apart=2.5)


def test_drift_job_reads_capture_since_training_writes_reports_and_alerts_once(trained, aws, monkeypatch) -> None:
    publish_model(aws, trained)
    records = drifted_capture(trained)
    stale = capture_records(fresh(50, seed=1), trained.package, start="2020-01-01T00:00:00+00:00")
    other = [
        dict(r, model_version=99) for r in capture_records(fresh(50, seed=2), trained.package, start=records[0]["time"])
    ]
    put_capture(aws, records + stale + other)
    job_env(monkeypatch, aws)

    assert main(["drift"]) == 0
    listing = aws["s3"].list_objects_v2(Bucket=aws["model"], Prefix="reports/drift/churn/v1/2")["Contents"]
    keys = sorted(o["Key"] for o in listing)  # the run's folder (the window marker sits beside the folders)
    assert [k.rsplit("/", 1)[1] for k in keys] == ["report.html", "report.json"]
    report = json.loads(aws["s3"].get_object(Bucket=aws["model"], Key=keys[1])["Body"].read())
    assert report["rows"] == len(records)  # stale and other-version records were not read
    assert report["dataset_drift"] and "satisfaction_score" in report["drifted_features"]
    messages = drain(aws)
    assert len(messages) == 1
    assert "satisfaction_score" in messages[0]["Message"] and keys[0] in messages[0]["Message"]
    assert messages[0]["Subject"].startswith("[")

    # The next scheduled run reads only what came since (monitor.window), still drifted: same alert, not resent.
    later = datetime.now(UTC) + timedelta(minutes=10)
    put_capture(
        aws,
        capture_records(
            fresh(2000, seed=47).assign(satisfaction_score=lambda f: f.satisfaction_score * 1.1),
            trained.package,
            start=later.isoformat(),
            seconds_apart=1,
        ),
    )
    assert main(["drift", "--now", (later + timedelta(hours=1)).isoformat()]) == 0
    assert drain(aws) == []


def test_retrain_is_submitted_once_when_drift_passes_the_retrain_threshold(
    trained, aws, moto_server, monkeypatch
) -> None:
    request = urllib.request.Request(
        f"{moto_server.endpoint_url}/moto-api/config",
        data=json.dumps({"batch": {"use_docker": False}}).encode(),
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10):
        pass
    batch = boto3.client("batch", endpoint_url=moto_server.endpoint_url)
    iam = boto3.client("iam", endpoint_url=moto_server.endpoint_url)
    suffix = uuid.uuid4().hex[:8]
    role = iam.create_role(RoleName=f"batch-{suffix}", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    env = batch.create_compute_environment(
        computeEnvironmentName=f"ce-{suffix}", type="UNMANAGED", state="ENABLED", serviceRole=role
    )["computeEnvironmentArn"]
    queue = batch.create_job_queue(
        jobQueueName=f"q-{suffix}",
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": env}],
    )["jobQueueArn"]
    definition = batch.register_job_definition(
        jobDefinitionName=f"retrain-{suffix}",
        type="container",
        containerProperties={"image": "retrain:latest", "vcpus": 1, "memory": 512, "command": ["true"]},
    )["jobDefinitionArn"]

    publish_model(aws, trained)
    frame = fresh(2000, seed=42)
    for name in ("satisfaction_score", "monthly_spend", "engagement_score"):
        frame[name] *= 1.3  # three of eight features: above the 30 % retrain share
    put_capture(
        aws,
        capture_records(
            frame, trained.package, start=(datetime.now(UTC) - timedelta(hours=1)).isoformat(), seconds_apart=1
        ),
    )
    job_env(monkeypatch, aws, DRIFT_RETRAIN_ENABLED="true", RETRAIN_JOB_QUEUE=queue, RETRAIN_JOB_DEFINITION=definition)

    assert main(["drift"]) == 0
    later = datetime.now(UTC) + timedelta(minutes=10)  # the next run's window holds new, still drifted capture
    put_capture(aws, capture_records(frame, trained.package, start=later.isoformat(), seconds_apart=1))
    assert main(["drift", "--now", (later + timedelta(hours=1)).isoformat()]) == 0
    jobs = [
        j
        for status in ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")
        for j in batch.list_jobs(jobQueue=queue, jobStatus=status)["jobSummaryList"]
    ]
    assert len(jobs) == 1 and jobs[0]["jobName"].startswith("retrain-churn-drift-")
    kinds = sorted(m["Subject"] for m in drain(aws))
    assert len(kinds) == 2 and any("retrain submitted" in k for k in kinds)


def test_missing_configuration_is_named(monkeypatch, capsys) -> None:
    for name in ("MODEL_BUCKET", "CAPTURE_BUCKET", "CAPTURE_DB_URL"):
        monkeypatch.delenv(name, raising=False)
    assert main(["drift"]) == ExitCode.CONFIG
    assert "MODEL_BUCKET is not set" in capsys.readouterr().err
    monkeypatch.setenv("MODEL_BUCKET", "b")
    assert main(["drift"]) == ExitCode.CONFIG
    assert "CAPTURE_BUCKET" in capsys.readouterr().err


def test_sql_capture_reader_filters_model_and_time(trained, postgres_server) -> None:
    database = f"monitor_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(postgres_server.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f"CREATE DATABASE {database}"))
    admin.dispose()
    url = postgres_server.url.rsplit("/", 1)[0] + f"/{database}"
    engine = sa.create_engine(url)
    table = sa.Table(
        "prediction_capture",
        sa.MetaData(),
        sa.Column("uid", sa.String(32), primary_key=True),
        sa.Column("time", sa.DateTime(timezone=True)),
        sa.Column("service", sa.String),
        sa.Column("model_name", sa.String),
        sa.Column("model_version", sa.Integer),
        sa.Column("input", sa.JSON),
        sa.Column("output", sa.JSON),
        sa.Column("latency_ms", sa.Float),
        sa.Column("prediction", sa.Integer),
        sa.Column("probability", sa.Float),
    )
    table.metadata.create_all(engine)
    records = capture_records(fresh(30, seed=43), trained.package, start="2026-06-01T00:00:00+00:00", seconds_apart=60)
    records[0]["model_version"] = 7
    with engine.begin() as connection:
        connection.execute(
            table.insert(),
            [
                {
                    **r,
                    "time": datetime.fromisoformat(r["time"]),
                    "prediction": r["output"]["prediction"],
                    "probability": r["output"]["probability"],
                }
                for r in records
            ],
        )
    engine.dispose()
    since = datetime(2026, 6, 1, 0, 5, tzinfo=UTC)
    got = SqlCaptureReader(url).read(trained.manifest, since, datetime(2026, 6, 1, 0, 20, tzinfo=UTC))
    assert [r["uid"] for r in got] == [r["uid"] for r in records[5:20]]
    assert got[0]["input"] == records[5]["input"]


def test_summary_job_reads_the_window_from_s3_and_reports_once(trained, aws, monkeypatch, capsys) -> None:
    records = capture_records(
        fresh(90, seed=44), trained.package, start="2026-06-01T11:55:00+00:00", seconds_apart=10
    )  # 11:55:00 .. 12:09:50, across two hour partitions
    put_capture(aws, records)
    job_env(monkeypatch, aws, SUMMARY_MIN_COUNT="50", SUMMARY_WINDOW_MINUTES="10")

    assert main(["summary", "--now", "2026-06-01T12:05:00Z"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["count"] == 60 and summary["sent"]  # 11:55:00 to 12:04:50
    stored = aws["s3"].get_object(Bucket=aws["model"], Key="reports/summary/summary-20260601T115500Z.json")
    assert json.loads(stored["Body"].read())["count"] == 60
    messages = drain(aws)
    assert len(messages) == 1 and "60 predictions" in messages[0]["Subject"]

    assert main(["summary", "--now", "2026-06-01T12:05:00Z"]) == 0  # same window again: no second message
    capsys.readouterr()
    assert drain(aws) == []
    assert main(["summary", "--now", "2026-06-01T12:15:00Z"]) == 0  # next window: 30 rows, below 50
    quiet = json.loads(capsys.readouterr().out)
    assert quiet["count"] == 30 and quiet["sent"] is False
    assert drain(aws) == []
