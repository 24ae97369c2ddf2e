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
        self._deadline: asyncio.TimerHandle | None = None

    def _arm(self, seconds: float, what: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired, what)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self, what: str) -> None:
        self._deadline = None
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

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
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
