"""Capture end to end: the app process writes every answered record to S3 (moto server) and SQL.

Outages are real: the moto server and PostgreSQL are stopped mid-load and started again, and the test
then counts every uid the clients were given: each must be stored exactly once.
"""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path

import boto3
import httpx
import pytest
import sqlalchemy as sa

from tests.app.conftest import AppProcess, TrainedPackage, post_json
from tests.support.servers import wait_until


def _s3(moto_server):
    return boto3.client("s3", endpoint_url=moto_server.endpoint_url)


def _s3_uids(client, bucket: str, prefix: str) -> list[str]:
    uids: list[str] = []
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode()
            uids.extend(json.loads(line)["uid"] for line in body.splitlines() if line)
    return uids


def _sql_uids(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            if not sa.inspect(connection).has_table("prediction_capture"):
                return []
            return [row[0] for row in connection.execute(sa.text("select uid from prediction_capture"))]
    finally:
        engine.dispose()


class Load:
    """Posts records from a background thread until stopped; remembers every uid the app answered with."""

    def __init__(self, app: AppProcess, records: list[dict]) -> None:
        self.app, self.records = app, records
        self.uids: list[str] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        i = 0
        with httpx.Client(base_url=self.app.url, timeout=30) as client:
            while not self._stop.is_set():
                batch = self.records[i % len(self.records) : i % len(self.records) + 1 + i % 3]
                response = client.post("/predict", json=batch)
                if response.status_code != 200:
                    self.failures.append(f"{response.status_code}: {response.text}")
                else:
                    self.uids.extend(p["uid"] for p in response.json()["predictions"])
                i += 1

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def wait_for(self, count: int) -> None:
        wait_until(lambda: len(self.uids) >= count, 60, f"{count} answered records")

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


FAST = {"CAPTURE_FLUSH_SECONDS": "0.2", "CAPTURE_FLUSH_RECORDS": "50", "CAPTURE_RETRY_MAX_SECONDS": "1"}


def test_capture_lands_in_s3_partitioned_and_in_sqlite(
    trained: TrainedPackage, moto_server, app_process, tmp_path: Path
) -> None:
    bucket = f"capture-{uuid.uuid4().hex[:12]}"
    client = _s3(moto_server)
    client.create_bucket(Bucket=bucket)
    db = tmp_path / "capture.db"
    app = app_process(
        trained.path,
        env={
            **FAST,
            "CAPTURE_S3_URI": f"s3://{bucket}",
            "AWS_ENDPOINT_URL": moto_server.endpoint_url,
            "CAPTURE_DB_URL": f"sqlite:///{db}",
            "SERVICE_NAME": "stage",
        },
    )
    status, _, body = post_json(app.url, trained.records[:5])
    assert status == 200
    sent = [p["uid"] for p in body["predictions"]]
    wait_until(lambda: sorted(_s3_uids(client, bucket, "capture/stage/")) == sorted(sent), 30, "S3 capture")
    [key] = [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]]
    assert key.startswith("capture/stage/dt=") and "/hour=" in key and key.endswith(".jsonl")
    line = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read().decode().splitlines()[0])
    assert set(line) == {"uid", "time", "service", "model_name", "model_version", "input", "output", "latency_ms"}
    assert line["service"] == "stage" and line["model_version"] == 7
    assert line["input"] == trained.records[0] and set(line["output"]) == {"label", "prediction", "probability"}
    assert key.split("/")[2] == f"dt={line['time'][:10]}"
    wait_until(lambda: sorted(_sql_uids(f"sqlite:///{db}")) == sorted(sent), 30, "SQLite capture")
    assert app.terminate()


def test_s3_outage_mid_load_loses_and_duplicates_nothing(trained: TrainedPackage, moto_server, app_process) -> None:
    bucket = f"capture-{uuid.uuid4().hex[:12]}"
    client = _s3(moto_server)
    client.create_bucket(Bucket=bucket)
    app = app_process(
        trained.path,
        env={**FAST, "CAPTURE_S3_URI": f"s3://{bucket}/cap/prod", "AWS_ENDPOINT_URL": moto_server.endpoint_url},
    )
    with Load(app, trained.records) as load:
        load.wait_for(100)
        moto_server.stop()
        down_at = len(load.uids)
        load.wait_for(down_at + 300)  # answered while S3 is down: requests never wait on capture
        moto_server.start()  # a fresh endpoint: state is gone, as after a real outage of a new bucket
        client = _s3(moto_server)
        client.create_bucket(Bucket=bucket)
        load.wait_for(len(load.uids) + 100)
    assert not load.failures
    assert app.metric("app_capture_records_total", '{outcome="spooled",sink="s3"}') > 0
    sent = load.uids
    # Records delivered before the outage were lost with moto's memory; the spool must hold none of those,
    # so only what came after the last pre-outage delivery is checked for exact-once.
    wait_until(lambda: app.metric("app_capture_spool_segments", '{sink="s3"}') == 0, 60, "spool replayed")
    assert app.terminate()
    stored = _s3_uids(client, bucket, "cap/prod/")
    assert len(stored) == len(set(stored)), "a record was stored twice"
    after = sent[down_at:]
    missing = set(after) - set(stored)
    assert not missing, f"{len(missing)} of {len(after)} records answered during/after the outage are missing"


def test_postgres_outage_mid_load_loses_and_duplicates_nothing(
    trained: TrainedPackage, postgres_server, app_process
) -> None:
    schema = f"cap_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(postgres_server.url)
    with admin.begin() as connection:
        connection.execute(sa.text(f"create schema {schema}"))
    admin.dispose()
    url = f"{postgres_server.url}?options=-csearch_path%3D{schema}"
    app = app_process(trained.path, env={**FAST, "CAPTURE_DB_URL": url})
    with Load(app, trained.records) as load:
        load.wait_for(100)
        postgres_server.stop()
        load.wait_for(len(load.uids) + 300)
        postgres_server.start()
        load.wait_for(len(load.uids) + 100)
    assert not load.failures
    assert app.metric("app_capture_records_total", '{outcome="spooled",sink="sql"}') > 0
    sent = load.uids
    wait_until(lambda: len(_sql_uids(url)) >= len(sent), 60, "all records in PostgreSQL")
    stored = _sql_uids(url)
    assert sorted(stored) == sorted(sent)
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        row = connection.execute(
            sa.text(
                "select service, model_version, prediction, probability, input, output from prediction_capture limit 1"
            )
        ).one()
    engine.dispose()
    assert row.service == "local" and row.model_version == 7
    assert row.prediction == row.output["prediction"] and row.probability == pytest.approx(row.output["probability"])
    assert set(row.input) == set(trained.manifest.feature_names)
    assert app.terminate()


def test_sigterm_flushes_what_is_buffered(trained: TrainedPackage, moto_server, app_process, tmp_path: Path) -> None:
    bucket = f"capture-{uuid.uuid4().hex[:12]}"
    client = _s3(moto_server)
    client.create_bucket(Bucket=bucket)
    db = f"sqlite:///{tmp_path / 'flush.db'}"
    # Size and time triggers far away: only the SIGTERM flush can deliver these records.
    app = app_process(
        trained.path,
        env={
            "CAPTURE_FLUSH_SECONDS": "3600",
            "CAPTURE_FLUSH_RECORDS": "100000",
            "CAPTURE_S3_URI": f"s3://{bucket}",
            "AWS_ENDPOINT_URL": moto_server.endpoint_url,
            "CAPTURE_DB_URL": db,
        },
    )
    sent = []
    for i in range(20):
        status, _, body = post_json(app.url, trained.records[i])
        assert status == 200
        sent.extend(p["uid"] for p in body["predictions"])
    assert _s3_uids(client, bucket, "") == [] and _sql_uids(db) == []
    assert app.terminate()
    assert sorted(_s3_uids(client, bucket, "capture/local/")) == sorted(sent)
    assert sorted(_sql_uids(db)) == sorted(sent)


def test_sigterm_with_sink_down_spools_and_next_start_replays(
    trained: TrainedPackage, moto_server, app_process, tmp_path: Path
) -> None:
    bucket = f"missing-{uuid.uuid4().hex[:12]}"  # not created yet: every write fails
    spool = tmp_path / "shared-spool"
    env = {
        **FAST,
        "SPOOL_DIR": str(spool),
        "CAPTURE_S3_URI": f"s3://{bucket}",
        "AWS_ENDPOINT_URL": moto_server.endpoint_url,
    }
    app = app_process(trained.path, env=env)
    status, _, body = post_json(app.url, trained.records[:7])
    assert status == 200
    sent = [p["uid"] for p in body["predictions"]]
    wait_until(lambda: app.metric("app_capture_records_total", '{outcome="spooled",sink="s3"}') >= 7, 30, "spooled")
    assert app.terminate()
    assert list((spool / "slot-0" / "s3").glob("*.jsonl"))
    client = _s3(moto_server)
    client.create_bucket(Bucket=bucket)
    again = app_process(trained.path, env=env)  # same spool dir: takes over slot-0 and replays it
    wait_until(lambda: sorted(_s3_uids(client, bucket, "")) == sorted(sent), 30, "replay after restart")
    assert again.terminate()
