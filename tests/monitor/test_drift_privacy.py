"""Drift on privacy-protected capture (issue #17 item 4): hashed categoricals are still compared, dropped
and hashed-numeric features are skipped with a report line, and a real shift in a hashed feature is flagged.

The capture records are made by the app's own policy code (``app.capture.privacy``), the drift job reads
the policy from the same runtime settings document and the key from the same environment variable.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.capture.privacy import HASH_KEY_ENV, CapturePrivacy, hash_value
from monitor.__main__ import main
from monitor.privacy import SETTINGS_SOURCE_ENV
from retrain.synthetic import generate_churn
from tests.monitor.conftest import capture_records, fresh, write_jsonl

KEY = "monitor-test-capture-key-0123456789"
POLICY = {"campaign_id": "hash", "monthly_spend": "drop", "logins_30d": "hash"}


def _protected(frame, trained) -> list[dict]:
    """Capture records as the app writes them under POLICY."""
    records = capture_records(frame, trained.package, seconds_apart=10)
    privacy = CapturePrivacy(POLICY, trained.manifest.feature_names, KEY.encode())
    protected = privacy.apply([r["input"] for r in records])
    return [{**r, "input": dict(i)} for r, i in zip(records, protected, strict=True)]


def _drift(trained, tmp_path: Path, records: list[dict], monkeypatch: pytest.MonkeyPatch, name: str) -> dict:
    settings = tmp_path / "runtime.json"
    settings.write_text(json.dumps({"capture_policy": POLICY}))
    monkeypatch.setenv(SETTINGS_SOURCE_ENV, f"file:{settings}")
    monkeypatch.setenv(HASH_KEY_ENV, KEY)
    data = write_jsonl(tmp_path / name / "part.jsonl", records)
    out = tmp_path / f"out-{name}"
    assert main(["drift", "--model", str(trained.path), "--data", str(data), "--out", str(out)]) == 0
    return json.loads((out / "report.json").read_text())


def test_hashed_capture_without_the_view_is_a_false_alarm(trained, tmp_path: Path) -> None:
    """Why the hook exists: the same hashed capture analysed as raw looks like total drift."""
    records = _protected(fresh(3000, seed=41), trained)
    data = write_jsonl(tmp_path / "plain" / "part.jsonl", records)
    out = tmp_path / "out"
    assert main(["drift", "--model", str(trained.path), "--data", str(data), "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert "campaign_id" in report["drifted_features"] and "monthly_spend" in report["drifted_features"]


def test_hashed_categorical_is_compared_and_dropped_features_are_skipped(
    trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = _protected(fresh(3000, seed=41), trained)
    assert all("monthly_spend" not in r["input"] for r in records)
    report = _drift(trained, tmp_path, records, monkeypatch, "same")
    features = {f["name"]: f for f in report["features"]}
    assert "monthly_spend" not in features and "logins_30d" not in features
    campaign = features["campaign_id"]
    assert campaign["test"] == "chi2" and campaign["drift"] is False, campaign
    assert campaign["unseen_share"] == 0.0  # baseline categories were hashed with the same key
    assert report["dataset_drift"] is False, report["drifted_features"]
    assert {v["kind"] for v in report["violations"]} <= {"out_of_range"}  # no missing/unknown noise
    assert "monthly_spend: not tested: dropped from capture by the capture policy" in report["privacy"]
    assert any(line.startswith("logins_30d: not tested: numeric and hashed") for line in report["privacy"])
    assert "campaign_id: tested on keyed hashes (capture policy hash)" in report["privacy"]
    html = (tmp_path / "out-same" / "report.html").read_text()
    assert "Capture privacy" in html and "monthly_spend: not tested" in html
    assert "C05" not in json.dumps(report)  # raw categories never enter the report of hashed capture


def test_a_real_shift_in_a_hashed_categorical_is_flagged(
    trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shifted = generate_churn(3000, seed=42, campaign_mix={"C05": 6.0, "C01": 0.2})
    report = _drift(trained, tmp_path, _protected(shifted, trained), monkeypatch, "shifted")
    assert "campaign_id" in report["drifted_features"], report["features"]
    campaign = next(f for f in report["features"] if f["name"] == "campaign_id")
    assert hash_value(KEY.encode(), "C05") in campaign["bins"]  # the plot shows hashes, not raw categories
