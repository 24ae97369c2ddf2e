"""Prometheus metrics of the app, shared by the HTTP layer, the batcher and capture.

With several uvicorn workers every process has its own counters, so ``__main__`` sets
``PROMETHEUS_MULTIPROC_DIR`` before the workers start and ``/metrics`` then aggregates all processes
(prometheus_client's multiprocess mode); a single-process run uses the default registry.
"""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values

_pid = [os.getpid()]  # refreshed in every forked child


def _cached_pid() -> int:
    return _pid[0]


def _refresh_pid() -> None:
    _pid[0] = os.getpid()


os.register_at_fork(after_in_child=_refresh_pid)
if values.ValueClass is not values.MutexValue:
    # Multi-process mode checks the process id on every increment to notice a fork, and glibc no longer
    # caches getpid(): that was 3-4 system calls per request. The pid is cached here instead and refreshed
    # in every forked child, which keeps the one rule the hook documents: distinct values in processes that
    # run at the same time (prometheus_client.values.MultiProcessValue).
    # prometheus_client's multiprocess helpers carry no annotations (the package is typed elsewhere).
    values.ValueClass = values.MultiProcessValue(process_identifier=_cached_pid)  # type: ignore[no-untyped-call]

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)

REQUESTS = Counter("app_requests_total", "HTTP /predict requests by status code", ["status"])
REQUEST_LATENCY = Histogram(
    "app_request_latency_seconds", "Time from request start to answer for /predict", buckets=_LATENCY_BUCKETS
)
PREDICTIONS = Counter("app_predictions_total", "Records scored")
BATCHES = Counter("app_predict_batches_total", "predict_fn calls made by the micro-batcher")
BATCH_RECORDS = Histogram("app_batch_records", "Records per merged predict call", buckets=_BATCH_BUCKETS)
BATCH_REQUESTS = Histogram("app_batch_requests", "HTTP requests merged into one predict call", buckets=_BATCH_BUCKETS)
VIOLATIONS = Counter("app_violations_total", "Schema violations by kind and severity", ["kind", "severity"])
CAPTURE_RECORDS = Counter(
    "app_capture_records_total",
    "Capture records by sink and outcome (delivered, spooled, replayed)",
    ["sink", "outcome"],
)
CAPTURE_FAILURES = Counter("app_capture_sink_failures_total", "Failed writes to a capture sink", ["sink"])
SPOOL_SEGMENTS = Gauge(
    "app_capture_spool_segments", "Spooled segments waiting for a sink", ["sink"], multiprocess_mode="livesum"
)
SPOOL_BYTES = Gauge("app_capture_spool_bytes", "Bytes of spooled segments", ["sink"], multiprocess_mode="livesum")
CAPTURE_BACKLOG = Gauge(
    "app_capture_backlog_records",
    "Capture records not yet confirmed by the sink (queued, batching, spooled, held in memory)",
    ["sink"],
    multiprocess_mode="livesum",
)
CAPTURE_OLDEST_UNSENT = Gauge(
    "app_capture_oldest_unsent_seconds",
    "Age of the oldest capture record not yet confirmed by the sink",
    ["sink"],
    multiprocess_mode="livemax",
)
CAPTURE_UNHEALTHY = Gauge(
    "app_capture_unhealthy",
    "1 when the sink's capture has been failing longer than CAPTURE_UNHEALTHY_SECONDS",
    ["sink"],
    multiprocess_mode="livemax",
)
CAPTURE_QUARANTINED = Counter(
    "app_capture_quarantined_records_total",
    "Capture records set aside in the quarantine (corrupt segment lines, records the sink rejects permanently)",
    ["sink"],
)
CAPTURE_DROPPED = Counter(
    "app_capture_dropped_records_total",
    "Capture records lost (spool overflow policy, in-memory bound while the spool is not writable)",
    ["sink", "reason"],
)
CAPTURE_IDS_NOT_STORED = Counter(
    "app_capture_ids_not_stored_total",
    "Capture records whose ids the sink could not store (a SQL table without an ids column that may not be added)",
    ["sink"],
)
CAPTURE_SPOOL_ERRORS = Counter("app_capture_spool_write_errors_total", "Failed writes to the capture spool", ["sink"])
HTTP_REJECTED = Counter(
    "app_http_rejected_total",
    "Connections or requests refused by an HTTP limit (header_too_large, headers_timeout, body_timeout)",
    ["reason"],
)
MODEL_INFO = Gauge(
    "app_model_info", "The loaded model (value 1)", ["model_name", "model_version", "runtime"], multiprocess_mode="max"
)
SETTINGS_REJECTED = Counter("app_settings_rejected_total", "Runtime settings documents refused")
REQUESTS_OK = REQUESTS.labels("200")  # bound once: the hot path skips the label lookup


def render() -> tuple[bytes, str]:
    """The exposition text: all worker processes when running multi-process, else this one."""
    # prometheus_client's own variable (its multiprocess mode), set by app/__main__.py; not an app setting.
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]  # unannotated
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
