"""The drift job reads a bounded window of capture (issue #13, item 7), against moto.

Measured on main: the job read every capture object since the champion was trained, one GET at a time,
whatever earlier runs had already judged. Here GETs on the capture bucket are counted per key (a botocore
``provide-client-params`` hook on the job's own client): objects outside the window must never be fetched.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from contracts.bucket_layout import capture_key, hour_prefix, hour_prefixes
from jobs_common.capture import S3CaptureReader
from monitor.__main__ import main
from monitor.window import RunLedger, Window, drift_window, report_root
from tests.monitor.conftest import capture_records, fresh
from tests.monitor.test_drift_job_aws import job_env, publish_model


@pytest.fixture
def capture_gets(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """(bucket, key) of every GetObject any S3 client made by the job sends."""
    gets: list[tuple[str, str]] = []
    real = boto3.client

    def counting(service: str, *args: Any, **kwargs: Any) -> Any:
        client = real(service, *args, **kwargs)
        if service == "s3":

            def record(params: dict[str, Any], **_: Any) -> None:
                gets.append((params["Bucket"], params["Key"]))

            client.meta.events.register("provide-client-params.s3.GetObject", record)
        return client

    monkeypatch.setattr(boto3, "client", counting)
    return gets


def put_batches(aws: dict, records: list[dict], per_object: int) -> list[str]:
    """Objects in the app's layout (one key function for app and jobs), ``per_object`` records each."""
    keys = []
    for i in range(0, len(records), per_object):
        batch = records[i : i + per_object]
        key = capture_key("capture/prod", datetime.fromisoformat(batch[0]["time"]), "w1", batch[0]["uid"])
        body = "".join(json.dumps(r) + "\n" for r in batch).encode()
        aws["s3"].put_object(Bucket=aws["capture"], Key=key, Body=body)
        keys.append(key)
    return keys


def history(trained, aws, now: datetime) -> tuple[list[str], list[str], list[dict]]:
    """Old objects every 6 h from 10 days to 4 h ago (5 records each), recent ones in the last 3 h."""
    old_start = now - timedelta(days=10)
    old = capture_records(fresh(200, seed=61), trained.package, start=old_start.isoformat(), seconds_apart=1080)
    recent_start = now - timedelta(hours=3)
    recent = capture_records(fresh(180, seed=62), trained.package, start=recent_start.isoformat(), seconds_apart=55)
    return put_batches(aws, old, 5), put_batches(aws, recent, 20), recent


def test_the_layout_is_the_apps() -> None:
    from app.capture.sinks import s3_key

    record = {"time": "2026-06-01T23:59:59.123456+00:00", "uid": "abc"}
    when = datetime(2026, 6, 1, 23, 59, 59, 123456, tzinfo=UTC)
    assert s3_key("capture/prod", [record], "w7") == capture_key("capture/prod", when, "w7", "abc")
    assert capture_key("capture/prod", when, "w7", "abc").startswith(hour_prefix("capture/prod", when))
    since, until = datetime(2026, 6, 1, 22, 30, tzinfo=UTC), datetime(2026, 6, 2, 0, 0, tzinfo=UTC)
    assert hour_prefixes("p", since, until) == ["p/dt=2026-06-01/hour=22/", "p/dt=2026-06-01/hour=23/"]
    assert hour_prefixes("p", until, since) == []


def test_default_window_starts_at_the_last_successful_report(trained, aws, monkeypatch, capture_gets) -> None:
    publish_model(aws, trained)
    now = datetime.now(UTC)
    old_keys, recent_keys, recent = history(trained, aws, now)
    marker_until = now - timedelta(hours=3, minutes=1)
    root = report_root("reports/drift", trained.manifest)
    RunLedger(aws["s3"], aws["model"], root).record_success(Window(now - timedelta(days=1), marker_until, "t"), None)
    job_env(monkeypatch, aws)

    assert main(["drift"]) == 0
    fetched = {key for bucket, key in capture_gets if bucket == aws["capture"]}
    assert fetched.isdisjoint(old_keys), f"{len(fetched & set(old_keys))} objects before the window were fetched"
    assert fetched == set(recent_keys)
    reports = aws["s3"].list_objects_v2(Bucket=aws["model"], Prefix=f"{root}/")["Contents"]
    report_key = next(o["Key"] for o in reports if o["Key"].endswith("/report.json"))
    report = json.loads(aws["s3"].get_object(Bucket=aws["model"], Key=report_key)["Body"].read())
    assert report["rows"] == len(recent)
    assert report["window"]["since"] == marker_until.isoformat()
    assert "last successful report" in report["window"]["basis"]
    marker = RunLedger(aws["s3"], aws["model"], root).last_success()
    assert marker is not None and marker > now - timedelta(minutes=5)  # the marker moved to this run's end


def test_without_a_marker_the_window_is_capped(trained, aws, monkeypatch, capture_gets) -> None:
    publish_model(aws, trained)  # trained 2026-05-01: "since training" would be months of capture
    now = datetime.now(UTC)
    old_keys, recent_keys, _ = history(trained, aws, now)
    job_env(monkeypatch, aws, DRIFT_MAX_WINDOW_HOURS="48")

    assert main(["drift"]) == 0
    fetched = {key for bucket, key in capture_gets if bucket == aws["capture"]}
    cutoff = hour_prefix("capture/prod", now - timedelta(hours=48))
    assert all(key >= cutoff for key in fetched)
    assert set(recent_keys) <= fetched
    assert len(fetched) < len(old_keys) + len(recent_keys)  # the older days were never fetched


def test_a_run_after_a_success_reads_only_what_came_since(trained, aws, monkeypatch, capture_gets) -> None:
    publish_model(aws, trained)
    first_end = datetime(2026, 6, 20, 12, 0, tzinfo=UTC)
    first = capture_records(fresh(150, seed=63), trained.package, start="2026-06-20T10:00:00+00:00", seconds_apart=40)
    first_keys = put_batches(aws, first, 30)
    job_env(monkeypatch, aws)
    assert main(["drift", "--now", first_end.isoformat()]) == 0
    root = report_root("reports/drift", trained.manifest)
    assert RunLedger(aws["s3"], aws["model"], root).last_success() == first_end

    second = capture_records(fresh(120, seed=64), trained.package, start="2026-06-20T13:00:00+00:00", seconds_apart=25)
    second_keys = put_batches(aws, second, 30)
    capture_gets.clear()
    assert main(["drift", "--now", "2026-06-20T14:00:00+00:00"]) == 0
    fetched = {key for bucket, key in capture_gets if bucket == aws["capture"]}
    assert fetched == set(second_keys) and fetched.isdisjoint(first_keys)

    capture_gets.clear()  # nothing new: refused as too little data, and the marker does not move
    assert main(["drift", "--now", "2026-06-20T15:00:00+00:00"]) == 16
    assert RunLedger(aws["s3"], aws["model"], root).last_success() == datetime(2026, 6, 20, 14, 0, tzinfo=UTC)


def test_reader_fetches_in_parallel_bounded_and_in_time_order(trained, aws) -> None:
    records = capture_records(fresh(400, seed=65), trained.package, start="2026-06-01T00:00:00+00:00", seconds_apart=60)
    put_batches(aws, records, 10)  # 40 objects over ~7 hours
    s3 = aws["s3"]
    lock, state = threading.Lock(), {"now": 0, "max": 0, "threads": set()}
    real_get = s3.get_object

    def tracking(**kwargs: Any) -> Any:
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
            state["threads"].add(threading.current_thread().name)
        try:
            return real_get(**kwargs)
        finally:
            with lock:
                state["now"] -= 1

    s3.get_object = tracking
    try:
        reader = S3CaptureReader(s3, aws["capture"], "capture/prod", workers=3)
        got = reader.read(
            trained.manifest, datetime(2026, 6, 1, 1, 0, tzinfo=UTC), datetime(2026, 6, 1, 5, 0, tzinfo=UTC)
        )
    finally:
        del s3.get_object
    expected = [r for r in records if "2026-06-01T01:00:00" <= r["time"] < "2026-06-01T05:00:00"]
    assert [r["uid"] for r in got] == [r["uid"] for r in expected]  # every record, once, in time order
    assert state["max"] <= 3
    assert all(name.startswith("capture-get") for name in state["threads"])


def test_window_rules() -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    manifest: Any = type("Trained", (), {"created_at": datetime(2026, 5, 1, tzinfo=UTC)})()
    assert drift_window(manifest, now, None).since == now - timedelta(hours=168)  # capped
    assert drift_window(manifest, now, now - timedelta(hours=5)).since == now - timedelta(hours=5)
    assert drift_window(manifest, now, now - timedelta(days=30)).since == now - timedelta(hours=168)
    assert drift_window(manifest, now, None, fixed=timedelta(hours=2)).since == now - timedelta(hours=2)
    young: Any = type("Y", (), {"created_at": now - timedelta(hours=1)})()
    assert drift_window(young, now, None).since == now - timedelta(hours=1)  # never before training


def test_a_window_with_more_records_than_the_cap_keeps_a_uniform_sample(trained, aws) -> None:
    """Memory is bounded by DRIFT_MAX_ROWS whatever the traffic: a seeded uniform sample, in time order."""
    records = capture_records(fresh(400, seed=66), trained.package, start="2026-06-01T00:00:00+00:00", seconds_apart=60)
    put_batches(aws, records, 10)
    since, until = datetime(2026, 6, 1, 1, 0, tzinfo=UTC), datetime(2026, 6, 1, 5, 0, tzinfo=UTC)
    reader = S3CaptureReader(aws["s3"], aws["capture"], "capture/prod", workers=2, max_records=50)
    got = reader.read(trained.manifest, since, until)
    in_window = {r["uid"] for r in records if "2026-06-01T01:00:00" <= r["time"] < "2026-06-01T05:00:00"}
    assert reader.last_seen == len(in_window) == 240
    assert len(got) == 50 and len({r["uid"] for r in got}) == 50 and {r["uid"] for r in got} <= in_window
    assert [r["time"] for r in got] == sorted(r["time"] for r in got)
    times = sorted(r["time"] for r in got)  # spread over the window, not its first 50 rows
    assert times[0] < "2026-06-01T02:00:00" and times[-1] >= "2026-06-01T04:00:00"
    again = S3CaptureReader(aws["s3"], aws["capture"], "capture/prod", workers=2, max_records=50)
    assert [r["uid"] for r in again.read(trained.manifest, since, until)] == [r["uid"] for r in got]  # seeded
