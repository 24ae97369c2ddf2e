"""Prediction summary per window: volume, what the model answered (per task), latency percentiles.

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
from contracts.capture_record import LABEL, LATENCY_MS, OUTPUT, PREDICTION, PROBABILITY, VALUE, output_task
from jobs_common.capture import parse_time
from monitor.sinks import ReportSink

PERCENTILES = (50, 90, 99)


def _numbers(values: list[Any]) -> np.ndarray:
    return np.array(
        [v if isinstance(v, int | float) and not isinstance(v, bool) else np.nan for v in values], dtype=np.float64
    )


def summarize(records: list[dict[str, Any]], start: datetime, end: datetime) -> dict[str, Any]:
    """Volume, latency and what the model answered, per task: binary mean probability and positive rate,
    multiclass the share of each predicted label, regression mean/p50/p90 of the value."""
    outputs = [r.get(OUTPUT) or {} for r in records]
    task = output_task(outputs)
    latency = np.array([np.nan if r.get(LATENCY_MS) is None else r[LATENCY_MS] for r in records], dtype=np.float64)
    latency = latency[~np.isnan(latency)]
    by_version: dict[str, int] = {}
    for r in records:
        key = f"{r.get('model_name')}:v{r.get('model_version')}"
        by_version[key] = by_version.get(key, 0) + 1
    summary: dict[str, Any] = {
        "window_start": start.isoformat(),
        "window_end": end.isoformat(),
        "count": len(records),
        "task": task,
        "mean_probability": None,
    }
    if task == "binary":
        probability = _numbers([o.get(PROBABILITY) for o in outputs])
        prediction = _numbers([o.get(PREDICTION) for o in outputs])
        summary["mean_probability"] = float(np.nanmean(probability)) if np.isfinite(probability).any() else None
        summary["positive_rate"] = float(np.nanmean(prediction)) if np.isfinite(prediction).any() else None
    elif task == "multiclass":
        counts: dict[str, int] = {}
        for output in outputs:
            if output.get(LABEL) is not None:
                counts[str(output[LABEL])] = counts.get(str(output[LABEL]), 0) + 1
        total = sum(counts.values())
        summary["label_share"] = {k: v / total for k, v in sorted(counts.items())} if total else {}
    else:
        value = _numbers([o.get(VALUE) for o in outputs])
        value = value[np.isfinite(value)]
        summary["mean_value"] = float(value.mean()) if len(value) else None
        summary["value_percentiles"] = {f"p{p}": float(np.percentile(value, p)) for p in (50, 90)} if len(value) else {}
    summary["latency_ms"] = {f"p{p}": float(np.percentile(latency, p)) for p in PERCENTILES} if len(latency) else {}
    summary["by_model"] = by_version
    return summary


def _headline(summary: dict[str, Any]) -> str:
    if summary["task"] == "multiclass":
        shares = summary.get("label_share") or {}
        return ", labels " + (", ".join(f"{k} {v:.0%}" for k, v in shares.items()) or "-")
    if summary["task"] == "regression":
        mean = summary.get("mean_value")
        return ", mean value " + (f"{mean:.3g}" if mean is not None else "-")
    mean = summary.get("mean_probability")
    return ", mean probability " + (f"{mean:.3f}" if mean is not None else "-")


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
                summary=f"{summary['count']} predictions in {self.window}"
                + _headline(summary)
                + (f", p99 latency {latency['p99']:.1f} ms" if latency else ""),
                where_to_look=location,
                details=summary,
                dedup_key=summary["window_start"],  # one per window; a re-run of the same window is suppressed
            )
        )
        return summary
