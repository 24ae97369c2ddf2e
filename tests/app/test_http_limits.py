"""Request cost is bounded (issue #13): records per request, header size, time to send headers and body,
idle connections. Each case is a raw client against the real ``python -m app`` process."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest

from tests.app.conftest import AppProcess, TrainedPackage
from tests.support.servers import LOOPBACK

LIMITS = {
    "HTTP_HEADER_TIMEOUT_SECONDS": "0.5",
    "HTTP_BODY_TIMEOUT_SECONDS": "0.5",
    "HTTP_MAX_HEADER_BYTES": "8192",
    "MAX_RECORDS_PER_REQUEST": "1000",
}
# Far above every limit above: a server without the limits leaves the client waiting until this expires.
CLIENT_TIMEOUT = 20


@pytest.fixture
def app(trained: TrainedPackage, app_process) -> Iterator[AppProcess]:
    started = app_process(trained.path, env=LIMITS)
    yield started
    started.terminate()


def _connect(app: AppProcess) -> socket.socket:
    sock = socket.create_connection((LOOPBACK, app.port))
    sock.settimeout(CLIENT_TIMEOUT)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a timeout here is the failure)."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_a_megabyte_of_empty_records_is_refused_before_validation(app: AppProcess) -> None:
    body = b"[" + b",".join([b"{}"] * ((1 << 20) // 3 - 1)) + b"]"
    response = httpx.post(f"{app.url}/predict", content=body, headers={"content-type": "application/json"}, timeout=60)
    assert response.status_code == 413, response.text[:200]
    assert "at most 1000" in response.json()["error"] and "MAX_RECORDS_PER_REQUEST" in response.json()["error"]


def test_a_megabyte_one_column_csv_is_refused_before_validation(app: AppProcess) -> None:
    body = b"a\n" + b"1\n" * (((1 << 20) - 2) // 2)
    response = httpx.post(f"{app.url}/predict", content=body, headers={"content-type": "text/csv"}, timeout=60)
    assert response.status_code == 413, response.text[:200]


def test_records_up_to_the_limit_are_served(app: AppProcess, trained: TrainedPackage) -> None:
    records = (trained.records * 10)[:1000]
    response = httpx.post(f"{app.url}/predict", json=records, timeout=60)
    assert response.status_code == 200 and len(response.json()["predictions"]) == 1000


def test_an_oversized_header_is_refused_not_buffered(app: AppProcess) -> None:
    sock = _connect(app)
    answer, reset = b"", False
    try:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n")
        answer = _read_all(sock)
    except ConnectionResetError:
        reset = True  # the server answered 431 and closed while we were still sending
    sock.close()
    assert reset or answer.startswith(b"HTTP/1.1 431"), answer[:100]
    assert app.metric("app_http_rejected_total", '{reason="header_too_large"}') >= 1


def test_slow_headers_are_cut_off(app: AppProcess) -> None:
    sock = _connect(app)
    sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\n")  # ... and the rest never comes
    answer = _read_all(sock)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    assert app.metric("app_http_rejected_total", '{reason="headers_timeout"}') >= 1


def test_a_stalled_body_is_cut_off(app: AppProcess) -> None:
    sock = _connect(app)
    sock.sendall(
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n[{"
    )
    _read_all(sock)  # returns once the server closes the connection
    sock.close()
    assert app.metric("app_http_rejected_total", '{reason="body_timeout"}') >= 1


def test_an_idle_connection_is_closed(app: AppProcess) -> None:
    sock = _connect(app)
    answer = _read_all(sock)  # never sends a byte
    sock.close()
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408")


def test_keep_alive_requests_still_work(app: AppProcess, trained: TrainedPackage) -> None:
    with httpx.Client(base_url=app.url, timeout=CLIENT_TIMEOUT) as client:
        for record in trained.records[:5]:
            assert client.post("/predict", json=record).status_code == 200


def test_the_deadline_sweep_expires_late_connections_once_and_stops_when_none_are_open() -> None:
    """Deadlines are checked by one sweep per loop (no timer per request): a connection past its deadline
    is expired once and never before it, one still in time is not, and the sweep stops with no connection
    open. Every wait is on the event itself (bounded), never a fixed sleep."""
    import asyncio
    import math

    from app.http_protocol import _DeadlineSweep, sweep_interval

    assert sweep_interval(10.0, 30.0) == 1.0 and sweep_interval(0.5, 0.5) == 0.05 and sweep_interval(0.1, 5) == 0.05

    class Connection:
        def __init__(self, sweep: _DeadlineSweep, deadline_at: float) -> None:
            self.sweep, self.deadline_at = sweep, deadline_at
            self.expired_at: list[float] = []
            self.expired = asyncio.Event()

        def expire(self) -> None:
            self.expired_at.append(self.sweep.loop.time())
            self.deadline_at = math.inf
            self.sweep.discard(self)  # as connection_lost does after the close
            self.expired.set()

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        sweep = _DeadlineSweep(loop, 0.02)
        late, in_time = Connection(sweep, loop.time() + 0.05), Connection(sweep, loop.time() + 3600)
        sweep.add(late)  # type: ignore[arg-type]
        sweep.add(in_time)  # type: ignore[arg-type]
        await asyncio.wait_for(late.expired.wait(), timeout=30)
        assert len(late.expired_at) == 1 and late.expired_at[0] >= late_deadline
        assert in_time.expired_at == [] and sweep._handle is not None, "one connection open: the sweep runs on"
        sweep.discard(in_time)  # type: ignore[arg-type]
        # Timers run in due order: the sweep's next turn (due within one interval) runs before this one.
        stopped: asyncio.Future[bool] = loop.create_future()
        loop.call_later(sweep.interval * 2, lambda: stopped.set_result(sweep._handle is None))
        assert await asyncio.wait_for(stopped, timeout=30), "the sweep keeps running with no connection open"
        assert len(late.expired_at) == 1, "a connection is expired once"

    loop = asyncio.new_event_loop()
    try:
        late_deadline = loop.time() + 0.05  # a lower bound of the deadline set inside the scenario
        loop.run_until_complete(scenario())
    finally:
        loop.close()
