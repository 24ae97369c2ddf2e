"""Prediction summary per window: sent only above the count threshold, once per window."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from monitor.__main__ import main
from tests.monitor.conftest import capture_records, fresh, write_jsonl


def test_summary_counts_the_window_and_sends_only_above_the_threshold(trained, tmp_path: Path, capsys) -> None:
    # 60 predictions, 20 s apart from 12:00:00: the 10-minute window ending 12:10:00 holds 30 of them.
    records = capture_records(fresh(60, seed=51), trained.package, start="2026-06-01T12:00:00+00:00", seconds_apart=20)
    data = write_jsonl(tmp_path / "capture.jsonl", records)
    out = tmp_path / "out"
    args = [
        "summary",
        "--data",
        str(data),
        "--out",
        str(out),
        "--window-minutes",
        "10",
        "--now",
        "2026-06-01T12:10:00Z",
    ]

    assert main([*args, "--min-count", "31"]) == 0
    quiet = json.loads(capsys.readouterr().out)
    assert quiet["count"] == 30 and quiet["sent"] is False
    assert not list(out.glob("summary-*.json")) if out.exists() else True

    assert main([*args, "--min-count", "30"]) == 0
    summary = json.loads(capsys.readouterr().out)
    in_window = records[:30]
    assert summary["sent"] is True and summary["count"] == 30
    expected_mean = np.mean([r["output"]["probability"] for r in in_window])
    assert abs(summary["mean_probability"] - expected_mean) < 1e-12
    assert summary["latency_ms"]["p50"] == np.percentile([r["latency_ms"] for r in in_window], 50)
    stored = json.loads((out / "summary-20260601T120000Z.json").read_text())
    assert stored["count"] == 30
    alerts_state = json.loads((out / ".alerts-sent.json").read_text())
    assert len(alerts_state) == 1  # one alert for this window

    assert main([*args, "--min-count", "30"]) == 0  # the same window again: not a second alert
    capsys.readouterr()
    assert json.loads((out / ".alerts-sent.json").read_text()) == alerts_state
