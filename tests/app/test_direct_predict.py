"""``POST /predict`` served straight from the HTTP parser (``app.http_protocol.DirectPredict``).

Why these tests: the direct path replaces uvicorn's request cycle for the hot endpoint, so everything uvicorn
did for it (status line and default headers, keep-alive and ``connection: close``, ``Expect: 100-continue``,
pipelining, graceful shutdown, idle and body deadlines, disconnects) is now this app's own code. Each case here
would fail if the direct path got one of those wrong.

Two layers. The in-process tests drive ``LimitedHttpToolsProtocol`` with a fake transport on a fresh event loop
(deterministic: the loop is stepped until the answer is written, bounded by a count of turns, never by time).
The real-process tests send raw bytes to ``python -m app`` over a socket, as a client would.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import socket
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from prometheus_client import REGISTRY
from uvicorn.config import Config
from uvicorn.server import ServerState

from app import http_protocol
from app.core import LoadedModel, load_model
from app.http_protocol import DirectPredict, LimitedHttpToolsProtocol
from app.server import ASGIApp, PredictEndpoint, PredictService, build_app
from tests.app.conftest import AppProcess, TrainedPackage
from tests.support.servers import LOOPBACK

T = TypeVar("T")

# Event-loop turns a test waits for an answer; an answer takes a handful (the batch waits 0 ms here).
STEPS = 10_000
DATE = b"Tue, 01 Dec 2026 20:40:34 GMT"
# A small body limit, so a few hundred bytes are "too large"; one or two records fit well below it.
BODY_LIMIT = 4096
TOO_LARGE = f"request body is larger than the limit of {BODY_LIMIT} bytes; send fewer records"


# --- the in-process harness ----------------------------------------------------------------------------------


class FakeTransport(asyncio.Transport):
    """Records what the protocol writes and whether it closed; a write after ``connection_lost`` raises, as
    uvloop (the app's loop) does: ``RuntimeError: unable to perform operation on <TCPTransport closed=True>``."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.writes_after_loss: list[bytes] = []
        self.closed = False
        self.lost = False
        self.read_paused = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.lost:
            self.writes_after_loss.append(bytes(data))
            raise RuntimeError("unable to perform operation on the transport; the handler is closed")
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "sockname":
            return ("127.0.0.1", 8080)
        if name == "peername":
            return ("127.0.0.1", 50123)
        return default

    def pause_reading(self) -> None:
        self.read_paused = True

    def resume_reading(self) -> None:
        self.read_paused = False


@dataclass(frozen=True)
class Answer:
    """One HTTP response as the client would parse it."""

    status: int
    header_names: list[str]  # in order, lower-cased, duplicates kept
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def parse_answers(data: bytes) -> tuple[list[Answer], bytes]:
    """The complete responses at the start of ``data`` (1xx included, bodies by content-length) and the rest."""
    answers: list[Answer] = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.split(b"\r\n")
        version, status, _reason = lines[0].split(b" ", 2)
        assert version == b"HTTP/1.1", lines[0]
        names: list[str] = []
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            assert colon, line
            names.append(name.strip().lower().decode())
            headers[names[-1]] = value.strip().decode()
        length = 0 if int(status) < 200 else int(headers["content-length"])  # every answer here has a length
        if len(rest) < length:
            break
        answers.append(Answer(int(status), names, headers, rest[:length]))
        data = rest[length:]
    return answers, data


class Connection:
    """One client connection to a ``LimitedHttpToolsProtocol`` over a :class:`FakeTransport`.

    Every protocol call runs inside the loop (as a real transport's callbacks do: the batcher needs the running
    loop); errors the loop would only log (a failing future callback) are collected and fail the next step.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, app: ASGIApp, *, limit_concurrency: int | None = None) -> None:
        self.loop = loop
        self.loop_errors: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _loop, context: self.loop_errors.append(context))
        config = Config(
            app=app,
            http=LimitedHttpToolsProtocol,
            proxy_headers=False,  # else uvicorn wraps the app and the protocol finds no predict_service
            log_config=None,
            lifespan="off",
            timeout_keep_alive=3600,  # the idle deadline is armed, never reached during a test
            limit_concurrency=limit_concurrency,
        )
        config.load()
        self.server_state = ServerState()
        self.server_state.default_headers = [(b"date", DATE)]
        self.protocol = LimitedHttpToolsProtocol(
            config=config, server_state=self.server_state, app_state={}, _loop=loop
        )
        self.transport = FakeTransport()
        self.call(self.protocol.connection_made, self.transport)

    def call(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` inside the running loop; its exception propagates."""

        async def inside() -> T:
            return function(*args)

        result = self.loop.run_until_complete(inside())
        self._check()
        return result

    def send(self, data: bytes) -> None:
        self.call(self.protocol.data_received, data)

    def lose(self) -> None:
        """The peer went away: the transport is closed and ``connection_lost`` delivered."""
        self.transport.closed = self.transport.lost = True
        self.call(self.protocol.connection_lost, None)

    def _check(self) -> None:
        assert not self.loop_errors, f"the event loop logged errors: {self.loop_errors}"

    def run_until(self, predicate: Callable[[], bool], what: str) -> None:
        """Steps the loop until ``predicate`` holds; a bounded condition wait, never a sleep."""

        async def wait() -> bool:
            for _ in range(STEPS):
                if predicate():
                    return True
                await asyncio.sleep(0)
            return predicate()

        reached = self.loop.run_until_complete(wait())
        self._check()
        assert reached, f"{what}: not reached in {STEPS} event-loop turns; written so far: {self.output()[:500]!r}"

    def run_scheduled(self, turns: int = 50) -> None:
        """Runs what is already scheduled, for a fixed number of loop turns (not a time), so that a test can
        show something does NOT happen: no late write after a loss, no error in a callback. A state the test
        expects to reach is waited for with :meth:`run_until` instead.
        """

        async def spin() -> None:
            for _ in range(turns):
                await asyncio.sleep(0)

        self.loop.run_until_complete(spin())
        self._check()

    def output(self) -> bytes:
        return b"".join(self.transport.writes)

    def answers(self, count: int) -> list[Answer]:
        """Waits for ``count`` complete responses (interim 1xx included) and returns them all."""
        self.run_until(lambda: len(parse_answers(self.output())[0]) >= count, f"{count} response(s)")
        answers, rest = parse_answers(self.output())
        assert len(answers) == count and rest == b"", (answers, rest)
        return answers


def request(
    body: bytes,
    *,
    path: str = "/predict",
    version: str = "1.1",
    content_type: str | None = "application/json",
    headers: Sequence[tuple[str, str]] = (),
    length: int | None = None,
) -> bytes:
    """A ``POST`` with a Content-Length (``length`` overrides the body's own)."""
    lines = [f"POST {path} HTTP/{version}", "Host: test"]
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    lines.append(f"Content-Length: {len(body) if length is None else length}")
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunked_request(chunks: Sequence[bytes]) -> bytes:
    """A chunked ``POST /predict`` with these chunks and the closing zero chunk."""
    head = b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
    head += b"Transfer-Encoding: chunked\r\n\r\n"
    return head + b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks) + b"0\r\n\r\n"


HEALTH = b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n"


@pytest.fixture(scope="module")
def model(trained: TrainedPackage) -> LoadedModel:
    return load_model(trained.path)


@pytest.fixture
def service(model: LoadedModel) -> PredictService:
    """A fresh service per test (its batcher's ``reading`` count starts at 0); batches cut on the next turn."""
    return PredictService(model, max_batch_wait_ms=0.0, max_body_bytes=BODY_LIMIT)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    try:
        yield loop
    finally:
        loop.run_until_complete(_cancel_tasks())
        loop.close()


async def _cancel_tasks() -> None:
    """Cancels what a test left running (an ASGI task of an abandoned request) and waits for it to end."""
    current = asyncio.current_task()
    pending = [task for task in asyncio.all_tasks() if task is not current]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


@pytest.fixture
def connect(
    monkeypatch: pytest.MonkeyPatch, loop: asyncio.AbstractEventLoop, service: PredictService
) -> Callable[..., Connection]:
    """Factory of connections to ``build_app(service)`` (or the app given); header and body deadlines an hour
    away, so the deadline sweep never fires during a test (the deadline tests call ``expire`` themselves)."""
    monkeypatch.setenv("HTTP_HEADER_TIMEOUT_SECONDS", "3600")
    monkeypatch.setenv("HTTP_BODY_TIMEOUT_SECONDS", "3600")
    monkeypatch.delenv("HTTP_MAX_HEADER_BYTES", raising=False)
    monkeypatch.setattr(http_protocol, "_LIMITS", {})  # _limits() reads the environment above once

    def make(app: ASGIApp | None = None, limit_concurrency: int | None = None) -> Connection:
        return Connection(loop, build_app(service) if app is None else app, limit_concurrency=limit_concurrency)

    return make


def records_body(trained: TrainedPackage, count: int = 1, start: int = 0) -> bytes:
    return json.dumps(trained.records[start : start + count]).encode()


def assert_scored(answer: Answer, count: int) -> None:
    """A 200 with ``count`` predictions whose x-request-id is the first prediction's uid."""
    assert answer.status == 200, answer
    payload = answer.json()
    assert len(payload["predictions"]) == count
    assert answer.headers["x-request-id"] == payload["predictions"][0]["uid"]
    assert answer.headers["content-type"] == "application/json"
    assert int(answer.headers["content-length"]) == len(answer.body)


def requests_ok() -> float:
    return requests_with_status(200)


def requests_with_status(status: int) -> float:
    """``app_requests_total`` for one status, this process (the in-process tests share the default registry)."""
    return REGISTRY.get_sample_value("app_requests_total", {"status": str(status)}) or 0.0


def http_rejected(reason: str) -> float:
    return REGISTRY.get_sample_value("app_http_rejected_total", {"reason": reason}) or 0.0


# --- in-process: the direct path ------------------------------------------------------------------------------


def test_one_request_is_answered_in_one_write(
    connect: Callable[..., Connection], service: PredictService, trained: TrainedPackage
) -> None:
    """The point of the direct path: head and body in ONE write, uvicorn's default headers (the date) first,
    the request id, and the connection kept alive with the batcher's reading count back at 0."""
    connection = connect()
    connection.send(request(records_body(trained, 2)))
    assert type(connection.protocol.cycle) is DirectPredict, "POST /predict did not take the direct path"
    [answer] = connection.answers(1)
    assert len(connection.transport.writes) == 1
    assert connection.output().startswith(b"HTTP/1.1 200 OK\r\ndate: " + DATE + b"\r\n")
    assert answer.headers["date"] == DATE.decode()
    assert_scored(answer, 2)
    assert "connection" not in answer.headers
    assert answer.header_names.count("content-length") == 1
    assert not connection.transport.closed
    assert service.batcher.reading == 0
    assert connection.server_state.total_requests == 1


def test_two_requests_one_after_the_other_on_one_connection(
    connect: Callable[..., Connection], service: PredictService, trained: TrainedPackage
) -> None:
    """Keep-alive: the connection takes the next request after a direct answer, and answers it directly too."""
    connection = connect()
    connection.send(request(records_body(trained, 1, 0)))
    connection.answers(1)
    connection.send(request(records_body(trained, 3, 1)))
    first, second = connection.answers(2)
    assert_scored(first, 1)
    assert_scored(second, 3)
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
    assert len(connection.transport.writes) == 2  # both direct: one write each
    assert not connection.transport.closed and service.batcher.reading == 0
    assert connection.server_state.total_requests == 2


def test_the_date_header_follows_the_servers_current_list(
    connect: Callable[..., Connection], trained: TrainedPackage
) -> None:
    """The encoded default headers are cached per list; uvicorn replaces the list every tick (the date), and
    the next answer must carry the new one, not the cached old date."""
    connection = connect()
    connection.send(request(records_body(trained)))
    connection.answers(1)
    later = b"Tue, 01 Dec 2026 20:40:35 GMT"
    connection.server_state.default_headers = [(b"date", later)]
    connection.send(request(records_body(trained)))
    _, second = connection.answers(2)
    assert second.headers["date"] == later.decode()


def test_two_pipelined_requests_are_answered_in_order(
    connect: Callable[..., Connection], service: PredictService, trained: TrainedPackage
) -> None:
    """Two requests in ONE read: the first is served directly, the second (behind an unanswered one) is queued
    on uvicorn's ASGI pipeline and started once the direct answer is written; answers in request order."""
    connection = connect()
    connection.send(request(records_body(trained, 1, 0)) + request(records_body(trained, 2, 5)))
    first, second = connection.answers(2)
    assert_scored(first, 1)
    assert_scored(second, 2)
    assert len(connection.transport.writes) == 3  # direct: one write; ASGI: head, then body
    assert connection.transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert not connection.transport.closed and not connection.transport.read_paused
    assert service.batcher.reading == 0
    assert connection.server_state.total_requests == 2


def test_a_predict_pipelined_behind_health_is_answered_after_it(
    connect: Callable[..., Connection], service: PredictService, trained: TrainedPackage
) -> None:
    """``GET /health`` goes through ASGI; a ``/predict`` behind it in the same read waits for its answer."""
    connection = connect()
    connection.send(HEALTH + request(records_body(trained, 2)))
    health, predicted = connection.answers(2)
    assert health.status == 200 and health.json() == {"status": "ok"}
    assert_scored(predicted, 2)
    assert not connection.transport.closed and service.batcher.reading == 0


def test_three_pipelined_requests_after_a_direct_one_keep_their_order(
    connect: Callable[..., Connection], trained: TrainedPackage
) -> None:
    """Direct ``/predict``, then ``/health`` and ``/predict`` queued behind it: three answers, request order."""
    connection = connect()
    connection.send(request(records_body(trained, 1)) + HEALTH + request(records_body(trained, 3)))
    first, health, third = connection.answers(3)
    assert_scored(first, 1)
    assert health.json() == {"status": "ok"}
    assert_scored(third, 3)


def test_expect_100_continue_with_a_small_body(
    connect: Callable[..., Connection], service: PredictService, trained: TrainedPackage
) -> None:
    """The client waits for ``100 Continue`` before it sends the body: it must come right after the headers,
    once, and before the answer."""
    connection = connect()
    data = request(records_body(trained, 2), headers=[("Expect", "100-continue")])
    head, _, body = data.partition(b"\r\n\r\n")
    connection.send(head + b"\r\n\r\n")
    assert connection.output() == b"HTTP/1.1 100 Continue\r\n\r\n"
    connection.send(body)
    interim, answer = connection.answers(2)
    assert interim.status == 100
    assert_scored(answer, 2)
    assert service.batcher.reading == 0 and not connection.transport.closed


def test_expect_100_continue_with_a_body_above_the_limit_is_refused_at_once(
    connect: Callable[..., Connection], service: PredictService
) -> None:
    """Content-Length above the limit: 413 straight after the headers, no ``100 Continue`` (the client must not
    send the body), and the request no longer counts as reading (a batch does not wait for it)."""
    connection = connect()
    connection.send(request(b"", length=BODY_LIMIT + 1, headers=[("Expect", "100-continue")]))
    [answer] = connection.answers(1)
    assert b"100 Continue" not in connection.output()
    assert len(connection.transport.writes) == 1
    assert answer.status == 413 and answer.json() == {"error": TOO_LARGE}
    assert service.batcher.reading == 0


def test_a_declared_body_above_the_limit_is_refused_then_dropped_and_the_connection_reused(
    connect: Callable[..., Connection], service: PredictService, trained: TrainedPackage
) -> None:
    """Without Expect the client sends the body anyway: 413 at the headers, the body read and dropped, and the
    next request on the connection is parsed as a request (not as the rest of that body) and answered."""
    connection = connect()
    body = b"[" + b" " * BODY_LIMIT + b"]"
    data = request(body)
    split = data.index(b"\r\n\r\n") + 4
    connection.send(data[:split])
    [refused] = connection.answers(1)
    assert refused.status == 413 and service.batcher.reading == 0
    connection.send(data[split:])
    connection.send(request(records_body(trained)))
    _, answer = connection.answers(2)
    assert_scored(answer, 1)
    assert not connection.transport.closed and service.batcher.reading == 0
    assert connection.server_state.total_requests == 2


def test_a_chunked_body_growing_past_the_limit_is_refused_and_the_next_request_served(
    connect: Callable[..., Connection], service: PredictService, trained: TrainedPackage
) -> None:
    """No Content-Length: the limit is found while the chunks arrive. 413 as soon as it is passed, the rest of
    the body read and dropped, and the connection answers the next request with 200."""
    connection = connect()
    refused_before = requests_with_status(413)
    chunk = b" " * 1000
    data = chunked_request([b"["] + [chunk] * 8 + [b"]"])
    # The head and the first chunks, past the limit; the rest (several chunks) comes with the next request.
    cut = data.index(b"\r\n\r\n") + 4 + 5 * (len(chunk) + 7)
    connection.send(data[:cut])
    [refused] = connection.answers(1)
    assert refused.status == 413 and refused.json() == {"error": TOO_LARGE}
    assert "connection" not in refused.headers  # the connection stays: the body is read and dropped
    assert service.batcher.reading == 0
    connection.send(data[cut:] + request(records_body(trained, 2)))
    _, answer = connection.answers(2)
    assert_scored(answer, 2)
    assert not connection.transport.closed and service.batcher.reading == 0
    assert requests_with_status(413) == refused_before + 1, "the dropped chunks were refused (counted) again"


@pytest.mark.parametrize(
    ("version", "headers"),
    [("1.0", []), ("1.0", [("Connection", "keep-alive")]), ("1.1", [("Connection", "close")])],
    ids=["http-1.0", "http-1.0-keep-alive", "connection-close"],
)
def test_a_request_without_keep_alive_is_answered_with_connection_close_and_closed(
    connect: Callable[..., Connection],
    service: PredictService,
    trained: TrainedPackage,
    version: str,
    headers: list[tuple[str, str]],
) -> None:
    """HTTP/1.0 and ``Connection: close``: the answer says ``connection: close`` and the server closes after
    writing it. HTTP/1.0 is closed even when it asks for keep-alive, as uvicorn's own path does."""
    connection = connect()
    connection.send(request(records_body(trained), version=version, headers=headers))
    [answer] = connection.answers(1)
    assert_scored(answer, 1)
    assert answer.headers["connection"] == "close" and answer.header_names.count("connection") == 1
    assert len(connection.transport.writes) == 1
    assert connection.transport.closed
    assert service.batcher.reading == 0


def test_an_early_413_without_keep_alive_counts_one_request(
    connect: Callable[..., Connection], service: PredictService
) -> None:
    """An HTTP/1.0 request whose declared body is above the limit, body in the same read: one 413, closed,
    and one request counted (uvicorn's ``limit_max_requests`` counts ``total_requests``)."""
    connection = connect()
    connection.send(request(b"[" + b" " * BODY_LIMIT + b"]", version="1.0"))
    [answer] = connection.answers(1)
    assert answer.status == 413 and answer.headers["connection"] == "close"
    assert connection.transport.closed and service.batcher.reading == 0
    assert connection.server_state.total_requests == 1


def test_a_body_that_never_completes_then_a_lost_connection(
    connect: Callable[..., Connection], service: PredictService, trained: TrainedPackage
) -> None:
    """Headers in, part of the body, then the client goes: nothing is written, and the request stops counting
    as reading (else every later batch would wait its full max_wait for it)."""
    connection = connect()
    data = request(records_body(trained, 3))
    connection.send(data[: data.index(b"\r\n\r\n") + 10])
    assert service.batcher.reading == 1
    connection.lose()
    connection.run_scheduled()
    assert connection.transport.writes == [] and connection.transport.writes_after_loss == []
    assert service.batcher.reading == 0
    assert connection.protocol.deadline_at == math.inf


def test_a_connection_lost_while_its_prediction_is_pending(
    connect: Callable[..., Connection], service: PredictService, trained: TrainedPackage
) -> None:
    """The client goes after its request was queued, before the batch runs: no write after the loss, no error,
    and the prediction is still scored and counted (it was made; capture and metrics see it)."""
    connection = connect()
    before = requests_ok()

    def send_then_lose() -> None:
        connection.protocol.data_received(request(records_body(trained, 2)))
        assert service.batcher._pending, "the request was not queued"
        connection.transport.closed = connection.transport.lost = True
        connection.protocol.connection_lost(None)

    connection.call(send_then_lose)
    connection.run_until(lambda: not service.batcher._pending and service.batcher.batches == 1, "the batch ran")
    connection.run_scheduled()
    assert connection.transport.writes == [] and connection.transport.writes_after_loss == []
    assert service.batcher.reading == 0
    assert requests_ok() == before + 1


def test_a_connection_lost_while_a_prediction_is_pending_with_a_request_queued_behind_it(
    connect: Callable[..., Connection], service: PredictService, trained: TrainedPackage
) -> None:
    """As above, with a second request pipelined behind the first: still no write after the loss, no error."""
    connection = connect()

    def send_then_lose() -> None:
        connection.protocol.data_received(request(records_body(trained, 1)) + request(records_body(trained, 1)))
        assert service.batcher._pending, "the first request was not queued"
        connection.transport.closed = connection.transport.lost = True
        connection.protocol.connection_lost(None)

    connection.call(send_then_lose)
    connection.run_until(lambda: service.batcher.batches == 1, "the first request's batch ran")
    connection.run_scheduled()  # the pipelined request and the scored answer: neither may write now
    assert service.batcher.batches == 1
    assert connection.transport.writes_after_loss == []
    assert connection.transport.writes == []
    assert service.batcher.reading == 0


def test_a_bug_in_scoring_is_a_500_and_the_connection_stays_usable(
    connect: Callable[..., Connection],
    service: PredictService,
    trained: TrainedPackage,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A scoring exception is not the client's fault: 500 with the documented body, in one write; the worker
    and the connection carry on, and the next request is scored normally."""
    connection = connect()
    run = service.batcher.run

    def broken(records: Any) -> Any:
        raise RuntimeError("scoring bug")

    monkeypatch.setattr(service.batcher, "run", broken)
    connection.send(request(records_body(trained)))
    [failed] = connection.answers(1)
    assert failed.status == 500 and failed.json() == {"error": "internal error; it has been logged"}
    assert len(connection.transport.writes) == 1 and not connection.transport.closed
    monkeypatch.setattr(service.batcher, "run", run)
    connection.send(request(records_body(trained)))
    _, answer = connection.answers(2)
    assert_scored(answer, 1)
    assert service.batcher.reading == 0


@pytest.mark.parametrize(
    "mistake",
    [
        (b"[{", "application/json", None, 400),
        (b"[{}]", "application/json", "application/xml", 406),
        (b"<records/>", "application/xml", None, 415),
    ],
    ids=["bad-json-400", "accept-406", "content-type-415"],
)
def test_client_mistakes_are_answered_in_one_write(
    connect: Callable[..., Connection],
    service: PredictService,
    trained: TrainedPackage,
    mistake: tuple[bytes, str, str | None, int],
) -> None:
    """A refused body is answered at once (one write, JSON error), the reading count is released, and the
    connection takes the next request."""
    body, content_type, accept, status = mistake
    connection = connect()
    headers = [("Accept", accept)] if accept is not None else []
    connection.send(request(body, content_type=content_type, headers=headers))
    [refused] = connection.answers(1)
    assert refused.status == status
    assert refused.headers["content-type"] == "application/json" and "error" in refused.json()
    assert len(connection.transport.writes) == 1 and not connection.transport.closed
    assert service.batcher.reading == 0
    connection.send(request(records_body(trained)))
    _, answer = connection.answers(2)
    assert_scored(answer, 1)


def test_a_cancelled_prediction_closes_the_connection_without_an_answer(
    connect: Callable[..., Connection], service: PredictService, trained: TrainedPackage
) -> None:
    """Only a worker shutting down cancels a queued prediction: no answer is coming, so the connection is
    closed instead of being left waiting for ever."""
    connection = connect()

    def send_then_cancel() -> None:
        connection.protocol.data_received(request(records_body(trained)))
        [(_records, future)] = service.batcher._pending
        future.cancel()

    connection.call(send_then_cancel)
    connection.run_until(lambda: connection.transport.closed, "the connection closed")
    connection.run_scheduled()
    assert connection.transport.writes == [] and service.batcher.reading == 0


def test_a_request_whose_records_all_violate_the_schema_is_a_422(
    connect: Callable[..., Connection], trained: TrainedPackage
) -> None:
    """The 422 answer goes through the same single write; it has an x-request-id (made up: nothing scored)."""
    connection = connect()
    bad = {**trained.records[0], "unexpected": 1}
    connection.send(request(json.dumps([bad]).encode()))
    [answer] = connection.answers(1)
    assert answer.status == 422 and answer.json()["violations"]
    assert answer.headers["x-request-id"] and len(connection.transport.writes) == 1


def test_shutdown_while_a_request_is_pending_closes_after_its_answer(
    connect: Callable[..., Connection], service: PredictService, trained: TrainedPackage
) -> None:
    """uvicorn's graceful shutdown clears the pending cycle's keep_alive: the direct answer must still be sent,
    say ``connection: close``, and the connection must then be closed."""
    connection = connect()

    def send_then_shut_down() -> None:
        connection.protocol.data_received(request(records_body(trained)))
        connection.protocol.shutdown()
        assert not connection.transport.closed, "closed before the pending request was answered"

    connection.call(send_then_shut_down)
    [answer] = connection.answers(1)
    assert_scored(answer, 1)
    assert answer.headers["connection"] == "close"
    assert connection.transport.closed and service.batcher.reading == 0


def test_shutdown_while_a_body_is_still_arriving_answers_it_then_closes(
    connect: Callable[..., Connection], trained: TrainedPackage
) -> None:
    """Shutdown between headers and body: the request is still served, with ``connection: close``."""
    connection = connect()
    data = request(records_body(trained))
    split = data.index(b"\r\n\r\n") + 4
    connection.send(data[:split])
    connection.call(connection.protocol.shutdown)
    assert not connection.transport.closed
    connection.send(data[split:])
    [answer] = connection.answers(1)
    assert_scored(answer, 1)
    assert answer.headers["connection"] == "close" and connection.transport.closed


def test_shutdown_after_an_answer_closes_at_once(connect: Callable[..., Connection], trained: TrainedPackage) -> None:
    """A kept-alive connection with nothing pending is closed by the shutdown straight away."""
    connection = connect()
    connection.send(request(records_body(trained)))
    connection.answers(1)
    connection.call(connection.protocol.shutdown)
    assert connection.transport.closed and len(connection.transport.writes) == 1


def test_after_an_answer_the_idle_deadline_is_armed_and_closes_quietly(
    connect: Callable[..., Connection], trained: TrainedPackage
) -> None:
    """The direct path arms the keep-alive deadline itself (no uvicorn timer): finite after an answer, and when
    it passes the connection is closed without a 408 (nothing was asked)."""
    connection = connect()
    connection.send(request(records_body(trained)))
    connection.answers(1)
    protocol = connection.protocol
    assert math.isfinite(protocol.deadline_at) and protocol._deadline_what == "idle"
    assert protocol.deadline_at > connection.loop.time() + 3000  # the keep-alive setting (3600 s), not another
    written = len(connection.transport.writes)
    rejected = http_rejected("idle_timeout") + http_rejected("headers_timeout")
    protocol.deadline_at = connection.loop.time() - 1
    connection.call(protocol.expire)
    assert connection.transport.closed and len(connection.transport.writes) == written
    assert protocol.deadline_at == math.inf
    assert http_rejected("idle_timeout") + http_rejected("headers_timeout") == rejected, "an idle close is no rejection"


def test_a_next_request_begun_before_the_answer_keeps_its_header_deadline(
    connect: Callable[..., Connection], trained: TrainedPackage
) -> None:
    """The start of the next request's headers arrives with the first request: the answer must not replace the
    header deadline by the (longer) idle one, and late headers are still answered 408."""
    connection = connect()
    connection.send(request(records_body(trained)) + b"POST /predict HTTP/1.1\r\nHost: te")
    connection.answers(1)
    protocol = connection.protocol
    assert protocol._deadline_what == "headers" and math.isfinite(protocol.deadline_at)
    protocol.deadline_at = connection.loop.time() - 1
    connection.call(protocol.expire)
    assert connection.transport.closed
    assert connection.transport.writes[-1].startswith(b"HTTP/1.1 408 Request Timeout\r\n")


def test_a_stalled_body_expires_without_an_answer_and_releases_the_reading(
    connect: Callable[..., Connection], service: PredictService, trained: TrainedPackage
) -> None:
    """The body deadline passes: closed without an answer (no 408 for a body), and once the loss is delivered
    the request no longer counts as reading."""
    connection = connect()
    data = request(records_body(trained))
    connection.send(data[: data.index(b"\r\n\r\n") + 6])
    protocol = connection.protocol
    assert protocol._deadline_what == "body" and service.batcher.reading == 1
    protocol.deadline_at = connection.loop.time() - 1
    connection.call(protocol.expire)
    assert connection.transport.closed and connection.transport.writes == []
    connection.lose()
    connection.run_scheduled()
    assert service.batcher.reading == 0 and connection.transport.writes_after_loss == []


def test_without_a_predict_service_predict_goes_through_asgi(
    connect: Callable[..., Connection], service: PredictService, trained: TrainedPackage
) -> None:
    """An app that hides ``predict_service`` (any wrapper: tracing, proxy headers) keeps ``/predict`` working
    through uvicorn's ASGI path: the same answer, written as head then body."""
    endpoint = build_app(service)
    assert isinstance(endpoint, PredictEndpoint)

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        await endpoint(scope, receive, send)

    connection = connect(app=wrapped)
    assert connection.protocol._predict is None
    connection.send(request(records_body(trained, 2)))
    assert type(connection.protocol.cycle) is not DirectPredict
    [answer] = connection.answers(1)
    assert_scored(answer, 2)
    assert len(connection.transport.writes) == 2  # ASGI: head, then body
    assert service.batcher.reading == 0 and not connection.transport.closed


def test_over_the_concurrency_limit_predict_gets_uvicorns_503(
    connect: Callable[..., Connection], service: PredictService, trained: TrainedPackage
) -> None:
    """``limit_concurrency`` (HTTP_MAX_CONNECTIONS) still applies to ``/predict``: at the limit the request is
    handed to uvicorn, which answers 503 instead of serving it."""
    connection = connect(limit_concurrency=1)  # this connection alone reaches the limit
    connection.send(request(records_body(trained)))
    [answer] = connection.answers(1)
    assert answer.status == 503
    assert service.batcher.reading == 0


# --- a real process, raw sockets ------------------------------------------------------------------------------

CLIENT_TIMEOUT = 20


@pytest.fixture
def served(trained: TrainedPackage, app_process: Callable[..., AppProcess]) -> Iterator[AppProcess]:
    started = app_process(trained.path, env={"MAX_BODY_BYTES": str(BODY_LIMIT)})
    yield started
    started.terminate()


def _connect(app: AppProcess) -> socket.socket:
    sock = socket.create_connection((LOOPBACK, app.port))
    sock.settimeout(CLIENT_TIMEOUT)  # far above any answer: a timeout is the failure
    return sock


def _read_answers(sock: socket.socket, count: int) -> list[Answer]:
    """Reads until ``count`` complete responses (1xx included) have arrived."""
    data = b""
    while len(parse_answers(data)[0]) < count:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed after {data!r}"
        data += chunk
    answers, rest = parse_answers(data)
    assert len(answers) == count and rest == b"", (answers, rest)
    return answers


def test_real_pipelined_requests_are_answered_in_order(served: AppProcess, trained: TrainedPackage) -> None:
    """Three requests in one send over a real socket: three answers, in request order."""
    with _connect(served) as sock:
        sock.sendall(request(records_body(trained, 1)) + HEALTH + request(records_body(trained, 3)))
        first, health, third = _read_answers(sock, 3)
    assert_scored(first, 1)
    assert health.json() == {"status": "ok"}
    assert_scored(third, 3)
    assert "Traceback" not in served.log()


def test_real_http_1_0_is_answered_then_closed(served: AppProcess, trained: TrainedPackage) -> None:
    """HTTP/1.0: one answer with ``connection: close``, then the server closes the socket."""
    with _connect(served) as sock:
        sock.sendall(request(records_body(trained, 2), version="1.0"))
        [answer] = _read_answers(sock, 1)
        assert sock.recv(65536) == b""  # closed by the server
    assert_scored(answer, 2)
    assert answer.headers["connection"] == "close" and "date" in answer.headers
    assert "Traceback" not in served.log()


def test_real_expect_100_continue(served: AppProcess, trained: TrainedPackage) -> None:
    """A client that waits for ``100 Continue`` gets it, sends the body, gets the answer; on the same connection
    a body declared above the limit is refused with 413 and no ``100 Continue``."""
    data = request(records_body(trained, 2), headers=[("Expect", "100-continue")])
    head, _, body = data.partition(b"\r\n\r\n")
    with _connect(served) as sock:
        sock.sendall(head + b"\r\n\r\n")
        [interim] = _read_answers(sock, 1)
        assert interim.status == 100
        sock.sendall(body)
        [answer] = _read_answers(sock, 1)
        assert_scored(answer, 2)
        sock.sendall(request(b"", length=BODY_LIMIT + 1, headers=[("Expect", "100-continue")]))
        [refused] = _read_answers(sock, 1)
    assert refused.status == 413 and refused.json() == {"error": TOO_LARGE}
    assert "Traceback" not in served.log()


# --- the server as ``python -m app`` configures it ------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "direct"),
    [({}, True), ({"proxy_headers": True}, False), ({"log_level": "trace"}, False)],
    ids=["as-served", "proxy-headers-wrap-the-app", "trace-logging-wraps-the-app"],
)
def test_the_server_as_configured_keeps_the_direct_path(
    trained: TrainedPackage, tmp_path: Any, override: dict[str, Any], direct: bool
) -> None:
    """``python -m app`` runs uvicorn with :func:`app.__main__.uvicorn_options`. An option that makes uvicorn
    wrap the app in middleware hides the service from the protocol, and ``/predict`` silently falls back to the
    slower ASGI path: the options as served must not, and the two known wrappers show that the check can fail."""
    from app.__main__ import uvicorn_options
    from app.config import AppConfig
    from app.factory import create_app

    config = AppConfig(model_dir=str(trained.path), spool_dir=str(tmp_path / "spool"))
    loggers = [logging.getLogger(name) for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")]
    levels = [logger.level for logger in loggers]
    try:  # uvicorn's Config sets its loggers' levels: restored, so later tests in this process see no change
        server = Config(create_app(config), **{**uvicorn_options(config), "log_config": None, **override})
        server.load()
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
    assert server.http_protocol_class is LimitedHttpToolsProtocol
    assert (getattr(server.loaded_app, "predict_service", None) is not None) is direct
