"""Prediction summary per window: volume, mean prediction, latency percentiles.

Runs on a schedule (every ``SUMMARY_WINDOW_MINUTES``); the summary is stored and sent through the
alert path only when the window saw at least ``SUMMARY_MIN_COUNT`` predictions, so a quiet service
does not fill the topic with empty reports.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from alerting import Alert, AlertPublisher, Severity
from monitor.sinks import ReportSink
from monitor.sources import parse_time

PERCENTILES = (50, 90, 99)


def summarize(records: list[dict[str, Any]], start: datetime, end: datetime) -> dict[str, Any]:
    probability = np.array([(r.get("output") or {}).get("probability", np.nan) for r in records], dtype=np.float64)
    prediction = np.array([(r.get("output") or {}).get("prediction", np.nan) for r in records], dtype=np.float64)
    latency = np.array([np.nan if r.get("latency_ms") is None else r["latency_ms"] for r in records], dtype=np.float64)
    latency = latency[~np.isnan(latency)]
    by_version: dict[str, int] = {}
    for r in records:
        key = f"{r.get('model_name')}:v{r.get('model_version')}"
        by_version[key] = by_version.get(key, 0) + 1
    return {
        "window_start": start.isoformat(),
        "window_end": end.isoformat(),
        "count": len(records),
        "mean_probability": float(np.nanmean(probability)) if np.isfinite(probability).any() else None,
        "positive_rate": float(np.nanmean(prediction)) if np.isfinite(prediction).any() else None,
        "latency_ms": {f"p{p}": float(np.percentile(latency, p)) for p in PERCENTILES} if len(latency) else {},
        "by_model": by_version,
    }


class SummaryJob:
    def __init__(self, sink: ReportSink, publisher: AlertPublisher, min_count: int, window: timedelta) -> None:
        self.sink, self.publisher, self.min_count, self.window = sink, publisher, min_count, window

    def run(self, records: list[dict[str, Any]], end: datetime) -> dict[str, Any]:
        start = end - self.window
        in_window = [r for r in records if start <= parse_time(r.get("time")) < end]
        summary = summarize(in_window, start, end)
        summary["sent"] = summary["count"] >= self.min_count
        if not summary["sent"]:
            return summary
        name = f"summary-{start:%Y%m%dT%H%M%SZ}.json"
        location = self.sink.write(name, (json.dumps(summary, indent=2) + "\n").encode(), "application/json")
        summary["location"] = location
        latency = summary["latency_ms"]
        self.publisher.publish(
            Alert(
                source="monitor.summary",
                kind="prediction-summary",
                severity=Severity.INFO,
                summary=f"{summary['count']} predictions in {self.window}, mean probability "
                + (f"{summary['mean_probability']:.3f}" if summary["mean_probability"] is not None else "-")
                + (f", p99 latency {latency['p99']:.1f} ms" if latency else ""),
                where_to_look=location,
                details=summary,
                dedup_key=summary["window_start"],  # one per window; a re-run of the same window is suppressed
            )
        )
        return summary
