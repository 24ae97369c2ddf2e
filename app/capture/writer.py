"""Moves capture records from the request path to the sinks without ever making a request wait.

The request path calls :meth:`CaptureWriter.submit`, which only appends the records' JSON lines to the
open batch of each sink (the records themselves are never kept: see ``_Batch``). Two daemon threads per sink
then do the rest:

- the *spooler* batches records by size and time and writes every batch to the sink's spool on disk
  first (write-ahead, fsynced), so a record leaves memory within ``CAPTURE_FLUSH_SECONDS`` whatever the
  sink is doing (down, hung on a socket, waiting on a table lock);
- the *deliverer* sends spooled batches oldest first and deletes a segment once the sink confirmed it;
  a failing sink is retried with exponential backoff.

No single failure stops either thread: a failed spool write (disk full, read-only, I/O error) is retried
with backoff while the batch waits in memory (bounded; what exceeds the bound is dropped, counted and
logged); a segment line that is not a record, an unreadable segment and a record the sink rejects
permanently go to the quarantine next to the spool (counted, logged) and the records behind them keep
flowing. ``close`` (SIGTERM via the lifespan) writes what is queued to the spool, tries to deliver it,
and reports how many records it could not save anywhere.
"""

from __future__ import annotations

import collections
import errno
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app import capture_contract as contract
from app import metrics
from app.capture.sinks import Sink
from app.capture.spool import Encoded, Spool, SpooledRecords, encode, segment_records, segment_time

log = logging.getLogger("app.capture")

OVERFLOW_POLICIES = ("drop_oldest", "drop_newest")
_GAUGE_SECONDS = 1.0  # how often the gauges are refreshed from the spooler loop


@dataclass
class _Entry:
    """One batch waiting for its sink: on disk (``path``), in memory (``records``) or both."""

    path: Path | None  # None: memory only, the spool could not be written
    records: SpooledRecords | None  # None: on disk only, read when its turn comes
    count: int
    nbytes: int
    created: float  # wall-clock time of its oldest record


@dataclass(slots=True)
class _Batch:
    """Records on their way to the spool, held as the JSON lines ``submit`` was given (encoded on the request
    path, once for every sink), never as the records themselves.

    Why not the records: whoever drops the last reference to a dict frees it, holding the GIL. Kept here,
    a batch of 1,000 records was freed by the spooler thread in one go, about a millisecond during which
    the event loop waited for the GIL (docs/bench-serving.md, session 11). Dropped by ``submit``, each turn
    frees its own records on the loop, a few microseconds at a time, and the spooler takes a batch in a few
    steps whatever its size.
    """

    chunks: list[bytes]  # one per submission, so a batch is cut between submissions, never inside one
    count: int
    bad: list[tuple[Any, str]]  # records that cannot be encoded, with why: quarantined by the spooler
    since: float  # wall-clock time of its oldest record
    opened: float  # monotonic: due ``flush_seconds`` after this


class _Throttled:
    """At most one log line per ``every`` seconds per key, with how many were folded into it."""

    def __init__(self, every: float = 10.0) -> None:
        self.every = every
        self._last: dict[str, float] = {}
        self._folded: dict[str, int] = collections.Counter()

    def __call__(self, key: str, level: int, message: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._last.get(key, -1e9) < self.every:
            self._folded[key] += 1
            return
        folded = self._folded.pop(key, 0)
        self._last[key] = now
        if folded:
            message += f" ({folded} similar in the last {self.every:.0f}s not logged)"
        log.log(level, message, *args)


def default_permanent(exc: BaseException) -> bool:
    """A record the sink can never take (bad shape, unencodable value), as opposed to a sink that is down."""
    return isinstance(exc, KeyError | TypeError | ValueError)


class SinkWorker:
    """One sink, its spool and its two threads (spooler, deliverer)."""

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
        spool_max_bytes: int = 0,
        overflow: str = "drop_oldest",
        unhealthy_seconds: float = 300.0,
        service: str = "local",
        emf_seconds: float = 0.0,
        emf_write: Callable[[str], None] | None = None,
    ) -> None:
        if overflow not in OVERFLOW_POLICIES:
            raise ValueError(f"capture spool overflow policy {overflow!r}: allowed {list(OVERFLOW_POLICIES)}")
        self.sink, self.spool = sink, spool
        self.flush_records, self.flush_seconds = flush_records, flush_seconds
        self.retry_initial, self.retry_max = retry_initial, retry_max
        self.queue_size = queue_size
        self.poll_seconds = min(poll_seconds, flush_seconds)
        self.spool_max_bytes, self.overflow = spool_max_bytes, overflow
        self.unhealthy_seconds = unhealthy_seconds
        self.service, self.emf_seconds = service, emf_seconds
        self._emf_write = emf_write or _stdout_line
        # Submissions fill the open batch; a full one is sealed for the spooler. Nobody is woken per request:
        # waking a thread on every request made the threads trade the GIL per request, which halved throughput.
        self._batch_lock = threading.Lock()  # guards the open and sealed batches and ``_queued``
        self._open: _Batch | None = None
        self._sealed: collections.deque[_Batch] = collections.deque()
        self._queued = 0  # records in the open and sealed batches
        self._spooling = 0  # records the spooler took and has not written yet
        self._wake = threading.Event()  # spooler: a full batch is sealed, or stop
        self._arrived = threading.Event()  # deliverer: a new entry, or stop
        self._stop = threading.Event()
        self._stopping = False
        self._lock = threading.Lock()  # guards the entries and the counters below
        self._entries: collections.deque[_Entry] = collections.deque()
        self._inflight: _Entry | None = None
        self._held = 0  # records the entries keep in memory
        self._entry_records = 0
        self._spooler = threading.Thread(target=self._spool_loop, name=f"capture-{sink.name}-spool", daemon=True)
        self._deliverer = threading.Thread(target=self._deliver_loop, name=f"capture-{sink.name}", daemon=True)
        self._backoff = retry_initial
        self._failing_since = 0.0  # monotonic; 0 = the last sink write succeeded
        self._disk_retry_at = 0.0
        self._disk_backoff = retry_initial
        self._disk_failing_since = 0.0
        self._throttled = _Throttled()
        self._last_gauges = 0.0
        self._last_emf = time.monotonic()
        self._emf_sent = {"quarantined": 0, "dropped": 0, "spool_errors": 0}
        self.delivered = 0
        self.spooled = 0
        self.replayed = 0
        self.quarantined = 0
        self.dropped = 0
        self.spool_errors = 0
        self.unsaved = 0
        self._load_existing()

    # -- request path --------------------------------------------------------------------------------------

    def submit(self, records: list[dict[str, Any]], encoded: Encoded | None = None) -> None:
        """Hand records over; on the request path. ``encoded``: ``spool.encode(records)``, made once by
        ``CaptureWriter`` for all its sinks.

        The encoding happens here, not on the capture threads: those share the GIL with the event loop, and
        the loop waited for it, for milliseconds when the thread holding it was preempted on busy cores
        (docs/bench-serving.md, session 9). Here it costs about a microsecond a record, spread over the turns
        that answer them. Only the lines are kept (``_Batch`` says why).
        """
        lines, good, bad = encoded if encoded is not None else encode(records)
        count = len(good)
        if not count and not bad:
            return
        with self._batch_lock:
            batch = self._open
            if batch is not None and batch.count and batch.count + count > self.flush_records:
                self._sealed.append(batch)  # cut between submissions, so each keeps its lines
                batch = None
            if batch is None:
                batch = self._open = _Batch([], 0, [], time.time(), time.monotonic())
            batch.chunks.append(lines)
            batch.count += count
            if bad:
                batch.bad += bad
            full = batch.count >= self.flush_records
            if full:
                self._sealed.append(batch)
                self._open = None
            self._queued += count
            late = None
            if self._queued > self.queue_size:  # the spooler lags far behind (a disk that hangs): write the
                if self._sealed:  # oldest batch here rather than grow memory without bound
                    late = self._sealed.popleft()
                else:
                    late, self._open = batch, None
                self._queued -= late.count
        if late is not None:
            self._spool_batch(late)
        if full:  # no need to wait for the poll
            self._wake.set()

    # -- lifecycle -----------------------------------------------------------------------------------------

    def start(self) -> None:
        self._publish(force=True)
        self._spooler.start()
        self._deliverer.start()

    def stop(self) -> None:
        """Ask both threads to finish: the spooler writes what is queued, the deliverer tries once more."""
        self._stopping = True
        self._stop.set()
        self._wake.set()
        self._arrived.set()

    def join(self, deadline: float) -> int:
        """Wait for the threads until ``deadline`` (monotonic); returns how many records were not saved."""
        for thread in (self._spooler, self._deliverer):
            if thread.is_alive():
                thread.join(max(0.0, deadline - time.monotonic()))
        unsaved = 0
        if self._spooler.is_alive():  # stuck on a hung disk: its batch exists only in memory
            unsaved += self._spooling
        self._spool_taken(self._take(everything=True))  # never started, or stuck
        with self._lock:
            unsaved += sum(e.count for e in self._entries if e.path is None)
        self.unsaved = unsaved
        self._publish(force=True)
        return unsaved

    def close(self, timeout: float = 20.0) -> int:
        """Flush everything queued: delivered, or left in the spool. Returns the records not saved anywhere."""
        self.stop()
        return self.join(time.monotonic() + timeout)

    def _take(self, everything: bool = False) -> list[_Batch]:
        """The sealed batches, and the open one when it is due (or ``everything``); a few steps whatever the
        batches hold."""
        with self._batch_lock:
            taken = list(self._sealed)
            self._sealed.clear()
            batch = self._open
            if batch is not None and (everything or time.monotonic() - batch.opened >= self.flush_seconds):
                taken.append(batch)
                self._open = None
            count = sum(batch.count for batch in taken)
            self._queued -= count
            self._spooling += count
        return taken

    # -- spooler thread ------------------------------------------------------------------------------------

    def _spool_loop(self) -> None:
        while True:
            try:
                self._wake.wait(self.poll_seconds)
                self._wake.clear()
                stopping = self._stopping
                taken = self._take(everything=stopping)
                self._spool_taken(taken)
                if not taken and self._disk_failing_since and time.monotonic() >= self._disk_retry_at:
                    self._persist_memory_only()
                self._publish()
                if stopping and not self._queued:
                    return
            except Exception:  # a bug must not end capture: log it, go round again
                log.exception("capture %s spooler: unexpected error; continuing", self.sink.name)
                time.sleep(self.poll_seconds)

    def _spool_taken(self, taken: list[_Batch]) -> None:
        """Spool the batches taken; an unexpected error puts those not spooled yet back first in line."""
        for index, batch in enumerate(taken):
            try:
                self._spool_batch(batch)
            except Exception:
                left = taken[index:]
                with self._batch_lock:
                    self._sealed.extendleft(reversed(left))
                    back = sum(waiting.count for waiting in left)
                    self._queued += back
                    self._spooling -= back
                raise
            with self._batch_lock:
                self._spooling -= batch.count

    def _spool_batch(self, batch: _Batch) -> None:
        """Write-ahead one batch (cut by lines if one submission made it larger than ``flush_records``)."""
        if batch.bad:
            self._quarantine_records([record for record, _ in batch.bad], batch.bad[0][1], "spool")
        if not batch.count:
            return
        data = batch.chunks[0] if len(batch.chunks) == 1 else b"".join(batch.chunks)
        if batch.count <= self.flush_records:
            self._spool_lines(data, batch.count, batch.since)
            return
        lines = data.splitlines(keepends=True)
        for start in range(0, len(lines), self.flush_records):
            part = lines[start : start + self.flush_records]
            self._spool_lines(b"".join(part), len(part), batch.since)

    def _spool_lines(self, data: bytes, count: int, since: float) -> None:
        """Write-ahead ``count`` records' lines; on a disk failure keep them in memory (bounded) for direct
        delivery."""
        if self.spool_max_bytes and not self._make_room(len(data), count):
            return
        path: Path | None = None
        if not self._disk_failing_since or time.monotonic() >= self._disk_retry_at:
            path = self._write_segment(data, count)
        with self._lock:
            keep = path is None or self._held + count <= self.queue_size
            entry = _Entry(path, SpooledRecords(data, count) if keep else None, count, len(data), since)
            if keep:
                self._held += entry.count
            self._entries.append(entry)
            self._entry_records += entry.count
        if path is not None:
            self.spooled += entry.count
            metrics.CAPTURE_RECORDS.labels(self.sink.name, "spooled").inc(entry.count)
        else:
            self._cap_memory_only()
        self._arrived.set()

    def _write_segment(self, data: bytes, count: int) -> Path | None:
        try:
            path = self.spool.write(data, count)
        except OSError as exc:
            now = time.monotonic()
            if not self._disk_failing_since:
                self._disk_failing_since = now
            self.spool_errors += 1
            metrics.CAPTURE_SPOOL_ERRORS.labels(self.sink.name).inc()
            self._disk_retry_at = now + self._disk_backoff
            full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
            self._throttled(
                f"disk-{self.sink.name}",
                logging.ERROR,
                "capture %s: spool write failed (%s%s); batches wait in memory (up to %d records), disk retried in "
                "%.1fs",
                self.sink.name,
                "disk full: " if full else "",
                exc,
                self.queue_size,
                self._disk_backoff,
            )
            self._disk_backoff = min(self._disk_backoff * 2, self.retry_max)
            return None
        if self._disk_failing_since:
            failed_for = time.monotonic() - self._disk_failing_since
            log.warning("capture %s: spool writable again after %.1fs", self.sink.name, failed_for)
        self._disk_failing_since = 0.0
        self._disk_backoff = self.retry_initial
        return path

    def _persist_memory_only(self) -> None:
        """Once the disk takes writes again, batches held only in memory go to the spool (not the one in flight)."""
        with self._lock:
            pending = [e for e in self._entries if e.path is None and e is not self._inflight]
        for entry in pending:
            if entry.records is None:
                continue
            data = entry.records.lines
            path = self._write_segment(data, entry.count)
            if path is None:
                return
            with self._lock:
                if entry in self._entries and entry is not self._inflight:
                    entry.path = path
                    self.spooled += entry.count
                    metrics.CAPTURE_RECORDS.labels(self.sink.name, "spooled").inc(entry.count)
                    continue
            self.spool.remove(path, len(data))  # delivered meanwhile

    def _cap_memory_only(self) -> None:
        """Memory-only batches (disk failing) are bounded by ``queue_size`` records: the oldest are dropped."""
        dropped = 0
        with self._lock:
            memory = sum(e.count for e in self._entries if e.path is None)
            while memory > self.queue_size:
                victim = next((e for e in self._entries if e.path is None and e is not self._inflight), None)
                if victim is None:
                    break
                self._entries.remove(victim)
                self._forget(victim)
                memory -= victim.count
                dropped += victim.count
        if dropped:
            self._count_dropped(dropped, "memory", "spool not writable and the in-memory bound is reached")

    def _make_room(self, nbytes: int, count: int) -> bool:
        """Apply the spool size cap; False when the new batch itself is dropped (``drop_newest``)."""
        limit = self.spool_max_bytes
        if self.spool.bytes + nbytes <= limit:
            return True
        if self.overflow == "drop_newest" or nbytes > limit:
            why = f"spool full ({self.spool.bytes} of {limit} bytes), policy {self.overflow}"
            self._count_dropped(count, "overflow", why)
            return False
        dropped = 0
        while self.spool.bytes + nbytes > limit:
            with self._lock:
                victim = next((e for e in self._entries if e.path is not None and e is not self._inflight), None)
                if victim is None:
                    break
                self._entries.remove(victim)
                self._forget(victim)
            assert victim.path is not None
            self.spool.remove(victim.path, victim.nbytes)
            dropped += victim.count
        if dropped:
            self._count_dropped(dropped, "overflow", f"spool full ({limit} bytes), policy drop_oldest")
        return self.spool.bytes + nbytes <= limit

    def _forget(self, entry: _Entry) -> None:
        """Bookkeeping for an entry leaving the deque (caller holds the lock)."""
        self._entry_records -= entry.count
        if entry.records is not None:
            self._held -= entry.count

    def _count_dropped(self, count: int, reason: str, why: str) -> None:
        self.dropped += count
        metrics.CAPTURE_DROPPED.labels(self.sink.name, reason).inc(count)
        self._throttled(
            f"drop-{self.sink.name}-{reason}",
            logging.ERROR,
            "capture %s: %d records DROPPED: %s",
            self.sink.name,
            count,
            why,
        )

    # -- deliverer thread ----------------------------------------------------------------------------------

    def _load_existing(self) -> None:
        """Segments left by a predecessor on this slot go first, oldest first, read when their turn comes."""
        for segment in self.spool.segments():
            try:
                size = segment.stat().st_size
            except OSError:
                size = 0
            entry = _Entry(segment, None, max(1, segment_records(segment)), size, segment_time(segment))
            self._entries.append(entry)
            self._entry_records += entry.count

    def _deliver_loop(self) -> None:
        while True:
            try:
                with self._lock:
                    entry = self._entries[0] if self._entries else None
                    self._inflight = entry
                if entry is None:
                    if self._stopping and not self._spooler.is_alive():
                        return
                    self._arrived.wait(self.poll_seconds)
                    self._arrived.clear()
                    continue
                if self._deliver_entry(entry):
                    with self._lock:
                        if self._entries and self._entries[0] is entry:
                            self._entries.popleft()
                            self._forget(entry)
                        self._inflight = None
                    if entry.path is not None:
                        self.spool.remove(entry.path, entry.nbytes)
                    continue
                if self._stopping:
                    return  # the sink is down at shutdown: what is left stays in the spool for the next start
                self._stop.wait(self._retry_wait)
            except Exception:  # a bug must not end capture: log it, back off, go round again
                log.exception("capture %s deliverer: unexpected error; continuing", self.sink.name)
                self._stop.wait(self.retry_max)
                if self._stopping:
                    return

    def _deliver_entry(self, entry: _Entry) -> bool:
        """True when the batch is done with (delivered or quarantined), False when the sink failed."""
        records: Sequence[dict[str, Any]] | None = entry.records
        replay = records is None
        # the batch's JSON lines as spooled, or (below) a replayed segment's bytes when every line is a record
        lines = entry.records.lines if entry.records is not None else None
        if records is None:
            assert entry.path is not None
            try:
                lines, records, bad = self.spool.read_segment(entry.path)
            except FileNotFoundError:
                return True  # dropped by the overflow policy meanwhile
            except OSError as exc:
                return self._quarantine_unreadable(entry, exc)
            if bad:
                self._quarantine_lines(entry.path.name, bad, "not a capture record (corrupt or truncated segment)")
        if not records:
            return True
        done = self._send(records, lines)
        if done and replay:
            self.replayed += len(records)
            metrics.CAPTURE_RECORDS.labels(self.sink.name, "replayed").inc(len(records))
        return done

    def _send(self, records: Sequence[dict[str, Any]], lines: bytes | None = None) -> bool:
        """Write; on a permanent rejection split the batch so only the bad records are set aside.

        ``lines``: the records as JSON lines, already encoded (the spooled batch, or a replayed segment); a sink
        that stores JSON lines (``write_lines``) sends them as they are instead of encoding every record again.
        """
        write_lines = getattr(self.sink, "write_lines", None) if lines is not None else None
        try:
            if write_lines is not None:
                write_lines(records, lines)
            else:
                self.sink.write(records.decoded() if isinstance(records, SpooledRecords) else records)
        except Exception as exc:
            permanent = getattr(self.sink, "permanent", default_permanent)
            if not permanent(exc):
                self._sink_failed(exc)
                return False
            if len(records) == 1:
                self._quarantine_records(list(records), f"{type(exc).__name__}: {exc}", "sink")
                return True
            middle = len(records) // 2
            return self._send(records[:middle]) and self._send(records[middle:])
        if self._failing_since:
            log.warning("capture sink %s is back after %.1fs", self.sink.name, time.monotonic() - self._failing_since)
        self._failing_since = 0.0
        self._backoff = self.retry_initial
        self.delivered += len(records)
        metrics.CAPTURE_RECORDS.labels(self.sink.name, "delivered").inc(len(records))
        return True

    def _sink_failed(self, exc: BaseException) -> None:
        if not self._failing_since:
            self._failing_since = time.monotonic()
        metrics.CAPTURE_FAILURES.labels(self.sink.name).inc()
        self._retry_wait = self._backoff
        self._throttled(
            f"sink-{self.sink.name}",
            logging.WARNING,
            "capture sink %s failed (%s: %s); records stay in the spool, retry in %.1fs",
            self.sink.name,
            type(exc).__name__,
            exc,
            self._backoff,
        )
        self._backoff = min(self._backoff * 2, self.retry_max)

    _retry_wait = 0.5

    # -- quarantine ----------------------------------------------------------------------------------------

    def _quarantine_records(self, records: list[dict[str, Any]], reason: str, where: str) -> None:
        lines = []
        for record in records:
            try:
                lines.append(json.dumps(record, default=repr).encode())
            except (TypeError, ValueError):
                lines.append(repr(record).encode())
        uid = records[0].get("uid") if records and isinstance(records[0], dict) else None
        self._quarantine_lines(f"{where}-{uid}", lines, reason)

    def _quarantine_lines(self, source: str, lines: list[bytes], reason: str) -> None:
        count = len(lines)
        try:
            target: Any = self.spool.quarantine_lines(source, lines, reason)
        except OSError as exc:
            target = f"nowhere ({exc}); they are lost"
            self._count_dropped(count, "quarantine", f"quarantine not writable: {exc}")
        self.quarantined += count
        metrics.CAPTURE_QUARANTINED.labels(self.sink.name).inc(count)
        self._throttled(
            f"quarantine-{self.sink.name}",
            logging.ERROR,
            "capture %s: %d records QUARANTINED (%s) to %s; the records behind them keep flowing",
            self.sink.name,
            count,
            reason,
            target,
        )

    def _quarantine_unreadable(self, entry: _Entry, exc: OSError) -> bool:
        assert entry.path is not None
        try:
            target: Any = self.spool.quarantine_segment(entry.path)
        except OSError as move_error:
            if not self._stopping:
                self._throttled(
                    f"unreadable-{self.sink.name}",
                    logging.ERROR,
                    "capture %s: spooled segment %s unreadable (%s) and cannot be moved aside (%s); retrying",
                    self.sink.name,
                    entry.path,
                    exc,
                    move_error,
                )
            return False
        self.quarantined += entry.count
        metrics.CAPTURE_QUARANTINED.labels(self.sink.name).inc(entry.count)
        log.error(
            "capture %s: spooled segment unreadable (%s), ~%d records QUARANTINED to %s; the rest keep flowing",
            self.sink.name,
            exc,
            entry.count,
            target,
        )
        return True

    # -- health --------------------------------------------------------------------------------------------

    @property
    def spool_pending(self) -> bool:
        return self.spool.segment_count > 0

    def backlog(self) -> int:
        """Records not yet confirmed by the sink: queued, being batched, and waiting in the spool or memory."""
        return self._queued + self._spooling + self._entry_records

    def oldest_unsent_age(self, now: float | None = None) -> float:
        now = time.time() if now is None else now
        with self._batch_lock:
            oldest = self._sealed[0] if self._sealed else self._open
            times = [oldest.since] if oldest is not None else []
        with self._lock:
            if self._entries:
                times.append(self._entries[0].created)
        return max(0.0, now - min(times)) if times else 0.0

    def unhealthy_reason(self) -> str | None:
        """Why this sink's capture counts as failing, once that has lasted ``unhealthy_seconds``; else None."""
        age = self.oldest_unsent_age()
        if age > self.unhealthy_seconds:
            return f"{self.sink.name}: oldest unsent record is {age:.0f}s old (limit {self.unhealthy_seconds:.0f}s)"
        if self._disk_failing_since and time.monotonic() - self._disk_failing_since > self.unhealthy_seconds:
            return f"{self.sink.name}: spool not writable for {time.monotonic() - self._disk_failing_since:.0f}s"
        return None

    def _publish(self, force: bool = False) -> None:
        """Refresh the gauges (about once a second) and write the EMF line (every ``emf_seconds``)."""
        now = time.monotonic()
        if not force and now - self._last_gauges < _GAUGE_SECONDS:
            return
        self._last_gauges = now
        name = self.sink.name
        backlog, age = self.backlog(), self.oldest_unsent_age()
        unhealthy = self.unhealthy_reason() is not None
        metrics.SPOOL_SEGMENTS.labels(name).set(self.spool.segment_count)
        metrics.SPOOL_BYTES.labels(name).set(self.spool.bytes)
        metrics.CAPTURE_BACKLOG.labels(name).set(backlog)
        metrics.CAPTURE_OLDEST_UNSENT.labels(name).set(age)
        metrics.CAPTURE_UNHEALTHY.labels(name).set(1 if unhealthy else 0)
        if self.emf_seconds and now - self._last_emf >= self.emf_seconds:
            self._last_emf = now
            counts = {"quarantined": self.quarantined, "dropped": self.dropped, "spool_errors": self.spool_errors}
            delta = {k: v - self._emf_sent[k] for k, v in counts.items()}
            self._emf_sent = counts
            self._emf_write(emf_line(self.service, name, backlog=backlog, age=age, delta=delta, unhealthy=unhealthy))


def emf_line(service: str, sink: str, *, backlog: int, age: float, delta: dict[str, int], unhealthy: bool) -> str:
    """One CloudWatch embedded-metric-format record: JSON with an ``_aws`` block naming the metrics."""
    values = {
        contract.BACKLOG: backlog,
        contract.OLDEST_UNSENT: round(age, 3),
        contract.QUARANTINED: delta["quarantined"],
        contract.DROPPED: delta["dropped"],
        contract.SPOOL_WRITE_ERRORS: delta["spool_errors"],
        contract.UNHEALTHY: 1 if unhealthy else 0,
    }
    units = {contract.OLDEST_UNSENT: "Seconds"}
    document = {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": contract.EMF_NAMESPACE,
                    "Dimensions": [list(contract.DIMENSIONS)],
                    "Metrics": [{"Name": k, "Unit": units.get(k, "Count")} for k in values],
                }
            ],
        },
        "Service": service,
        "Sink": sink,
        **values,
    }
    return json.dumps(document, separators=(",", ":"))


_stdout_lock = threading.Lock()


def _stdout_line(line: str) -> None:
    """EMF lines go to stdout alone on their line (not through the log formatter, whose prefix breaks JSON)."""
    with _stdout_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class CaptureWriter:
    """Fans each prediction's records out to every sink worker; switched off by runtime settings."""

    def __init__(self, workers: Sequence[SinkWorker]) -> None:
        self.workers = list(workers)
        self.enabled = True

    def submit(self, records: list[dict[str, Any]]) -> None:
        if not self.enabled:
            return
        encoded = encode(records)  # once for every sink, on the request path (SinkWorker.submit says why)
        for worker in self.workers:
            worker.submit(records, encoded)

    def start(self) -> None:
        for worker in self.workers:
            worker.start()

    def unhealthy_reasons(self) -> list[str]:
        return [reason for worker in self.workers if (reason := worker.unhealthy_reason()) is not None]

    def close(self, timeout: float = 20.0) -> int:
        """Stop every sink at once and wait for all of them, whatever one of them does.

        Returns the number of records that could not be saved (neither delivered nor spooled); the caller
        turns a non-zero count into a non-zero exit. One sink failing to close never skips another.
        """
        for worker in self.workers:
            worker.stop()
        deadline = time.monotonic() + timeout
        unsaved = 0
        for worker in self.workers:
            try:
                lost = worker.join(deadline)
            except Exception:
                log.exception("capture %s: flush at shutdown failed", worker.sink.name)
                lost = worker.backlog() - worker.spool.pending_records() if worker.spool else 0
                lost = max(lost, 1)
            if lost:
                log.error("capture %s: %d records could not be saved at shutdown", worker.sink.name, lost)
            unsaved += lost
            close = getattr(worker.sink, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    log.exception("capture %s: closing the sink failed", worker.sink.name)
        return unsaved
