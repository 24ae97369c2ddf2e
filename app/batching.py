"""Micro-batching: concurrent requests are merged into one ``score`` call (app.core).

Why: the per-call overhead of validation and ONNX Runtime dwarfs the per-row cost, so scoring 32
requests in one call is nearly as cheap as scoring one. A batch is cut when it reaches
``max_batch_size`` records, or on the first event-loop turn that brings no new request (and no request
is still reading its body), or at the latest ``max_wait`` after its first request. A lone request
therefore waits one loop turn (microseconds when nothing else is happening), while under load the
requests that keep arriving turn after turn share one predict call: the CPU saved per request is what
lets throughput approach the HTTP ceiling, and with a fixed number of clients it lowers latency too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from app import metrics
from app.core import Prediction

log = logging.getLogger("app.batching")


class MicroBatcher:
    """Runs ``run(records)`` on merged batches inside the event loop (ONNX at these sizes is ~100 µs)."""

    def __init__(
        self,
        run: Callable[[Sequence[Mapping[str, Any]]], Prediction],
        max_batch_size: int = 64,
        max_wait_s: float = 0.002,
        observe: Callable[[Prediction], None] | None = None,
    ) -> None:
        self.run = run
        # Called with each merged batch's answer (the prediction-distribution sums): once per batch, not per
        # request, in the event loop that scored it.
        self.observe = observe
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.reading = 0  # requests that started but have not submitted yet (HTTP layer keeps it)
        self._pending: list[tuple[Sequence[Mapping[str, Any]], asyncio.Future[Prediction]]] = []
        self._rows = 0
        self._handle: asyncio.Handle | asyncio.TimerHandle | None = None
        self._deadline = 0.0
        self._seen = 0  # pending requests at the last tick: growth means requests are still arriving
        self.batches = 0

    def submit(self, records: Sequence[Mapping[str, Any]]) -> asyncio.Future[Prediction]:
        """Queue ``records`` for the next merged call; await the returned future for their part of it.

        A plain function returning the future, not a coroutine: one coroutine frame less per request.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Prediction] = loop.create_future()
        self._pending.append((records, future))
        self._rows += len(records)
        if self._rows >= self.max_batch_size:
            self._flush()
        elif self._handle is None:
            self._deadline = loop.time() + self.max_wait_s
            self._seen = 0
            self._handle = loop.call_soon(self._tick)
        elif self.reading == 0 and isinstance(self._handle, asyncio.TimerHandle):
            self._handle.cancel()
            self._handle = loop.call_soon(self._tick)
        return future

    def reader_done(self) -> None:
        """A request stopped reading (submitted or failed): a waiting batch may not need to wait any more."""
        self.reading -= 1
        if self.reading == 0 and isinstance(self._handle, asyncio.TimerHandle):
            self._handle.cancel()
            self._handle = asyncio.get_running_loop().call_soon(self._tick)

    def _tick(self) -> None:
        self._handle = None
        if not self._pending:
            return
        loop = asyncio.get_running_loop()
        if loop.time() < self._deadline:
            if len(self._pending) > self._seen:
                # The last loop turn brought requests: give the next turn's arrivals a place in this batch
                # too. A turn that brings none ends the wait, so a lone request waits one turn, no longer.
                self._seen = len(self._pending)
                self._handle = loop.call_soon(self._tick)
                return
            if self.reading > 0:
                self._handle = loop.call_at(self._deadline, self._tick)
                return
        self._flush()

    def _flush(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        pending, self._pending, self._rows = self._pending, [], 0
        if not pending:
            return
        merged: list[Mapping[str, Any]] = []
        bounds = []
        for records, _ in pending:
            bounds.append((len(merged), len(merged) + len(records)))
            merged.extend(records)
        self.batches += 1
        metrics.BATCHES.inc()
        metrics.BATCH_RECORDS.observe(len(merged))
        metrics.BATCH_REQUESTS.observe(len(pending))
        try:
            prediction = self.run(merged)
        except Exception as exc:
            for _, future in pending:
                if not future.done():
                    future.set_exception(exc)
            return
        if self.observe is not None:
            try:
                self.observe(prediction)
            except Exception:  # a metric must never fail the answers it measures
                log.exception("observing a batch for the prediction metric failed")
        if len(pending) == 1:
            if not pending[0][1].done():
                pending[0][1].set_result(prediction)
            return
        for (start, stop), (_, future) in zip(bounds, pending, strict=True):
            if not future.done():
                future.set_result(prediction.slice(start, stop))
