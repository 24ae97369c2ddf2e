"""Capture records are encoded once, where they are made, and sinks that store JSON lines get those bytes.

Why (docs/bench-serving.md, session 9): the capture threads share the GIL with the event loop. Python work
on them makes the loop wait for the GIL, and the wait grows to milliseconds when the holder is preempted on
busy cores. So the JSON lines are made on the request path, once for every sink, and spool batches are cut
between submissions so that each batch keeps them.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from app.capture import SinkWorker, Spool, capture_records
from app.capture.spool import decode
from app.core import new_uids
from tests.support.servers import wait_until

FAST = {"flush_records": 50, "flush_seconds": 0.05, "retry_initial": 0.05, "poll_seconds": 0.01}


def _records(count: int) -> list[dict]:
    return capture_records(
        uids=new_uids(count),
        inputs=[{"tenure_months": i, "contract": "monthly"} for i in range(count)],
        outputs=[{"label": "yes", "probability": 0.75, "prediction": 1} for _ in range(count)],
        time="2026-12-02T01:02:03.456789+00:00",
        service="stage",
        model_name="churn",
        model_version=3,
        latency_ms=1.5,
    )


def _deliver(worker: SinkWorker, batches: list[list[dict]]) -> None:
    worker.start()
    for batch in batches:
        worker.submit(batch)
    total = sum(len(b) for b in batches)
    wait_until(lambda: worker.delivered + worker.quarantined >= total, 30, f"{total} records delivered")
    worker.close()


class LinesSink:
    """A sink that stores JSON lines (as ``S3Sink`` does): records how each batch reached it."""

    name = "lines"

    def __init__(self) -> None:
        self.ways: list[str] = []
        self.bodies: list[bytes] = []

    def write(self, records) -> None:
        self.ways.append("records")

    def write_lines(self, records, lines: bytes) -> None:
        self.ways.append("lines")
        self.bodies.append(lines)

    def stored(self) -> list[str]:
        return [record["uid"] for body in self.bodies for record in decode(body)[0]]


def test_a_batch_is_cut_between_submissions_so_each_keeps_its_lines(tmp_path: Path) -> None:
    from app.capture import spool

    sink = LinesSink()
    worker = SinkWorker(sink, Spool(tmp_path / "s"), flush_records=50, flush_seconds=0.3, poll_seconds=0.2)
    batches = [_records(20) for _ in range(6)]  # 120 records: batches of 40 (two submissions), never cut inside
    _deliver(worker, batches)
    assert sink.ways == ["lines"] * 3
    pairs = [batches[i] + batches[i + 1] for i in range(0, 6, 2)]
    assert sink.bodies == [b"".join(spool.dumps(r) + b"\n" for r in pair) for pair in pairs]


def test_records_are_encoded_once_on_the_submitting_thread_and_sent_as_the_spools_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two sinks, one encoding: the JSON lines the spool writes are made on the request path, once for every
    sink, and a sink that stores JSON lines gets those bytes live, not an encoding of its own."""
    from app.capture import CaptureWriter, spool

    calls: list[str] = []
    dumps = spool.dumps

    def spy(value: object) -> bytes:
        calls.append(threading.current_thread().name)
        return dumps(value)

    monkeypatch.setattr(spool, "dumps", spy)
    first, second = LinesSink(), LinesSink()
    second.name = "lines-2"
    workers = [SinkWorker(first, Spool(tmp_path / "a"), **FAST), SinkWorker(second, Spool(tmp_path / "b"), **FAST)]
    writer = CaptureWriter(workers)
    writer.start()
    records = _records(30)
    writer.submit(records)
    wait_until(lambda: all(w.delivered == 30 for w in workers), 30, "both sinks delivered")
    writer.close()
    assert calls == [threading.current_thread().name] * 30, "each record encoded once, on the submitting thread"
    expected = b"".join(dumps(r) + b"\n" for r in records)
    for sink in (first, second):
        assert sink.ways == ["lines"] and sink.bodies == [expected]


def test_a_submission_beyond_one_batch_is_cut_and_its_unencodable_record_set_aside(tmp_path: Path) -> None:
    sink = LinesSink()
    worker = SinkWorker(sink, Spool(tmp_path / "s"), flush_records=10, flush_seconds=0.05, poll_seconds=0.01)
    records = _records(25)
    records[3]["input"]["basket"] = {"a set cannot be JSON"}
    _deliver(worker, [records])
    assert worker.quarantined == 1 and "basket" in next((tmp_path / "s-quarantine").iterdir()).read_text()
    assert sink.stored() == [r["uid"] for i, r in enumerate(records) if i != 3]
    assert sink.ways == ["lines"] * 3, "cut into batches of at most 10, by lines"
