"""uvicorn's httptools protocol with the limits it lacks: header size, header and body time.

Why: uvicorn's httptools protocol buffers headers of any size (a 64 MB header was accepted) and has no
deadline for receiving headers or a body, so slow-header, slow-body and idle connections stayed open for
ever and, with a low open-file limit, locked every client out (issue #13). ``timeout_keep_alive`` only
covers the gap *between* requests, and ``h11_max_incomplete_event_size`` only the h11 parser, which this
app does not use (https://www.uvicorn.org/settings/#implementation).

The limits come from the environment (``HTTP_*`` in docs/app.md) via :class:`app.config.AppConfig`, read
once per worker; ``python -m app`` passes this class as uvicorn's ``http`` implementation.
"""

from __future__ import annotations

import asyncio
import logging
import math
import weakref
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app import metrics

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


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """Closes a connection whose headers grow too large or arrive too slowly, or whose body stalls."""

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
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()
