"""The SQL capture sink run in a child process at the lowest CPU priority.

Why a process: storing a record in SQLite costs ~6 us of CPU a row inside the serving process (SQLite is an
embedded engine: its work is our work), on a thread that shares the GIL and the cores with the event loop.
Under load that work preempted the loop and made it wait for the GIL; measured with the storage switched
off and everything else kept, the p99 at concurrency 64 fell by ~3 ms (docs/bench-serving.md, session 10).
In its own process the engine shares no GIL with the loop, and at nice 19 it takes the CPU only when
serving leaves some: storage yields to requests, and what it has not stored yet waits in the spool, which
the writer already bounds, counts and alarms on (``app/capture/writer.py``). PostgreSQL and MySQL go the
same way: their drivers' work leaves the serving process too.

Protocol, over the child's stdin and stdout, one request at a time: the parent sends the database URL as the
first frame (never on the command line, where ``ps`` shows it), then one frame per batch holding the batch's
JSON lines exactly as spooled; the child answers each batch with a status byte and a frame holding the
error message (empty when stored). A frame is an 8-byte little-endian length and that many bytes.

Failure semantics (``SinkWorker`` retries, splits and quarantines as for any sink):
- a record the database refuses (``SqlSink.permanent``) answers REJECTED and raises ``SqlRecordRejectedError``
  here, so the worker splits the batch and sets aside only that record;
- a database that is down answers FAILED and raises ``SqlProcessError`` (transient: retried with backoff);
- a child that dies, closes its pipe or does not answer within ``reply_timeout`` is killed and also raises
  ``SqlProcessError``; the next write starts a new child. Inserts ignore uids already stored, so a batch
  that was stored before the child died is not stored twice when it is sent again.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from app import metrics
from app.capture.spool import decode, encode

OK, REJECTED, FAILED = 0, 1, 2
CHILD_NICE = 19  # the lowest priority (setpriority(2)): storage takes only the CPU serving leaves
# Longer than anything the child may legitimately wait on: SQLite's lock timeout and PostgreSQL's
# statement timeout are both 30 s (app/capture/sinks.py), a batch may run several statements.
REPLY_TIMEOUT_SECONDS = 120.0
CLOSE_TIMEOUT_SECONDS = 10.0  # short: a worker closes its sinks at shutdown after waiting for its threads
SUPPORTED_BACKENDS = ("sqlite", "postgresql", "mysql", "mariadb")
_HEADER = struct.Struct("<Q")
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the directory holding ``app``, for the child's imports


class SqlProcessError(ConnectionError):
    """The SQL process or its database could not store the batch now: transient, retried."""


class SqlRecordRejectedError(ValueError):
    """The database refused a record of the batch on its content: permanent for that record."""


def check_url(url: str) -> str:
    """The URL's backend, or ValueError naming what is wrong and what is allowed; checked in the parent so a
    bad ``CAPTURE_DB_URL`` stops the start instead of failing every batch in the child."""
    try:
        backend = sa.make_url(url).get_backend_name()
    except sa.exc.ArgumentError as exc:
        raise ValueError(f"CAPTURE_DB_URL is not a database URL ({exc}); e.g. sqlite:///capture.db") from None
    if backend not in SUPPORTED_BACKENDS:
        raise ValueError(f"CAPTURE_DB_URL backend {backend!r} is not supported; allowed: {list(SUPPORTED_BACKENDS)}")
    return backend


class SqlProcessSink:
    """``Sink`` for the ``prediction_capture`` table that stores through a ``SqlSink`` in a child process."""

    name = "sql"

    def __init__(self, url: str, *, reply_timeout: float = REPLY_TIMEOUT_SECONDS, nice: int = CHILD_NICE) -> None:
        self.backend = check_url(url)
        self.url = url
        self.reply_timeout = reply_timeout
        self.nice = nice
        self._child: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()  # one batch in flight: the deliverer, and ``close`` at shutdown

    @property
    def pid(self) -> int | None:
        """The running child's process id, None before the first write or after it died."""
        child = self._child
        return child.pid if child is not None and child.poll() is None else None

    @staticmethod
    def permanent(exc: BaseException) -> bool:
        return isinstance(exc, SqlRecordRejectedError)

    def write(self, records: Sequence[dict[str, Any]]) -> None:
        lines, _good, bad = encode(records)
        if bad:
            raise SqlRecordRejectedError(f"{len(bad)} record(s) cannot be encoded as JSON: {bad[0][1]}")
        self.write_lines(records, lines)

    def write_lines(self, records: Sequence[dict[str, Any]], lines: bytes) -> None:
        """Store the batch spooled as ``lines`` (``records`` decoded); returns once the child committed it."""
        if not records:
            return
        with self._lock:
            status, message = self._exchange(lines)
        if status == REJECTED:
            raise SqlRecordRejectedError(message)
        if status != OK:
            raise SqlProcessError(message)
        if message:  # records whose ids the table could not hold (no ``ids`` column, no right to add it)
            metrics.CAPTURE_IDS_NOT_STORED.labels(self.name).inc(int(message))

    def close(self, timeout: float = CLOSE_TIMEOUT_SECONDS) -> None:
        """End the child after its current batch (it exits on end of input); kill it if that takes longer than
        ``timeout``. A batch cut short this way stays in the spool for the next start."""
        locked = self._lock.acquire(timeout=timeout)  # a batch in flight may hold it up to ``reply_timeout``
        try:
            child, self._child = self._child, None
            if child is None:
                return
            if not locked:
                child.kill()
            if child.stdin is not None:
                child.stdin.close()
            try:
                child.wait(timeout)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            if child.stdout is not None:
                child.stdout.close()
        finally:
            if locked:
                self._lock.release()

    # -- the exchange ---------------------------------------------------------------------------------------

    def _exchange(self, lines: bytes) -> tuple[int, str]:
        try:
            child = self._running_child()
            deadline = time.monotonic() + self.reply_timeout
            assert child.stdin is not None and child.stdout is not None
            _send(child.stdin.fileno(), lines, deadline)
            status = _receive(child.stdout.fileno(), 1, deadline)[0]
            message = _receive_frame(child.stdout.fileno(), deadline).decode(errors="replace")
        except (OSError, EOFError, TimeoutError) as exc:
            code = self._kill_child()
            raise SqlProcessError(f"the SQL capture process failed ({type(exc).__name__}: {exc}; {code})") from exc
        return status, message

    def _running_child(self) -> subprocess.Popen[bytes]:
        if self._child is not None and self._child.poll() is None:
            return self._child
        if self._child is not None:
            self._kill_child()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_PACKAGE_ROOT), env.get("PYTHONPATH")]))
        child = subprocess.Popen(
            [sys.executable, "-m", "app.capture.sql_process", "--nice", str(self.nice)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            close_fds=True,
        )
        assert child.stdin is not None
        os.set_blocking(child.stdin.fileno(), False)
        self._child = child
        _send(child.stdin.fileno(), self.url.encode(), time.monotonic() + self.reply_timeout)
        return child

    def _kill_child(self) -> str:
        child, self._child = self._child, None
        if child is None:
            return "no process"
        if child.poll() is None:
            child.kill()
        code = child.wait()
        for pipe in (child.stdin, child.stdout):
            if pipe is not None:
                pipe.close()
        return f"exit status {code}"


def _send(fd: int, payload: bytes, deadline: float) -> None:
    """One frame to a non-blocking pipe, waiting (without the GIL) for room until ``deadline``."""
    view = memoryview(_HEADER.pack(len(payload)) + payload)
    while view:
        if _wait(fd, select.POLLOUT, deadline):
            view = view[os.write(fd, view) :]
        elif time.monotonic() >= deadline:
            raise TimeoutError("the SQL capture process did not read its input in time")


def _wait(fd: int, event: int, deadline: float) -> bool:
    """Whether ``fd`` is ready (or closed) before ``deadline``; poll(2), not select(2): a serving worker's
    descriptors go past select's limit of 1,024 under many connections."""
    poller = select.poll()
    poller.register(fd, event)
    return bool(poller.poll(max(0.0, deadline - time.monotonic()) * 1000))


def _receive(fd: int, size: int, deadline: float) -> bytes:
    chunks: list[bytes] = []
    while size:
        if not _wait(fd, select.POLLIN, deadline):
            if time.monotonic() >= deadline:
                raise TimeoutError("the SQL capture process did not answer in time")
            continue
        chunk = os.read(fd, size)
        if not chunk:
            raise EOFError("the SQL capture process closed its output")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _receive_frame(fd: int, deadline: float) -> bytes:
    (size,) = _HEADER.unpack(_receive(fd, _HEADER.size, deadline))
    return _receive(fd, size, deadline) if size else b""


# -- the child -------------------------------------------------------------------------------------------------


def _read_frame(stream: Any) -> bytes | None:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None  # end of input: the parent closed the pipe or died
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        return None
    return bytes(data)


def _reply(stream: Any, status: int, message: str = "") -> None:
    data = message.encode()
    stream.write(bytes([status]) + _HEADER.pack(len(data)) + data)
    stream.flush()


def serve(source: Any, answers: Any) -> None:
    """The child's loop: the URL, then batches until end of input; one answer per batch."""
    from app.capture.sinks import SqlSink

    url = _read_frame(source)
    if url is None:
        return
    sink = SqlSink(url.decode())
    try:
        while (data := _read_frame(source)) is not None:
            records, bad = decode(data)
            if bad:
                _reply(answers, REJECTED, f"{len(bad)} line(s) of the batch are not capture records")
                continue
            try:
                ids_lost = sink.store(records)
            except Exception as exc:  # every outcome goes back to the parent, which logs, counts and retries
                status = REJECTED if sink.permanent(exc) else FAILED
                _reply(answers, status, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
                continue
            _reply(answers, OK, str(ids_lost) if ids_lost else "")
    finally:
        sink.close()


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m app.capture.sql_process", description=__doc__)
    parser.add_argument("--nice", type=int, default=CHILD_NICE, help="niceness increment (default: %(default)s)")
    args = parser.parse_args(argv)
    # The parent's stop decides when this process ends (end of input), so a SIGTERM sent to the whole
    # process group does not cut the worker's last delivery at shutdown short.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from app.config import LOG_FORMAT

    if args.nice:
        os.nice(args.nice)
    logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT)
    # The answers get their own descriptor and fd 1 goes to stderr: anything a library prints cannot corrupt
    # the protocol.
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    serve(sys.stdin.buffer, answers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
