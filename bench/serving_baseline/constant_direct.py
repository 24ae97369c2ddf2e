"""A second ceiling: the app's own HTTP path (``app.http_protocol``) answering a constant, without ASGI.

Why: since the app serves ``POST /predict`` straight from the parser's callbacks in one write, the ASGI
ceiling (``constant_app``) no longer bounds it: it carries a task, a scope and two writes per request that
the app's path does not. This server has exactly the app's HTTP layer (uvicorn's httptools protocol with the
app's limits) and does no work at all, so ``app / ceiling-direct`` is the share of the server's own best
that the app keeps while validating, scoring and capturing. Run by ``bench.serving`` (``ceiling-direct``).

``python -m bench.serving_baseline.constant_direct --host H --port P --workers N``
"""

from __future__ import annotations

import argparse

from app.http_protocol import LimitedHttpToolsProtocol
from bench.serving_baseline.constant_app import BODY, HEADERS

_HEAD = b"HTTP/1.1 200 OK\r\n" + b"".join(b"%s: %s\r\n" % pair for pair in HEADERS)


class ConstantProtocol(LimitedHttpToolsProtocol):
    """Answers every request with the ceiling's constant in one write, from the parser's callbacks."""

    def on_headers_complete(self) -> None:
        self._in_headers = False  # the header-size bookkeeping of the app's protocol, as for any request
        self._header_bytes = 0
        self._disarm()  # no body deadline: the body arrives with the headers here

    def on_body(self, body: bytes) -> None:
        """The body is read and dropped, as the ASGI ceiling reads and drops it."""

    def on_message_complete(self) -> None:
        dates = b"".join(b"%s: %s\r\n" % pair for pair in self.server_state.default_headers)
        self.transport.write(_HEAD + dates + b"\r\n" + BODY)
        self.server_state.total_requests += 1
        self._arm(self.timeout_keep_alive, "idle")


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    uvicorn.run(
        "bench.serving_baseline.constant_app:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        http=ConstantProtocol,
        access_log=False,
        log_level="warning",
        server_header=False,
    )


if __name__ == "__main__":
    main()
