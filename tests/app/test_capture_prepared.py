"""A sink's rows are built where the records are made, on the event loop, not on the capture threads.

Why (docs/bench-serving.md, session 9): the capture threads share the GIL with the event loop. Python work
on them makes the loop wait for the GIL, and the wait grows to milliseconds when the holder is preempted on
busy cores. Building the SQL rows was the largest such piece, so the sink prepares them on the request path
(``prepare``, a few microseconds a record, spread over the loop's turns) and the deliverer only inserts.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from app.capture import SinkWorker, Spool, SqlSink, capture_records, sinks
from app.core import new_uids
from tests.support.servers import wait_until

FAST = {"flush_records": 50, "flush_seconds": 0.05, "retry_initial": 0.05, "poll_seconds": 0.01}


def _records(count: int, ids: bool = False) -> list[dict]:
    records = capture_records(
        uids=new_uids(count),
        inputs=[{"tenure_months": i, "contract": "monthly"} for i in range(count)],
        outputs=[{"label": "yes", "probability": 0.75, "prediction": 1} for _ in range(count)],
        time="2026-12-02T01:02:03.456789+00:00",
        service="stage",
        model_name="churn",
        model_version=3,
        latency_ms=1.5,
    )
    if ids:
        for i, record in enumerate(records):
            record["ids"] = {"customer_id": f"c-{i}"}
    return records


def _stored(url: str) -> dict[str, sa.Row]:
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(sa.text("select * from prediction_capture")).all()
    engine.dispose()
    return {row.uid: row for row in rows}


def _deliver(worker: SinkWorker, batches: list[list[dict]]) -> None:
    worker.start()
    for batch in batches:
        worker.submit(batch)
    total = sum(len(b) for b in batches)
    wait_until(lambda: worker.delivered + worker.quarantined >= total, 30, f"{total} records delivered")
    worker.close()


def test_sql_rows_are_built_on_the_submitting_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'capture.db'}"
    encoders: set[str] = set()
    encode = sinks.dumps_text

    def spy(value: object) -> str:
        encoders.add(threading.current_thread().name)
        return encode(value)

    monkeypatch.setattr(sinks, "dumps_text", spy)
    batches = [_records(20) for _ in range(5)]
    _deliver(SinkWorker(SqlSink(url), Spool(tmp_path / "sql"), **FAST), batches)
    assert encoders == {threading.current_thread().name}, "rows were built on a capture thread"
    stored = _stored(url)
    assert len(stored) == 100
    record = batches[3][7]
    assert stored[record["uid"]].model_version == 3 and stored[record["uid"]].probability == 0.75


def test_rows_prepared_for_columns_the_table_lacks_are_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rows are prepared before the deliverer first looks at the table; a table without ``ids`` that
    may not be altered gets rows without it, and each lost id is counted once."""
    from app import metrics

    url = f"sqlite:///{tmp_path / 'capture.db'}"
    legacy = sa.MetaData()
    current = sinks.capture_table(sa.MetaData())
    sa.Table(current.name, legacy, *(c._copy() for c in current.columns if c.name != "ids"))
    engine = sa.create_engine(url)
    legacy.create_all(engine)
    engine.dispose()
    monkeypatch.setattr(SqlSink, "_add_ids_column", lambda self: None)  # a role without ALTER
    before = metrics.CAPTURE_IDS_NOT_STORED.labels("sql")._value.get()
    _deliver(SinkWorker(SqlSink(url), Spool(tmp_path / "sql"), **FAST), [_records(10, ids=True)])
    assert len(_stored(url)) == 10
    assert metrics.CAPTURE_IDS_NOT_STORED.labels("sql")._value.get() - before == 10


class PreparingSink:
    """Keeps what it stores and how; fails while ``down``."""

    name = "preparing"

    def __init__(self, broken_prepare: bool = False) -> None:
        self.down = threading.Event()
        self.broken_prepare = broken_prepare
        self.prepared: list[int] = []  # records per prepare call
        self.stored: list[str] = []
        self.ways: list[str] = []

    def prepare(self, records):
        if self.broken_prepare:
            raise TypeError("cannot prepare")
        self.prepared.append(len(records))
        return [r["uid"] for r in records]

    def write_prepared(self, records, parts) -> None:
        if self.down.is_set():
            raise ConnectionError("sink is down")
        uids = [uid for part in parts for uid in part]
        assert uids == [r["uid"] for r in records], "the prepared rows are the batch's records, in order"
        self.stored += uids
        self.ways.append("prepared")

    def write(self, records) -> None:
        if self.down.is_set():
            raise ConnectionError("sink is down")
        self.stored += [r["uid"] for r in records]
        self.ways.append("records")


def test_batches_made_while_the_sink_fails_keep_no_prepared_rows(tmp_path: Path) -> None:
    """Memory: during an outage the records wait in memory (bounded); their prepared rows are not made."""
    from app import metrics

    sink = PreparingSink()
    sink.down.set()
    failures = metrics.CAPTURE_FAILURES.labels(sink.name)
    before = failures._value.get()
    worker = SinkWorker(sink, Spool(tmp_path / "s"), **FAST)
    worker.start()
    first = _records(30)
    worker.submit(first)
    # The failure metric is counted once the worker has marked the sink failing (not when the sink raised).
    wait_until(lambda: failures._value.get() > before, 10, "the first delivery to fail")
    second = _records(30)
    worker.submit(second)
    wait_until(lambda: worker.spooled == 60, 10, "both batches spooled")
    sink.down.clear()
    wait_until(lambda: worker.delivered == 60, 30, "everything delivered once the sink is back")
    worker.close()
    assert sink.prepared == [30], "nothing was prepared while the sink was failing"
    assert sink.stored == [r["uid"] for r in first + second]
    assert sink.ways == ["prepared", "records"]


def test_a_prepare_that_raises_never_reaches_the_request(tmp_path: Path) -> None:
    sink = PreparingSink(broken_prepare=True)
    worker = SinkWorker(sink, Spool(tmp_path / "s"), **FAST)
    records = _records(12)
    _deliver(worker, [records])  # submit() must not raise on the request path
    assert sink.stored == [r["uid"] for r in records] and sink.ways == ["records"]


def test_a_batch_is_cut_between_submissions_so_each_keeps_its_prepared_rows(tmp_path: Path) -> None:
    sink = PreparingSink()
    worker = SinkWorker(sink, Spool(tmp_path / "s"), flush_records=50, flush_seconds=0.3, poll_seconds=0.2)
    batches = [_records(20) for _ in range(6)]  # 120 records: batches of 40 (two submissions), never cut inside
    _deliver(worker, batches)
    assert sink.stored == [r["uid"] for b in batches for r in b]
    assert set(sink.ways) == {"prepared"}


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
    sink = PreparingSink()
    worker = SinkWorker(sink, Spool(tmp_path / "s"), flush_records=10, flush_seconds=0.05, poll_seconds=0.01)
    records = _records(25)
    records[3]["input"]["basket"] = {"a set cannot be JSON"}
    _deliver(worker, [records])
    assert worker.quarantined == 1 and "basket" in next((tmp_path / "s-quarantine").iterdir()).read_text()
    assert sink.stored == [r["uid"] for i, r in enumerate(records) if i != 3]
    assert sink.ways == ["records"] * 3, "cut into batches of at most 10, rebuilt by the deliverer"
