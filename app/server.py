"""The HTTP app: FastAPI for the documented endpoints, a lean ASGI path for ``POST /predict``.

Why two layers: ``/predict`` is the hot path and FastAPI's per-request machinery (routing, request
objects, dependency resolution) costs as much as scoring a merged batch, so :class:`PredictEndpoint`
serves it straight from ASGI. The FastAPI app still declares ``/predict`` with its full request and
response schemas, so the published OpenAPI document describes the endpoint exactly (and the fuzz tests
drive the real path from it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from app import metrics
from app.batching import MicroBatcher
from app.capture import CaptureWriter, capture_records
from app.capture.privacy import CapturePrivacy
from app.core import LoadedModel, Prediction, RequestError, accepted_type, parse_records, render, score
from app.openapi import predict_openapi
from app.prediction_metrics import ScoreShift
from app.runtime_settings import RuntimeSettings, SettingsRefresher

log = logging.getLogger("app.http")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


_CONTENT_TYPES = {kind: (b"content-type", kind.encode()) for kind in ("application/json", "text/csv")}


@dataclass(frozen=True, slots=True)
class PredictResponse:
    """One ``/predict`` answer as the HTTP layers send it."""

    status: int
    body: bytes
    content_type: str
    request_id: str | None = None  # the first scored record's uid; None: one is made up

    def headers(self) -> list[tuple[bytes, bytes]]:
        """The response headers both HTTP layers send: type, length, and the request id."""
        content = self.content_type
        return [
            _CONTENT_TYPES.get(content) or (b"content-type", content.encode()),
            (b"content-length", b"%d" % len(self.body)),
            (b"x-request-id", (self.request_id or uuid.uuid4().hex).encode()),
        ]


class PredictService:
    """Everything ``/predict`` needs; shared by the lean ASGI path and the FastAPI route."""

    def __init__(
        self,
        model: LoadedModel,
        *,
        service_name: str = "local",
        capture: CaptureWriter | None = None,
        settings: SettingsRefresher | None = None,
        max_batch_size: int = 64,
        max_batch_wait_ms: float = 2.0,
        max_body_bytes: int = 1 << 20,
        max_records: int = 1000,
        score_shift: ScoreShift | None = None,
    ) -> None:
        self.model = model
        self.service_name = service_name
        self.capture = capture
        self.capture_privacy: CapturePrivacy | None = None  # privacy hook: set from the runtime settings
        self.capture_held = False  # True while the runtime settings (the capture policy) are unknown
        # The runtime settings are passed to every score() call explicitly (None: the defaults, e.g. a test).
        self.settings = settings
        self._default_settings = RuntimeSettings()
        # The prediction-distribution metric (issue #16), None when off: fed by the batcher per merged batch.
        self.score_shift = score_shift
        self.batcher = MicroBatcher(
            lambda records: score(records, model, self.runtime_settings),
            max_batch_size,
            max_batch_wait_ms / 1000,
            observe=None if score_shift is None else (lambda prediction: score_shift.observe(prediction.outputs)),
        )
        self.max_body_bytes = max_body_bytes
        self.max_records = max_records
        self.capture_failure_policy = "alarm"  # or "drain": /ready answers 503 while capture fails too long
        self.ready = False
        # Answered this event-loop turn, settled by :meth:`_settle`: (prediction, records, latency in s).
        self._answered: list[tuple[Prediction, list[dict[str, Any]], float]] = []

    @property
    def runtime_settings(self) -> RuntimeSettings:
        """The settings in force now: the refresher's last good document, else the defaults."""
        return self.settings.current if self.settings is not None else self._default_settings

    # The steps of one request, shared by both HTTP layers: ``app.http_protocol`` calls them straight from
    # the parser's callbacks (no task, no ASGI messages), :meth:`handle` composes them for the ASGI path.

    def begin(self) -> float:
        """A request's headers are in: the batcher waits for its body (see ``MicroBatcher.reading``)."""
        self.batcher.reading += 1
        return time.perf_counter()

    def abandon(self) -> None:
        """A request that :meth:`begin` counted ended before :meth:`submit` (bad body, disconnect)."""
        self.batcher.reader_done()

    def submit(
        self, body: bytes, content_type: str | None, accept: str | None
    ) -> tuple[str, list[dict[str, Any]], asyncio.Future[Prediction]]:
        """Parses the body and queues its records: (answer type, records, the future of their prediction).

        Raises :class:`RequestError` for a client mistake. Ends the reading :meth:`begin` started either way.
        """
        try:
            kind = accepted_type(accept)
            records = parse_records(body, content_type, self.model, self.max_records)
        finally:
            self.batcher.reader_done()
        return kind, records, self.batcher.submit(records)

    def refuse(self, exc: RequestError) -> PredictResponse:
        """The 4xx answer to a client mistake."""
        metrics.REQUESTS.labels(str(exc.status)).inc()
        return PredictResponse(exc.status, _error(exc.message), "application/json")

    def fail(self, exc: BaseException) -> PredictResponse:
        """A bug, not bad input: the 500 answer; logged, counted and reported, never fatal to the worker."""
        log.error("unexpected error in /predict", exc_info=exc)
        _report(exc)
        metrics.REQUESTS.labels("500").inc()
        return PredictResponse(500, _error("internal error; it has been logged"), "application/json")

    def answer(
        self, prediction: Prediction, kind: str, records: list[dict[str, Any]], started: float
    ) -> PredictResponse:
        """The answer to scored records; counted and captured with this loop turn's others (:meth:`_settle`)."""
        for violation in prediction.errors:
            metrics.VIOLATIONS.labels(violation.kind, "error").inc()
        for violation in prediction.warnings:
            metrics.VIOLATIONS.labels(violation.kind, "warning").inc()
        payload, content = render(prediction, kind)
        status = prediction.status
        if status == 422:
            metrics.REQUESTS.labels("422").inc()
            return PredictResponse(422, payload, content)
        if status == 207:
            metrics.REQUESTS.labels("207").inc()  # also counted as answered below: its valid rows were scored
        self._answered.append((prediction, records, time.perf_counter() - started))
        if len(self._answered) == 1:
            asyncio.get_running_loop().call_soon(self._settle)
        if status == 200:
            first = prediction.uids[0]
        else:
            first = next(
                (u for u, ok in zip(prediction.uids, prediction.row_ok, strict=True) if ok), prediction.uids[0]
            )
        return PredictResponse(status, payload, content, first)

    async def handle(
        self, body_source: Callable[[], Awaitable[bytes]], content_type: str | None, accept: str | None
    ) -> PredictResponse:
        """The answer to one ``/predict`` request read through ``body_source``. Client mistakes are 4xx."""
        started = self.begin()
        try:
            try:
                body = await body_source()
            except BaseException:
                self.abandon()
                raise
            kind, records, future = self.submit(body, content_type, accept)
            prediction = await future
        except RequestError as exc:
            return self.refuse(exc)
        return self.answer(prediction, kind, records, started)

    def _settle(self) -> None:
        """Counts and captures this event-loop turn's answered requests in one go.

        Why per turn, not per request: the requests of a merged batch are answered in the same turn, and
        each metric update (a lock, a pid check and an mmap write in multi-process mode), each timestamp
        and each capture hand-off costs about as much for a batch as for one request.
        """
        answered, self._answered = self._answered, []
        if not answered:
            return
        observe = metrics.REQUEST_LATENCY.observe
        rows = 0
        for prediction, _records, latency in answered:
            observe(latency)
            rows += len(prediction.uids) if prediction.ok else prediction.row_ok.count(True)
        metrics.REQUESTS_OK.inc(len(answered))
        metrics.PREDICTIONS.inc(rows)
        capture = self.capture
        if capture is None or not capture.enabled:
            return
        if self.capture_held:  # privacy fails closed: no policy read yet, so nothing leaves the process
            metrics.CAPTURE_DROPPED.labels(sink="all", reason="policy_unknown").inc(rows)
            return
        manifest = self.model.manifest
        stamp = datetime.now(UTC).isoformat()  # the answer time: this turn is the one that answered them
        captured: list[dict[str, Any]] = []
        privacy = self.capture_privacy
        for prediction, records, latency in answered:
            captured += capture_records(
                uids=prediction.uids,
                inputs=records if privacy is None else privacy.apply(records),  # privacy hook: before it leaves
                outputs=prediction.outputs,
                ids=prediction.ids,
                time=stamp,
                service=self.service_name,
                model_name=manifest.name,
                model_version=manifest.version,
                latency_ms=round(latency * 1000, 3),
            )
        capture.submit(captured)


def _error(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


def predict_headers(headers: Iterable[tuple[bytes, bytes]]) -> tuple[str | None, str | None, int]:
    """What ``/predict`` reads from the request headers (lower-case names, as both HTTP layers give them):
    the content type, the Accept header, and the declared body length (-1: none, or not a number)."""
    content_type = accept = None
    length = -1
    for name, value in headers:
        if name == b"content-type":
            content_type = value.decode("latin-1")
        elif name == b"accept":
            accept = value.decode("latin-1")
        elif name == b"content-length":
            length = int(value) if value.isdigit() else -1
    return content_type, accept, length


class BodyTooLargeError(RequestError):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than the limit of {limit} bytes; send fewer records")


class PredictEndpoint:
    """The lean ASGI path for ``POST /predict``; anything else goes to the FastAPI app."""

    def __init__(self, service: PredictService, fallback: ASGIApp) -> None:
        self.service = service
        self.fallback = fallback
        # ``app.http_protocol`` serves ``POST /predict`` from this service without ASGI when it finds it here.
        self.predict_service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/predict" or scope["method"] != "POST":
            await self.fallback(scope, receive, send)
            return
        content_type, accept, length = predict_headers(scope["headers"])
        limit = self.service.max_body_bytes

        async def read_body() -> bytes:
            if length > limit:
                raise BodyTooLargeError(limit)
            chunks: list[bytes] = []
            size = 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise RequestError(400, "client disconnected before the body was complete")
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise BodyTooLargeError(limit)
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return chunks[0] if len(chunks) == 1 else b"".join(chunks)

        try:
            answer = await self.service.handle(read_body, content_type, accept)
        except Exception as exc:  # a bug, not bad input: answer 500, log, report; never kill the worker
            answer = self.service.fail(exc)
        await send({"type": "http.response.start", "status": answer.status, "headers": answer.headers()})
        await send({"type": "http.response.body", "body": answer.body})


def _report(exc: BaseException) -> None:
    try:
        import sentry_sdk

        sentry_sdk.capture_exception(exc)
    except Exception:  # Sentry must never turn an error into a worse one
        log.debug("sentry capture failed", exc_info=True)


def build_app(
    service: PredictService,
    *,
    on_startup: Callable[[], None] | None = None,
    on_shutdown: Callable[[], None] | None = None,
) -> ASGIApp:
    """The ASGI app: lifespan starts/stops capture and settings refresh (SIGTERM -> flush)."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if on_startup is not None:
            on_startup()
        ScoreShift.start(service.score_shift)  # the periodic prediction-metric task, in this worker's loop
        service.ready = True
        try:
            yield
        finally:
            service.ready = False
            ScoreShift.stop(service.score_shift)  # writes the last partial period
            if on_shutdown is not None:
                on_shutdown()

    manifest = service.model.manifest
    api = FastAPI(
        title="ml-delivery model server",
        version=f"{manifest.name}-{manifest.version}",
        description=(
            "Scores records with the packaged model. Every record is validated against the manifest's "
            "feature schema; 200 when every record was scored, 207 when some were rejected (their "
            "violations in the same answer), 422 when none was."
        ),
        lifespan=lifespan,
    )

    @api.get("/health", summary="Liveness: the process answers")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @api.get(
        "/ready",
        summary="Readiness: the model is loaded and capture is running",
        responses={503: {"description": "not ready yet"}},
    )
    async def ready() -> JSONResponse:
        if not service.ready:
            return JSONResponse({"ready": False}, status_code=503)
        capture = service.capture
        failing = capture.unhealthy_reasons() if capture is not None else []
        if failing and service.capture_failure_policy == "drain":
            # CAPTURE_FAILURE_POLICY=drain: the load balancer takes this task out of rotation (docs/app.md).
            return JSONResponse({"ready": False, "capture_failing": failing}, status_code=503)
        body: dict[str, Any] = {"ready": True, "model_version": manifest.version}
        if failing:  # policy "alarm": keep serving; the metrics and the CloudWatch alarm carry the news
            body["capture_failing"] = failing
        return JSONResponse(body)

    @api.get("/model", summary="The loaded model: version, git sha, trained at, metrics, schema")
    async def model_info() -> dict[str, Any]:
        return {
            "name": manifest.name,
            "version": manifest.version,
            "git_sha": manifest.git_sha,
            "trained_at": manifest.created_at.isoformat(),
            "task": manifest.task.model_dump(),
            "columns": manifest.columns.model_dump(),
            "metrics": manifest.metrics.model_dump(exclude_none=True),
            "features": [f.model_dump(exclude_none=True) for f in manifest.features],
            "runtime": service.model.predictor.name,
            "sha256": service.model.package.sha256,
            "settings": service.runtime_settings.model_dump(),
        }

    @api.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def prometheus() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    @api.post("/predict", summary="Score one record or a list of records", **predict_openapi(manifest))
    async def predict(request: Request) -> Response:
        # Reached only if the lean path is bypassed; same code underneath.
        async def body() -> bytes:
            data = await request.body()
            if len(data) > service.max_body_bytes:
                raise BodyTooLargeError(service.max_body_bytes)
            return data

        answer = await service.handle(body, request.headers.get("content-type"), request.headers.get("accept"))
        return Response(
            answer.body,
            status_code=answer.status,
            media_type=answer.content_type,
            headers={"x-request-id": answer.request_id or ""},
        )

    return PredictEndpoint(service, api)
