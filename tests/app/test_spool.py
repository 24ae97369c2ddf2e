"""The spool and the sink worker: a record leaves the spool only after the sink confirmed it."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import pytest

from app.capture import SinkWorker, Spool, claim_slot
from tests.support.servers import wait_until


class FlakySink:
    """Fails while ``down`` is set; remembers what it stored (by uid, like the real sinks)."""

    name = "flaky"

    def __init__(self) -> None:
        self.down = threading.Event()
        self.stored: list[str] = []
        self.calls = 0

    def write(self, records) -> None:
        self.calls += 1
        if self.down.is_set():
            raise ConnectionError("sink is down")
        self.stored.extend(r["uid"] for r in records)


def _records(start: int, count: int) -> list[dict]:
    return [{"uid": f"{i:032x}", "time": "2026-01-01T00:00:00+00:00"} for i in range(start, start + count)]


def test_spool_segments_are_whole_and_ordered(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append(_records(0, 3))
    spool.append(_records(3, 2))
    (tmp_path / ".tmp-crashed.jsonl").write_text('{"uid": "half')  # a crash mid-append
    again = Spool(tmp_path)
    assert not list(tmp_path.glob(".tmp-*"))
    assert [[r["uid"] for r in again.read(s)] for s in again.segments()] == [
        [f"{i:032x}" for i in range(3)],
        [f"{i:032x}" for i in range(3, 5)],
    ]
    assert again.segment_count == 2 and again.pending_records() == 5


def test_worker_spools_while_down_and_replays_in_order_exactly_once(tmp_path: Path) -> None:
    sink = FlakySink()
    worker = SinkWorker(sink, Spool(tmp_path), flush_records=10, flush_seconds=0.05, retry_initial=0.05, retry_max=0.1)
    worker.start()
    worker.submit(_records(0, 10))
    wait_until(lambda: len(sink.stored) == 10, 10, "first batch")
    sink.down.set()
    for start in range(10, 60, 5):
        worker.submit(_records(start, 5))
    # Write-ahead: every batch is spooled first, the first 10 included; those were confirmed and removed.
    wait_until(lambda: worker.spooled == 60, 10, "spooled while down")
    assert worker.spool.pending_records() == 50
    sink.down.clear()
    worker.submit(_records(60, 5))
    wait_until(lambda: len(sink.stored) == 65, 10, "replayed")
    worker.close()
    assert sink.stored == [f"{i:032x}" for i in range(65)]  # order kept, nothing twice
    assert worker.spool.segments() == []


def test_close_spools_what_a_dead_sink_cannot_take(tmp_path: Path) -> None:
    sink = FlakySink()
    sink.down.set()
    worker = SinkWorker(sink, Spool(tmp_path), flush_records=1000, flush_seconds=3600, retry_initial=60, retry_max=60)
    worker.start()
    worker.submit(_records(0, 7))
    worker.close()
    assert Spool(tmp_path).pending_records() == 7


def test_full_queue_spills_to_the_spool_instead_of_dropping(tmp_path: Path) -> None:
    sink = FlakySink()
    worker = SinkWorker(sink, Spool(tmp_path), queue_size=10, flush_seconds=3600)
    for start in range(0, 100, 5):  # thread not started: beyond 10 queued records, submit spools them itself
        worker.submit(_records(start, 5))
        assert worker.backlog() - worker.spooled <= 10  # what waits for the spooler, in memory
    assert worker.spooled >= 90 and worker.backlog() == 100
    worker.start()
    worker.close()
    assert sorted(sink.stored) == [f"{i:032x}" for i in range(100)]


def test_slots_are_exclusive_and_reusable(tmp_path: Path) -> None:
    first, second = claim_slot(tmp_path), claim_slot(tmp_path)
    assert (first.name, second.name) == ("slot-0", "slot-1")
    first.release()
    assert claim_slot(tmp_path).name == "slot-0"


def test_an_unexpected_error_while_spooling_puts_the_batches_back_in_line(tmp_path: Path, caplog) -> None:
    """A bug on the spooler thread is logged and the batches it had taken are spooled on its next round."""
    sink = FlakySink()
    worker = SinkWorker(sink, Spool(tmp_path), flush_records=5, flush_seconds=0.05, poll_seconds=0.01)
    spool_lines = worker._spool_lines
    failures = []

    def fails_once(data: bytes, count: int, since: float) -> None:
        if not failures:
            failures.append(count)
            raise RuntimeError("a bug")
        spool_lines(data, count, since)

    worker._spool_lines = fails_once  # type: ignore[method-assign]
    for start in range(0, 20, 5):
        worker.submit(_records(start, 5))
    worker.start()
    wait_until(lambda: len(sink.stored) == 20, 10, "every record delivered after the error")
    worker.close()
    assert failures == [5] and "spooler: unexpected error" in caplog.text
    assert sorted(sink.stored) == [f"{i:032x}" for i in range(20)] and worker.backlog() == 0


def test_a_failed_segment_write_leaves_no_file_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.capture import spool as spool_module

    spool = Spool(tmp_path)

    def disk_full(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(spool_module.os, "write", disk_full)
    with pytest.raises(OSError, match="No space left"):
        spool.write(b'{"uid":"a"}\n', 1)
    assert list(tmp_path.iterdir()) == [] and (spool.segment_count, spool.bytes) == (0, 0)


def test_short_writes_still_make_a_whole_segment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.capture import spool as spool_module

    real_write = os.write
    monkeypatch.setattr(spool_module.os, "write", lambda fd, data: real_write(fd, bytes(data)[:7]))
    spool = Spool(tmp_path)
    data = b"".join(b'{"uid":"%032x"}\n' % i for i in range(5))
    segment = spool.write(data, 5)
    assert segment.read_bytes() == data and [r["uid"] for r in spool.read(segment)] == [f"{i:032x}" for i in range(5)]
