"""Records handed to capture are held as their JSON lines from the moment they are submitted, not as dicts.

Why (docs/bench-serving.md, sessions 10 and 11): held records are dicts that live long enough to reach the
cyclic GC's older generations, and while a sink lagged behind under load their collections walked tens of
thousands of them on the event loop (pauses up to 72 ms). And whoever drops the last reference to a batch of
dicts frees them, holding the GIL: on the spooler thread that was a millisecond a batch of 1,000, during
which the event loop waited. The bytes are one object the GC never walks and that is freed at once; the sink
gets them as they are, and records are decoded only where one is needed.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from app.capture import SinkWorker, Spool, capture_records
from app.capture.spool import SpooledRecords, decode
from app.core import new_uids
from tests.support.servers import wait_until

FAST = {"flush_records": 20, "flush_seconds": 0.05, "retry_initial": 0.05, "poll_seconds": 0.01}


class GatedLinesSink:
    """Takes JSON lines; holds every write until the gate opens (a sink that lags behind)."""

    name = "gated"

    def __init__(self, refuse_uid: str | None = None) -> None:
        self.gate = threading.Event()
        self.stored: list[bytes] = []
        self.first_uids: list[str] = []
        self.refuse_uid = refuse_uid

    def write_lines(self, records: Sequence[dict[str, Any]], lines: bytes) -> None:
        self.gate.wait(30)
        if self.refuse_uid is not None and self.refuse_uid.encode() in lines:
            raise ValueError(f"refused {self.refuse_uid}")
        self.first_uids.append(records[0]["uid"])
        self.stored.append(lines)

    def write(self, records: Sequence[dict[str, Any]]) -> None:
        if any(r["uid"] == self.refuse_uid for r in records):
            raise ValueError(f"refused {self.refuse_uid}")
        self.stored.append(b"".join(b'{"uid":"%s"}\n' % r["uid"].encode() for r in records))

    def uids(self) -> list[str]:
        return [record["uid"] for lines in self.stored for record in decode(lines)[0]]


class GatedRecordsSink:
    """Takes records only (no ``write_lines``); holds every write until the gate opens."""

    name = "records"

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.stored: list[dict[str, Any]] = []

    def write(self, records: Sequence[dict[str, Any]]) -> None:
        self.gate.wait(30)
        self.stored += records

    def uids(self) -> list[str]:
        return [record["uid"] for record in self.stored]


def _submit(worker: SinkWorker, count: int) -> set[str]:
    """Submit ``count`` records in batches of 20 and keep no reference to them here."""
    uids = new_uids(count)
    for start in range(0, count, 20):
        part = uids[start : start + 20]
        worker.submit(
            capture_records(
                uids=part,
                inputs=[{"tenure_months": 1} for _ in part],
                outputs=[{"label": 1, "probability": 0.5, "prediction": 1} for _ in part],
                time="2026-12-02T04:00:00.000001+00:00",
                service="stage",
                model_name="churn",
                model_version=3,
                latency_ms=1.0,
            )
        )
    return set(uids)


def _live_record_dicts(uids: set[str]) -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o) is dict and isinstance(o.get("uid"), str) and o["uid"] in uids)


@pytest.mark.parametrize("takes", ["lines", "records"])
def test_batches_waiting_for_a_lagging_sink_hold_no_record_dicts(tmp_path: Path, takes: str) -> None:
    """A sink that takes JSON lines gets the held bytes; one without ``write_lines`` gets its records decoded
    from them when its turn comes, so at most the batch it is holding exists as dicts."""
    sink: GatedLinesSink | GatedRecordsSink = GatedLinesSink() if takes == "lines" else GatedRecordsSink()
    worker = SinkWorker(sink, Spool(tmp_path / sink.name), **FAST)
    worker.start()
    uids = _submit(worker, 200)
    wait_until(lambda: worker.spooled == 200, 10, "every batch spooled while the sink holds the first one")
    assert worker.delivered == 0
    assert _live_record_dicts(uids) <= (0 if takes == "lines" else FAST["flush_records"])
    sink.gate.set()
    wait_until(lambda: worker.delivered == 200, 10, "every batch delivered once the sink moves")
    worker.close()
    assert sorted(sink.uids()) == sorted(uids)
    if isinstance(sink, GatedLinesSink):
        assert len(sink.first_uids) == len(sink.stored)  # the first record (S3's key) read from the bytes
    else:
        assert sink.stored[0]["output"] == {"label": 1, "probability": 0.5, "prediction": 1}


def test_a_refused_record_in_held_bytes_is_found_and_only_it_set_aside(tmp_path: Path) -> None:
    sink = GatedLinesSink()
    worker = SinkWorker(sink, Spool(tmp_path / "gated"), **FAST)
    worker.start()
    uids = _submit(worker, 60)
    sink.refuse_uid = sorted(uids)[37]
    wait_until(lambda: worker.spooled == 60, 10, "every batch spooled")
    sink.gate.set()
    wait_until(lambda: worker.delivered + worker.quarantined == 60, 10, "every record delivered or set aside")
    worker.close()
    assert (worker.delivered, worker.quarantined) == (59, 1)
    assert sink.refuse_uid in next((tmp_path / "gated-quarantine").iterdir()).read_text()


def test_spooled_records_decode_only_what_is_asked() -> None:
    records = [{"uid": f"u{i}", "x": i} for i in range(3)]
    held = SpooledRecords(b"".join(b'{"uid":"u%d","x":%d}\n' % (i, i) for i in range(3)), 3)
    assert len(held) == 3 and held[0] == records[0]
    assert held._decoded is None  # the first record alone did not decode the batch
    assert held[1:] == records[1:] and list(held) == records
    assert len(SpooledRecords(b"", 0)) == 0 and not SpooledRecords(b"", 0)


def test_records_waiting_to_be_spooled_are_held_as_bytes_not_dicts(tmp_path: Path) -> None:
    """Queued for the next batch (not due for a minute): the writer keeps their lines and count, no dict."""
    sink = GatedLinesSink()
    sink.gate.set()
    worker = SinkWorker(sink, Spool(tmp_path / "lines"), flush_records=1000, flush_seconds=60, poll_seconds=0.01)
    worker.start()
    uids = _submit(worker, 200)
    assert worker.backlog() == 200
    assert _live_record_dicts(uids) == 0
    worker.close()
    assert worker.delivered == 200
    assert sorted(record["uid"] for lines in sink.stored for record in decode(lines)[0]) == sorted(uids)
