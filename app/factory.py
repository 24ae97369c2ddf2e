"""Builds the running app from :class:`AppConfig`: model, settings, capture sinks, Sentry, metrics.

``create_app`` is what uvicorn's factory mode calls in each worker; ``python -m app`` and the image
both go through it, so a local run exercises the same code path as production.
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from app import metrics
from app.capture import CaptureWriter, S3Sink, SinkWorker, Spool, claim_slot
from app.capture.privacy import CapturePolicyError, CapturePrivacy, key_from_env
from app.capture.sinks import parse_s3_uri
from app.capture.sql_process import CHILD_NICE, SqlProcessSink
from app.config import LOG_FORMAT, AppConfig
from app.core import LoadedModel, load_model
from app.prediction_metrics import ScoreShift
from app.runtime_settings import RuntimeSettings, SettingsError, SettingsRefresher, source_from_location
from app.server import ASGIApp, PredictService, build_app
from contracts.exit_codes import ExitCode

GC_GEN0_THRESHOLD = 20_000
STATUS_DIR_ENV = "APP_STATUS_DIR"  # set by ``python -m app`` for its workers; not an operator setting
PARENT_PID_ENV = "APP_PARENT_PID"  # likewise: lets a worker notice its parent died before it started
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

log = logging.getLogger("app")


def init_sentry(dsn: str | None, service: str) -> bool:
    if not dsn:
        return False
    import sentry_sdk

    # Capture privacy (docs/app.md): an error event must not carry request bodies or the stack's local variables
    # (the records), or a hashed/dropped feature would leave the process raw through Sentry
    # (https://docs.sentry.io/platforms/python/configuration/options/: max_request_body_size, include_local_variables).
    sentry_sdk.init(
        dsn=dsn,
        environment=service,
        traces_sample_rate=0.0,
        send_default_pii=False,
        max_request_body_size="never",
        include_local_variables=False,
    )
    return True


def build_capture(config: AppConfig, *, s3_client: Any = None) -> tuple[CaptureWriter, Any]:
    """One sink worker per configured sink, each with its spool under this worker's claimed slot.

    The spool size cap is per process (slot) and split evenly between the sinks, so the volume holds
    ``WORKERS x CAPTURE_SPOOL_MAX_BYTES`` at most (infra sizes the ephemeral storage from the same number).
    """
    slot = claim_slot(config.spool_dir)
    sinks: list[Any] = []
    if config.capture_s3_uri:
        bucket, prefix = parse_s3_uri(config.capture_s3_uri, config.service_name)
        worker_id = _host_worker(slot.name)
        sinks.append(S3Sink(bucket, prefix, worker=worker_id, client=s3_client))
        log.info("capture to s3://%s/%s (worker %s)", bucket, prefix, worker_id)
    if config.db_url:
        sinks.append(SqlProcessSink(config.db_url))
        shown = sa.make_url(config.db_url).render_as_string(hide_password=True)
        log.info("capture to %s (stored by a child process at nice %d)", shown, CHILD_NICE)
    if not sinks:
        log.warning("capture is off: neither CAPTURE_S3_URI nor CAPTURE_DB_URL is set")
    options: dict[str, Any] = {
        "flush_records": config.capture_flush_records,
        "flush_seconds": config.capture_flush_seconds,
        "queue_size": config.capture_queue_size,
        "retry_initial": min(0.5, config.capture_retry_max_seconds),
        "retry_max": config.capture_retry_max_seconds,
        "spool_max_bytes": config.capture_spool_max_bytes // max(1, len(sinks)),
        "overflow": config.capture_spool_overflow,
        "unhealthy_seconds": config.capture_unhealthy_seconds,
        "service": config.service_name,
        "emf_seconds": config.capture_emf_seconds,
    }
    workers = [SinkWorker(sink, Spool(slot.directory / sink.name), **options) for sink in sinks]
    return CaptureWriter(workers), slot


def report_shutdown(code: int, detail: str) -> None:
    """Tell ``python -m app`` (the parent) why this worker could not stop cleanly: a file in its status dir.

    Why a file: uvicorn's supervisor does not pass a worker's exit status on, so the parent would exit 0
    although captured records were lost or a worker could not start.
    """
    # Process plumbing, not configuration: set by ``python -m app`` (app/__main__.py) for its own workers.
    directory = os.environ.get(STATUS_DIR_ENV)
    if not directory:
        return
    try:
        (Path(directory) / f"{os.getpid()}-{code}").write_text(detail)
    except OSError:
        log.exception("cannot record the shutdown status in %s", directory)


def _host_worker(slot: str) -> str:
    """Part of the S3 key: host + slot, so two tasks never write the same key for different batches."""
    import socket

    return f"{socket.gethostname().split('.')[0]}-{slot}"


def privacy_checker(features: tuple[str, ...], location: str) -> Callable[[RuntimeSettings], CapturePrivacy]:
    """Capture privacy hook (app/capture/privacy.py): a policy naming an unknown feature, or hashing without
    a key, is refused like any bad settings document (and at startup the app refuses to start)."""
    try:
        hash_key, key_problem = key_from_env(), None
    except CapturePolicyError as exc:  # a too-short key: refused like a missing one, with its own reason
        hash_key, key_problem = None, str(exc)

    def privacy_for(settings: RuntimeSettings) -> CapturePrivacy:
        if key_problem is not None and "hash" in settings.capture_policy.values():
            raise SettingsError(f"{location}: capture_policy cannot hash: {key_problem}")
        try:
            return CapturePrivacy(settings.capture_policy, features, hash_key)
        except CapturePolicyError as exc:
            raise SettingsError(f"{location}: {exc}") from exc

    return privacy_for


def refuse_loose_capture_policy(refresher: SettingsRefresher) -> None:
    """Privacy hook: never start capturing under a looser policy (the defaults) than the one asked for."""
    refresher.refresh()
    if refresher.last_error is not None and "capture_policy" in refresher.last_error:
        log.critical("refusing to start: %s", refresher.last_error)
        report_shutdown(ExitCode.CONFIG, refresher.last_error)
        raise SettingsError(refresher.last_error)


def start_capture(service: PredictService, writer: Any, refresher: SettingsRefresher) -> None:
    """Capture runs as the settings say. Privacy fails closed: until the runtime settings (the capture
    policy) have been read, answer but do not capture; each record not captured is counted (reason
    ``policy_unknown``) and the hold is logged."""
    writer.enabled = refresher.current.capture_enabled
    service.capture_held = not refresher.policy_known
    if service.capture_held:
        log.critical(
            "capture held: the runtime settings (the capture policy) could not be read at start (%s); "
            "predictions are answered but not captured (app_capture_dropped_records_total, reason "
            "policy_unknown) until they are, so no feature leaves under a looser policy than the one set",
            refresher.last_error,
        )


class CaptureLifecycle:
    """The capture writer and its spool slot: opened in the worker at start-up (the slot is per process),
    flushed and released at shutdown. One object the app's start-up, settings hook and shutdown share."""

    def __init__(self, config: AppConfig, s3_client: Any = None) -> None:
        self.config = config
        self.s3_client = s3_client
        self.writer: CaptureWriter | None = None
        self.slot: Any = None

    def open(self) -> CaptureWriter:
        """Build the writer and claim its slot; an unusable spool stops the worker with the reason reported."""
        try:
            self.writer, self.slot = build_capture(self.config, s3_client=self.s3_client)
        except OSError as exc:
            log.critical("refusing to start: capture spool %s is not usable: %s", self.config.spool_dir, exc)
            report_shutdown(ExitCode.CAPTURE_NOT_SAVED, f"spool {self.config.spool_dir}: {exc}")
            raise
        return self.writer

    def close(self) -> None:
        """Flush what was captured, release the slot, and report records that could not be saved."""
        writer = self.writer
        if writer is None:
            return
        log.info("flushing capture before exit")
        try:
            unsaved = writer.close()
        except Exception as exc:  # never skip the slot release or the report
            log.exception("capture flush at shutdown failed")
            unsaved, detail = -1, f"capture flush failed: {exc}"
        else:
            detail = f"{unsaved} captured records could not be delivered or spooled"
        self.slot.release()
        if unsaved:
            log.error("exit with unsaved capture: %s", detail)
            report_shutdown(ExitCode.CAPTURE_NOT_SAVED, detail)


def create_app(
    config: AppConfig | None = None, *, model: LoadedModel | None = None, s3_client: Any = None, ssm_client: Any = None
) -> ASGIApp:
    config = config or AppConfig.from_env()
    init_sentry(config.sentry_dsn, config.service_name)
    if model is None:
        model = load_model(config.model_dir, runtime=config.model_runtime, allow_pickle=config.allow_pickle)
    manifest = model.manifest
    log.info(
        "model %s v%s (sha256 %s, runtime %s)",
        manifest.name,
        manifest.version,
        model.package.sha256,
        model.predictor.name,
    )
    metrics.MODEL_INFO.labels(manifest.name, str(manifest.version), model.predictor.name).set(1)

    capture = CaptureLifecycle(config, s3_client)

    def apply(settings: RuntimeSettings) -> None:
        # Privacy hook: what privacy_checker built for `settings`; capture held until a policy was read.
        service.capture_privacy, service.capture_held = refresher.checked, not refresher.policy_known
        if capture.writer is not None:
            capture.writer.enabled = settings.capture_enabled

    refresher = SettingsRefresher(
        source_from_location(config.settings_location, ssm_client),
        config.settings_refresh_seconds,
        on_change=apply,
        validate=privacy_checker(manifest.feature_names, config.settings_location),
    )
    service = PredictService(
        model,
        score_shift=ScoreShift.from_manifest(manifest, config.prediction_metrics_service),
        service_name=config.service_name,
        settings=refresher,
        max_batch_size=config.max_batch_size,
        max_batch_wait_ms=config.max_batch_wait_ms,
        max_body_bytes=config.max_body_bytes,
        max_records=config.max_records_per_request,
    )

    service.capture_failure_policy = config.capture_failure_policy

    def startup() -> None:
        refuse_loose_capture_policy(refresher)
        writer = capture.open()
        service.capture = writer
        refresher.start()
        start_capture(service, writer, refresher)
        writer.start()
        # The model, libraries and settings live as long as the process: move them out of the cyclic GC's
        # way so full collections (triggered by per-request allocations) do not keep re-walking them.
        gc.collect()
        gc.freeze()
        # The default first-generation threshold (700 net container allocations) fires every ~30 requests
        # under load, each collection re-walking requests in flight and queued capture records: ~8 % of a
        # worker's CPU in the in-process benchmark. Nearly all of those objects die by reference counting,
        # not by the cyclic collector, so collecting rarely frees no less memory; one collection then walks at
        # most GC_GEN0_THRESHOLD young objects (~2 ms). See https://docs.python.org/3/library/gc.html.
        gc.set_threshold(GC_GEN0_THRESHOLD, *gc.get_threshold()[1:])

    def shutdown() -> None:
        refresher.stop()
        capture.close()

    app = build_app(service, on_startup=startup, on_shutdown=shutdown)
    app.service = service  # type: ignore[attr-defined]  # tests and the bench read counters from here
    return app


def die_with_parent() -> None:
    """Ask Linux to send this worker SIGTERM when ``python -m app`` (its parent) dies.

    Why: a SIGKILL of the parent alone left the workers serving as orphans, holding the port (the next
    start failed) and their spool slots; with this they flush capture and exit like on a normal stop
    (prctl(2), PR_SET_PDEATHSIG). A no-op where prctl is unavailable.
    """
    import ctypes
    import ctypes.util
    import signal

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        return
    parent = os.environ.get(PARENT_PID_ENV)  # process plumbing: set by ``python -m app`` for its workers
    if parent and os.getppid() != int(parent):  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def create_app_from_env() -> ASGIApp:
    """uvicorn ``factory=True`` entry point (each worker process calls it)."""
    config = AppConfig.from_env()
    logging.basicConfig(level=config.log_level, format=LOG_FORMAT)
    die_with_parent()
    return create_app(config)
