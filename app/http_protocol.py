"""uvicorn's httptools protocol with the limits it lacks: header size, header and body time.

Why: uvicorn's httptools protocol buffers headers of any size (a 64 MB header was accepted) and has no
deadline for receiving headers or a body, so slow-header, slow-body and idle connections stayed open for
ever and, with a low open-file limit, locked every client out (issue #13). ``timeout_keep_alive`` only
covers the gap *between* requests, and ``h11_max_incomplete_event_size`` only the h11 parser, which this
app does not use (https://www.uvicorn.org/settings/#implementation).

The limits come from the environment (``HTTP_*`` in docs/app.md) via :class:`app.config.AppConfig`, read
once per worker; ``python -m app`` passes this class as uvicorn's ``http`` implementation.

It also serves ``POST /predict`` itself, straight from the parser's callbacks (:class:`DirectPredict`):
uvicorn's ASGI path costs a task, a scope, an event and two messages per request and writes the head
and the body in two ``send`` calls; together about a third of the app's CPU per request at concurrency
64 (docs/bench-serving.md). Everything else, and a ``/predict`` request that arrives pipelined behind an
unanswered one, goes through ASGI as before.
"""

from __future__ import annotations

import asyncio
import logging
import math
import weakref
from typing import TYPE_CHECKING, Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle

from app import metrics
from app.core import RequestError
from app.server import BodyTooLargeError, predict_headers

if TYPE_CHECKING:
    from app.core import Prediction
    from app.server import PredictResponse, PredictService

log = logging.getLogger("app.http")

_LIMITS: dict[str, float] = {}


def _limits() -> dict[str, float]:
    if not _LIMITS:
        from app.config import AppConfig

        config = AppConfig.from_env()
        _LIMITS.update(
            max_header_bytes=config.http_max_header_bytes,
            header_timeout=config.http_header_timeout_seconds,
            body_timeout=config.http_body_timeout_seconds,
        )
    return _LIMITS


def _response(status: bytes, message: bytes) -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\nconnection: close\r\n"
        b"content-length: " + str(len(message)).encode() + b"\r\n\r\n" + message
    )


def sweep_interval(header_timeout: float, body_timeout: float) -> float:
    """How often a worker checks its connections' deadlines: a tenth of the shorter limit, 50 ms to 1 s.

    A deadline is enforced between the limit and the limit plus this interval (10 s headers: 10-11 s)."""
    return min(1.0, max(0.05, min(header_timeout, body_timeout) / 10))


class _DeadlineSweep:
    """One periodic check per event loop of every open connection's deadline.

    Why not a timer per request: ``loop.call_later`` plus ``cancel`` twice per request (headers, then body)
    cost ~4.5 us of a ~90 us request on uvloop, and every cancelled handle stays in the loop's heap until
    it is due. Arming is now a float store; the sweep walks the open connections once per interval.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float) -> None:
        self.loop, self.interval = loop, interval
        self.connections: set[LimitedHttpToolsProtocol] = set()
        self._handle: asyncio.TimerHandle | None = None

    def add(self, protocol: LimitedHttpToolsProtocol) -> None:
        self.connections.add(protocol)
        if self._handle is None:
            self._handle = self.loop.call_later(self.interval, self._sweep)

    def discard(self, protocol: LimitedHttpToolsProtocol) -> None:
        self.connections.discard(protocol)

    def _sweep(self) -> None:
        self._handle = None
        now = self.loop.time()
        for protocol in [p for p in self.connections if p.deadline_at <= now]:
            protocol.expire()
        if self.connections:
            self._handle = self.loop.call_later(self.interval, self._sweep)


_SWEEPS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _DeadlineSweep] = weakref.WeakKeyDictionary()


def _sweep_for(loop: asyncio.AbstractEventLoop, interval: float) -> _DeadlineSweep:
    sweep = _SWEEPS.get(loop)
    if sweep is None:
        sweep = _SWEEPS[loop] = _DeadlineSweep(loop, interval)
    return sweep


_PREDICT_PATH = b"/predict"


class DirectPredict:
    """One ``POST /predict`` request served without ASGI: body in, parse, batch, one write out.

    It stands where uvicorn keeps its request cycle (``protocol.cycle``) and has the attributes uvicorn's
    protocol reads there: ``response_complete``, ``keep_alive`` (cleared by a graceful shutdown),
    ``disconnected`` and ``message_event``.
    """

    __slots__ = (
        "accept",
        "body",
        "content_type",
        "disconnected",
        "finished",
        "keep_alive",
        "kind",
        "limit",
        "message_done",
        "protocol",
        "reading",
        "records",
        "response_complete",
        "service",
        "started",
    )

    def __init__(
        self,
        protocol: LimitedHttpToolsProtocol,
        service: PredictService,
        content_type: str | None,
        accept: str | None,
        keep_alive: bool,
    ) -> None:
        self.protocol, self.service = protocol, service
        self.content_type, self.accept, self.keep_alive = content_type, accept, keep_alive
        self.limit = service.max_body_bytes
        self.body = bytearray()
        self.response_complete = self.disconnected = False
        self.kind = ""
        self.records: list[dict[str, Any]] = []
        self.started = service.begin()
        self.reading = True
        self.message_done = False  # the whole request (body included) has been parsed
        self.finished = False  # the connection has been handed on (next request, idle, or closed): once

    @property
    def message_event(self) -> DirectPredict:
        return self  # uvicorn's connection_lost sets the cycle's event: nothing waits on one here

    def set(self) -> None:
        """See :attr:`message_event`."""

    def too_large(self) -> None:
        self.refuse(BodyTooLargeError(self.limit))

    def add_body(self, chunk: bytes) -> None:
        if self.response_complete:  # answered early (413): the rest of the body is read and dropped
            return
        self.body += chunk
        if len(self.body) > self.limit:
            self.too_large()

    def body_complete(self) -> None:
        self.message_done = True
        if self.response_complete:  # answered early (413): the connection is ready for the next request now
            self.finish()
            return
        self.reading = False
        try:
            self.kind, self.records, future = self.service.submit(bytes(self.body), self.content_type, self.accept)
        except RequestError as exc:
            self.respond(self.service.refuse(exc))
            return
        except Exception as exc:
            self.respond(self.service.fail(exc))
            return
        self.body = bytearray()
        future.add_done_callback(self.scored)

    def scored(self, future: asyncio.Future[Prediction]) -> None:
        service = self.service
        try:
            prediction = future.result()
            answer = service.answer(prediction, self.kind, self.records, self.started)
        except RequestError as exc:
            answer = service.refuse(exc)
        except Exception as exc:  # a bug, not bad input: 500, logged and reported
            answer = service.fail(exc)
        except asyncio.CancelledError:  # only a worker shutting down cancels: no answer is coming
            self.protocol.transport.close()
            return
        self.respond(answer)

    def refuse(self, exc: RequestError) -> None:
        """A client mistake found before the body was queued: the reading ends here."""
        if self.reading:
            self.reading = False
            self.service.abandon()
        self.respond(self.service.refuse(exc))

    def lost(self) -> None:
        """The connection closed: no answer is sent; a request still reading stops counting as one."""
        self.disconnected = True
        if self.reading:
            self.reading = False
            self.service.abandon()

    def respond(self, answer: PredictResponse) -> None:
        if self.disconnected or self.response_complete:
            return
        self.response_complete = True
        self.protocol.write_response(answer, self.keep_alive)
        if self.message_done or not self.keep_alive:
            self.finish()
        # else: refused before its body was read (413); the rest of the body is read and dropped, and the
        # connection takes the next request only after it (body_complete), within the body deadline.

    def finish(self) -> None:
        if not self.finished:
            self.finished = True
            self.protocol.direct_response_complete(self)


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """Closes a connection whose headers grow too large or arrive too slowly, or whose body stalls, and
    serves ``POST /predict`` itself (:class:`DirectPredict`)."""

    cycle: RequestResponseCycle | DirectPredict  # type: ignore[assignment]  # uvicorn's, or a direct request

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limits = _limits()
        self._max_header_bytes = int(limits["max_header_bytes"])
        self._header_timeout = limits["header_timeout"]
        self._body_timeout = limits["body_timeout"]
        self._header_bytes = 0
        self._in_headers = True
        # When the current phase (headers, body) must be done by, in loop time; inf: no deadline.
        self.deadline_at = math.inf
        self._deadline_what = "headers"
        self._sweep = _sweep_for(self.loop, sweep_interval(self._header_timeout, self._body_timeout))
        # The service that ``POST /predict`` is served from directly; None (app wrapped, e.g. trace logging):
        # every request goes through ASGI.
        self._predict: PredictService | None = getattr(self.app, "predict_service", None)
        self._date_headers: tuple[object, bytes] = (None, b"")
        # The direct request not yet answered, told when the connection is lost (self.cycle may have moved on
        # to a request pipelined behind it).
        self._direct: DirectPredict | None = None

    def _arm(self, seconds: float, what: str) -> None:
        self.deadline_at = self.loop.time() + seconds
        self._deadline_what = what

    def _disarm(self) -> None:
        self.deadline_at = math.inf

    def expire(self) -> None:
        """The sweep found the deadline passed: count it, answer 408 for late headers, close."""
        what = self._deadline_what
        self.deadline_at = math.inf
        if self.transport.is_closing():
            return
        if what == "idle":  # a kept-alive connection with no next request: closed quietly, as uvicorn does
            self.transport.close()
            return
        metrics.HTTP_REJECTED.labels(f"{what}_timeout").inc()
        if what == "headers" and (self.cycle is None or self.cycle.response_complete):
            message = b'{"error": "request headers not received in time"}'
            self.transport.write(_response(b"408 Request Timeout", message))
        # A stalled body: the handler sees a disconnect and answers nothing; the socket is freed now.
        self.transport.close()

    def _reject_headers(self) -> None:
        metrics.HTTP_REJECTED.labels("header_too_large").inc()
        message = b'{"error": "request headers larger than %d bytes"}' % self._max_header_bytes
        self.transport.write(_response(b"431 Request Header Fields Too Large", message))
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self._header_timeout, "headers")  # also bounds a connection that never sends a byte
        self._sweep.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._sweep.discard(self)
        if self._direct is not None:  # (not necessarily self.cycle: a pipelined request may stand there)
            self._direct.lost()
            self._direct = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_headers:
            self._header_bytes += len(data)
        super().data_received(data)
        if self._in_headers and self._header_bytes > self._max_header_bytes and not self.transport.is_closing():
            self._reject_headers()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._in_headers:  # the next request on a kept-alive connection
            self._in_headers = True
            self._header_bytes = 0
            self._arm(self._header_timeout, "headers")

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._header_bytes = 0
        self._arm(self._body_timeout, "body")
        service = self._predict
        if (
            service is not None
            and self.url == _PREDICT_PATH
            and self.parser.get_method() == b"POST"
            and (self.cycle is None or self.cycle.response_complete)  # pipelined behind another: ASGI queues it
            and not self.parser.should_upgrade()
            and (self.limit_concurrency is None or len(self.connections) < self.limit_concurrency)
        ):
            self._start_direct(service)
        else:
            super().on_headers_complete()

    def _start_direct(self, service: PredictService) -> None:
        content_type, accept, length = predict_headers(self.headers)  # lower-cased by uvicorn's on_header
        keep_alive = self.parser.should_keep_alive() and self.parser.get_http_version() != "1.0"
        self.cycle = self._direct = cycle = DirectPredict(self, service, content_type, accept, keep_alive)
        if length > cycle.limit:  # refused before the body is sent (with Expect: 100-continue, never sent)
            cycle.too_large()
        elif self.expect_100_continue:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        cycle = self.cycle
        if type(cycle) is DirectPredict:
            cycle.add_body(body)
        else:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._disarm()
        cycle = self.cycle
        if type(cycle) is DirectPredict:
            cycle.body_complete()
        else:
            super().on_message_complete()

    def write_response(self, answer: PredictResponse, keep_alive: bool) -> None:
        """Status line, headers (uvicorn's defaults, i.e. ``date``, first) and body in one write."""
        defaults = self.server_state.default_headers
        cached, encoded = self._date_headers
        if cached is not defaults:  # uvicorn replaces the list once a second (the date)
            encoded = b"".join(b"%s: %s\r\n" % pair for pair in defaults)
            self._date_headers = (defaults, encoded)
        parts = [STATUS_LINE[answer.status], encoded]
        parts += [b"%s: %s\r\n" % pair for pair in answer.headers()]
        if not keep_alive:
            parts.append(b"connection: close\r\n")
        parts += [b"\r\n", answer.body]
        self.transport.write(b"".join(parts))

    def direct_response_complete(self, request: DirectPredict) -> None:
        """uvicorn's ``on_response_complete`` for a direct answer; the idle deadline is the sweep's, not a timer."""
        if self._direct is request:
            self._direct = None
        self.server_state.total_requests += 1
        if not request.keep_alive:
            self.transport.close()
            return
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        elif not self._in_headers:  # (a next request already begun keeps its header deadline)
            self._arm(self.timeout_keep_alive, "idle")
