"""Moves capture records from the request path to the sinks without ever making a request wait.

The request path calls :meth:`CaptureWriter.submit`, which only appends a list to a bounded in-memory
queue per sink (a full queue spills to that sink's spool rather than dropping). One daemon thread per
sink wakes on a short poll, batches records by size and time, writes them, and on failure spools the
batch (fsynced) and backs off; spooled segments are replayed oldest first once the sink answers
again. ``close`` (called on SIGTERM via the lifespan) drains the queue: delivered or spooled, nothing
is lost.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from app import metrics
from app.capture.sinks import Sink
from app.capture.spool import Spool

log = logging.getLogger("app.capture")


class SinkWorker:
    """One sink, its spool and its drain thread."""

    def __init__(
        self,
        sink: Sink,
        spool: Spool,
        *,
        flush_records: int = 1000,
        flush_seconds: float = 5.0,
        queue_size: int = 100_000,
        retry_initial: float = 0.5,
        retry_max: float = 30.0,
        poll_seconds: float = 0.05,
    ) -> None:
        self.sink, self.spool = sink, spool
        self.flush_records, self.flush_seconds = flush_records, flush_seconds
        self.retry_initial, self.retry_max = retry_initial, retry_max
        self.queue_size = queue_size
        self.poll_seconds = min(poll_seconds, flush_seconds)
        # A deque, not queue.Queue: append is atomic and wakes nobody. Waking the drain thread on every
        # request made the two threads trade the GIL per request, which halved throughput.
        self._queue: collections.deque[list[dict[str, Any]]] = collections.deque()
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"capture-{sink.name}", daemon=True)
        self._retry_at = 0.0
        self._backoff = retry_initial
        self.delivered = 0
        self.spooled = 0
        self.replayed = 0

    # -- request path --------------------------------------------------------------------------------------

    def submit(self, records: list[dict[str, Any]]) -> None:
        depth = len(self._queue)
        if depth >= self.queue_size:
            # Overload: a disk write here beats losing records; it only happens when the drain lags far behind.
            self._spool(records)
            return
        self._queue.append(records)
        if depth + 1 == self.flush_records:  # enough for a full batch: no need to wait for the poll
            self._wake.set()

    # -- drain thread --------------------------------------------------------------------------------------

    def start(self) -> None:
        self._update_gauge()
        self._thread.start()

    def close(self, timeout: float = 20.0) -> None:
        """Flush everything queued; what cannot be delivered now is spooled. Idempotent."""
        if self._thread.is_alive():
            self._stopping = True
            self._wake.set()
            self._thread.join(timeout)
        # Whatever is still queued (thread stuck on a dead sink past the timeout, or never started) goes to disk.
        leftovers = self._take()
        if leftovers:
            self._spool(leftovers)

    def _take(self) -> list[dict[str, Any]]:
        taken: list[dict[str, Any]] = []
        queue = self._queue
        while queue:
            taken.extend(queue.popleft())
        return taken

    def _run(self) -> None:
        buffer: list[dict[str, Any]] = []
        first_at = 0.0
        while True:
            self._wake.wait(self.poll_seconds)
            self._wake.clear()
            stopping = self._stopping
            taken = self._take()
            if taken:
                if not buffer:
                    first_at = time.monotonic()
                buffer.extend(taken)
            if stopping:
                self._flush(buffer, final=True)
                return
            if len(buffer) >= self.flush_records or (buffer and time.monotonic() - first_at >= self.flush_seconds):
                self._flush(buffer)
                buffer = []
            elif not buffer and self.spool_pending and time.monotonic() >= self._retry_at:
                self._replay()

    @property
    def spool_pending(self) -> bool:
        return self.spool.segment_count > 0

    def _flush(self, buffer: list[dict[str, Any]], final: bool = False) -> None:
        for start in range(0, len(buffer), self.flush_records):
            self._deliver(buffer[start : start + self.flush_records])
        if final and self.spool_pending and time.monotonic() >= self._retry_at:
            self._replay()

    def _deliver(self, batch: list[dict[str, Any]]) -> None:
        # While the sink is known down, do not wait on it again; older spooled records go first.
        if time.monotonic() < self._retry_at or (self.spool_pending and not self._replay()):
            self._spool(batch)
            return
        if self._write(batch):
            self.delivered += len(batch)
            metrics.CAPTURE_RECORDS.labels(self.sink.name, "delivered").inc(len(batch))
        else:
            self._spool(batch)

    def _write(self, batch: Sequence[dict[str, Any]]) -> bool:
        try:
            self.sink.write(batch)
        except Exception as exc:
            metrics.CAPTURE_FAILURES.labels(self.sink.name).inc()
            log.warning(
                "capture sink %s failed (%s: %s); spooling, retry in %.1fs",
                self.sink.name,
                type(exc).__name__,
                exc,
                self._backoff,
            )
            self._retry_at = time.monotonic() + self._backoff
            self._backoff = min(self._backoff * 2, self.retry_max)
            return False
        if self._backoff != self.retry_initial:
            log.info("capture sink %s is back", self.sink.name)
        self._backoff = self.retry_initial
        self._retry_at = 0.0
        return True

    def _replay(self) -> bool:
        """Send spooled segments oldest first; True when the spool is empty afterwards."""
        for segment in self.spool.segments():
            records = self.spool.read(segment)
            if records and not self._write(records):
                self._update_gauge()
                return False
            self.spool.remove(segment)
            self.replayed += len(records)
            metrics.CAPTURE_RECORDS.labels(self.sink.name, "replayed").inc(len(records))
        self._update_gauge()
        return True

    def _spool(self, records: list[dict[str, Any]]) -> None:
        self.spool.append(records)
        self.spooled += len(records)
        metrics.CAPTURE_RECORDS.labels(self.sink.name, "spooled").inc(len(records))
        self._update_gauge()

    def _update_gauge(self) -> None:
        metrics.SPOOL_SEGMENTS.labels(self.sink.name).set(self.spool.segment_count)


class CaptureWriter:
    """Fans each prediction's records out to every sink worker; switched off by runtime settings."""

    def __init__(self, workers: Sequence[SinkWorker]) -> None:
        self.workers = list(workers)
        self.enabled = True

    def submit(self, records: list[dict[str, Any]]) -> None:
        if not self.enabled:
            return
        for worker in self.workers:
            worker.submit(records)

    def start(self) -> None:
        for worker in self.workers:
            worker.start()

    def close(self, timeout: float = 20.0) -> None:
        for worker in self.workers:
            worker.close(timeout)
            close = getattr(worker.sink, "close", None)
            if close is not None:
                close()
