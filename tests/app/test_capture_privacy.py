"""Capture privacy (issue #17 item 4): keep / hash (keyed) / drop, applied before a record leaves the app.

End to end: the app process captures to S3 (moto server) and PostgreSQL under a policy read from the
runtime settings; the hashed feature is an HMAC of the raw value (same value, same hash; another key,
another hash), the dropped feature is absent from S3, SQL and the app's log, and a policy that cannot be
honoured (hash without a key, an unknown feature) stops the app before it captures anything.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import boto3
import httpx
import pytest
import sqlalchemy as sa

from app.capture.privacy import HASH_KEY_ENV, CapturePolicyError, CapturePrivacy, hash_value
from app.runtime_settings import SettingsError, parse_settings
from contracts.exit_codes import ExitCode
from tests.app.conftest import TrainedPackage, post_json
from tests.support.servers import wait_until

KEY = "k" * 24 + "-test-capture-key"
HASHED, DROPPED = "campaign_id", "monthly_spend"
POLICY = {"capture_policy": {HASHED: "hash", DROPPED: "drop"}}
FAST = {"CAPTURE_FLUSH_SECONDS": "0.2", "CAPTURE_FLUSH_RECORDS": "50", "CAPTURE_RETRY_MAX_SECONDS": "1"}


def test_hash_is_keyed_deterministic_and_keeps_nulls() -> None:
    assert hash_value(b"a" * 16, "C05") == hash_value(b"a" * 16, "C05")
    assert hash_value(b"a" * 16, "C05") != hash_value(b"b" * 16, "C05")
    assert hash_value(b"a" * 16, "C05") != hash_value(b"a" * 16, "C06")
    assert "C05" not in hash_value(b"a" * 16, "C05")  # type: ignore[operator]
    assert hash_value(b"a" * 16, None) is None


def test_policy_errors_name_the_feature_and_what_is_allowed() -> None:
    with pytest.raises(CapturePolicyError, match=r"unknown feature\(s\) \['emial'\].*campaign_id"):
        CapturePrivacy({"emial": "drop"}, ("campaign_id", "tenure_months"), None)
    with pytest.raises(CapturePolicyError, match=rf"hashes \['campaign_id'\] but {HASH_KEY_ENV} is not set"):
        CapturePrivacy({"campaign_id": "hash"}, ("campaign_id",), None)
    with pytest.raises(SettingsError, match=r"capture_policy\.campaign_id: Input should be 'keep', 'hash' or 'drop'"):
        parse_settings(json.dumps({"capture_policy": {"campaign_id": "encrypt"}}), "test")


def test_the_stacks_default_settings_document_is_the_apps_defaults() -> None:
    """The SSM parameter a new stack starts with names capture_policy (discoverable) and keeps everything."""
    from app.runtime_settings import RuntimeSettings
    from infra.service.model_service import RUNTIME_SETTINGS_DEFAULTS

    assert "capture_policy" in RUNTIME_SETTINGS_DEFAULTS
    assert parse_settings(json.dumps(RUNTIME_SETTINGS_DEFAULTS), "ssm default") == RuntimeSettings()


def test_apply_does_not_touch_the_callers_records() -> None:
    privacy = CapturePrivacy({"a": "hash", "b": "drop"}, ("a", "b", "c"), b"x" * 16)
    original = [{"a": "v", "b": 1.5, "c": 3}]
    [out] = privacy.apply(original)
    assert out == {"a": hash_value(b"x" * 16, "v"), "c": 3}
    assert original == [{"a": "v", "b": 1.5, "c": 3}]


def test_sentry_events_carry_no_request_bodies_or_local_variables() -> None:
    """Sentry is a way out of the process too: no request bodies, no frame locals (the records)."""
    import sentry_sdk

    from app.factory import init_sentry

    try:
        assert init_sentry("http://public@127.0.0.1:9/1", "local")
        options = sentry_sdk.get_client().options
        assert options["max_request_body_size"] == "never"
        assert options["include_local_variables"] is False
        assert options["send_default_pii"] is False
    finally:
        sentry_sdk.init()  # no DSN: disabled again for the rest of the session


def _s3_lines(client, bucket: str) -> list[dict]:
    lines: list[dict] = []
    for item in client.list_objects_v2(Bucket=bucket).get("Contents", []):
        body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode()
        lines += [json.loads(line) for line in body.splitlines() if line]
    return lines


def _sql_inputs(url: str) -> dict[str, dict]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            if not sa.inspect(connection).has_table("prediction_capture"):
                return {}
            rows = connection.execute(sa.text("select uid, input from prediction_capture")).all()
    finally:
        engine.dispose()
    return {uid: value if isinstance(value, dict) else json.loads(value) for uid, value in rows}


def test_policy_end_to_end_in_s3_postgres_and_logs(
    trained: TrainedPackage, moto_server, postgres_server, app_process, tmp_path: Path
) -> None:
    bucket = f"capture-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client("s3", endpoint_url=moto_server.endpoint_url)
    s3.create_bucket(Bucket=bucket)
    schema = f"privacy_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(postgres_server.url)
    with admin.begin() as connection:
        connection.execute(sa.text(f"create schema {schema}"))
    admin.dispose()
    db_url = f"{postgres_server.url}?options=-csearch_path%3D{schema}"
    settings = tmp_path / "runtime.json"
    settings.write_text(json.dumps(POLICY))
    app = app_process(
        trained.path,
        env={
            **FAST,
            "CAPTURE_S3_URI": f"s3://{bucket}",
            "AWS_ENDPOINT_URL": moto_server.endpoint_url,
            "CAPTURE_DB_URL": db_url,
            "SETTINGS_SOURCE": f"file:{settings}",
            HASH_KEY_ENV: KEY,
            "LOG_LEVEL": "DEBUG",
        },
    )
    records = trained.records[:40]
    # One out-of-range value too (policy "warn": answered, with a violation) so the validation path runs.
    odd = {**records[0], DROPPED: 99999.37}
    sent: dict[str, dict] = {}
    for batch in (records[:20], records[20:], [odd]):
        status, _, body = post_json(app.url, batch)
        assert status == 200, body
        sent.update({p["uid"]: record for p, record in zip(body["predictions"], batch, strict=True)})
    assert len({r[HASHED] for r in sent.values()} - {None}) > 1  # several campaigns: "same value, same hash" is tested

    wait_until(lambda: len(_s3_lines(s3, bucket)) == len(sent), 30, "S3 capture")
    wait_until(lambda: len(_sql_inputs(db_url)) == len(sent), 30, "PostgreSQL capture")
    stored = {"s3": {line["uid"]: line["input"] for line in _s3_lines(s3, bucket)}, "sql": _sql_inputs(db_url)}
    key = KEY.encode()
    for where, inputs in stored.items():
        assert set(inputs) == set(sent), where
        for uid, captured in inputs.items():
            raw = sent[uid]
            assert DROPPED not in captured, (where, captured)
            assert captured[HASHED] == hash_value(key, raw[HASHED]), (where, captured)
            if raw[HASHED] is not None:  # a null stays null (null rates stay measurable)
                assert captured[HASHED] != hash_value(b"another-key-of-16-bytes", raw[HASHED])
            assert {k: v for k, v in captured.items() if k != HASHED} == {
                k: v for k, v in raw.items() if k not in (HASHED, DROPPED)
            }, where
    # Same raw value -> same stored hash, across records.
    by_raw: dict[str, set[str]] = {}
    for uid, captured in stored["s3"].items():
        if sent[uid][HASHED] is not None:
            by_raw.setdefault(sent[uid][HASHED], set()).add(captured[HASHED])
    assert all(len(hashes) == 1 for hashes in by_raw.values()) and len(set().union(*by_raw.values())) == len(by_raw)

    assert app.terminate()
    log = app.log()
    assert "runtime settings from file:" in log  # the log was written at DEBUG and is the one checked
    for raw in sent.values():
        assert raw[DROPPED] is None or f"{raw[DROPPED]}" not in log, raw[DROPPED]
        assert raw[HASHED] is None or raw[HASHED] not in log, raw[HASHED]
    assert KEY not in log


@pytest.mark.parametrize(
    "case",
    [
        ({HASHED: "hash"}, None, f"hashes ['{HASHED}'] but {HASH_KEY_ENV} is not set"),
        ({"emial": "drop"}, KEY, "unknown feature(s) ['emial']"),
        ({HASHED: "hash"}, "too-short", f"{HASH_KEY_ENV} is 9 bytes; at least 16 are required"),
    ],
)
def test_policy_that_cannot_be_honoured_refuses_to_start(
    trained: TrainedPackage, app_process, tmp_path: Path, case: tuple[dict, str | None, str]
) -> None:
    policy, key, phrase = case
    settings = tmp_path / "runtime.json"
    settings.write_text(json.dumps({"capture_policy": policy}))
    env = {"SETTINGS_SOURCE": f"file:{settings}", **({HASH_KEY_ENV: key} if key else {})}
    app = app_process(trained.path, env=env, wait=False)
    code = app.wait_exit(60)
    log = app.log()
    assert code == ExitCode.CONFIG, log
    assert "refusing to start" in log and phrase in log, log


def test_a_bad_policy_at_runtime_keeps_the_last_good_one(trained: TrainedPackage, app_process, tmp_path: Path) -> None:
    settings = tmp_path / "runtime.json"
    settings.write_text(json.dumps(POLICY))
    app = app_process(
        trained.path, env={"SETTINGS_SOURCE": f"file:{settings}", "SETTINGS_REFRESH_SECONDS": "0.1", HASH_KEY_ENV: KEY}
    )
    settings.write_text(json.dumps({"capture_policy": {"emial": "drop"}}))
    wait_until(lambda: "unknown feature(s) ['emial']" in app.log(), 30, "the refused policy in the log")
    assert httpx.get(f"{app.url}/model").json()["settings"]["capture_policy"] == POLICY["capture_policy"]
    assert app.terminate()


def test_capture_is_held_while_the_policy_cannot_be_read(
    trained: TrainedPackage, moto_server, app_process, tmp_path: Path
) -> None:
    """Fail closed: with the settings source unreadable at start, answers go on but nothing is captured (a
    counted drop, a CRITICAL line) until a policy has been read; then capture resumes under that policy."""
    bucket = f"capture-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client("s3", endpoint_url=moto_server.endpoint_url)
    s3.create_bucket(Bucket=bucket)
    settings = tmp_path / "runtime.json"
    settings.mkdir()  # unreadable as a document: IsADirectoryError, as an SSM outage would be
    app = app_process(
        trained.path,
        env={
            **FAST,
            "CAPTURE_S3_URI": f"s3://{bucket}",
            "AWS_ENDPOINT_URL": moto_server.endpoint_url,
            "SETTINGS_SOURCE": f"file:{settings}",
            "SETTINGS_REFRESH_SECONDS": "0.2",
            HASH_KEY_ENV: KEY,
        },
    )
    held = trained.records[:10]
    status, _, body = post_json(app.url, held)
    assert status == 200, body
    metrics = httpx.get(f"{app.url}/metrics").text
    assert 'app_capture_dropped_records_total{reason="policy_unknown",sink="all"} 10.0' in metrics, metrics
    assert "capture held" in app.log()

    settings.rmdir()
    settings.write_text(json.dumps(POLICY))
    wait_until(lambda: "runtime settings from file:" in app.log(), 30, "the policy read")
    later = trained.records[10:30]
    status, _, body = post_json(app.url, later)
    assert status == 200, body
    wait_until(lambda: len(_s3_lines(s3, bucket)) == len(later), 30, "S3 capture after the policy was read")
    captured = [line["input"] for line in _s3_lines(s3, bucket)]
    assert all(DROPPED not in c and (c[HASHED] is None or c[HASHED].startswith("hmac-sha256:")) for c in captured)
    assert app.terminate()
