"""Capture cannot die quietly: every single failure of the disk, the spool or the sink leaves the threads
running, sets bad data aside with a count, and lets the good records behind it through (issue #13)."""

from __future__ import annotations

import errno
import json
import threading
from pathlib import Path

from app.capture import CaptureWriter, SinkWorker, Spool
from tests.support.servers import wait_until


class Sink:
    """Stores uids; fails while ``down``; rejects ``poison`` uids permanently (ValueError); may hang."""

    def __init__(self, name: str = "test", poison: frozenset[str] = frozenset()) -> None:
        self.name = name
        self.down = threading.Event()
        self.hang = threading.Event()
        self.release = threading.Event()
        self.poison = poison
        self.stored: list[str] = []
        self.close_error: Exception | None = None

    def write(self, records) -> None:
        if self.hang.is_set():
            self.release.wait(60)
        if self.down.is_set():
            raise ConnectionError("sink is down")
        bad = [r["uid"] for r in records if r["uid"] in self.poison]
        if bad:
            raise ValueError(f"record {bad[0]} violates a constraint")
        self.stored.extend(r["uid"] for r in records)

    def close(self) -> None:
        if self.close_error is not None:
            raise self.close_error


class FullDisk(Spool):
    """A spool on a disk that is full while ``full`` is set (both the old and the new write path fail)."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.full = threading.Event()
        self.failures = 0

    def _check(self) -> None:
        if self.full.is_set():
            self.failures += 1
            raise OSError(errno.ENOSPC, "No space left on device")

    def append(self, records):  # the pre-#13 path
        self._check()
        return super().append(records)

    def write(self, data: bytes, count: int | None = None) -> Path:
        self._check()
        return super().write(data, count)


def _records(start: int, count: int) -> list[dict]:
    return [{"uid": f"{i:032x}", "time": "2026-01-01T00:00:00+00:00"} for i in range(start, start + count)]


def _uids(start: int, count: int) -> list[str]:
    return [r["uid"] for r in _records(start, count)]


def _on_disk(directory: Path) -> int:
    """Records in the finished segments of a live spool (read-only: no Spool() on a directory in use)."""
    return sum(len(p.read_bytes().splitlines()) for p in directory.glob("*.jsonl"))


FAST = {"flush_records": 10, "flush_seconds": 0.05, "retry_initial": 0.05, "retry_max": 0.1}


def test_disk_full_with_the_sink_down_loses_nothing_once_both_recover(tmp_path: Path) -> None:
    sink, spool = Sink(), FullDisk(tmp_path / "s3")
    sink.down.set()
    spool.full.set()
    worker = SinkWorker(sink, spool, **FAST)
    worker.start()
    for start in range(0, 50, 5):
        worker.submit(_records(start, 5))
    wait_until(lambda: spool.failures > 0, 10, "a failed spool write")
    spool.full.clear()
    sink.down.clear()
    worker.submit(_records(50, 5))
    wait_until(lambda: sorted(sink.stored) == _uids(0, 55), 10, "every record after the disk and sink recovered")
    assert worker.close() == 0
    assert worker.dropped == 0


def test_disk_full_with_the_sink_up_delivers_from_memory(tmp_path: Path) -> None:
    sink, spool = Sink(), FullDisk(tmp_path / "s3")
    spool.full.set()
    worker = SinkWorker(sink, spool, **FAST)
    worker.start()
    worker.submit(_records(0, 30))
    wait_until(lambda: sorted(sink.stored) == _uids(0, 30), 10, "delivery while the spool cannot be written")
    assert spool.failures > 0 and worker.spool_errors > 0
    worker.close()


def test_truncated_segment_is_quarantined_and_the_records_behind_it_flow(tmp_path: Path) -> None:
    directory = tmp_path / "sql"
    spool = Spool(directory)
    spool.append(_records(0, 3))
    truncated = spool.append(_records(3, 3))
    spool.append(_records(6, 3))
    assert truncated is not None
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) - 20])  # the last record is cut in half
    sink = Sink()
    worker = SinkWorker(sink, Spool(directory), **FAST)
    worker.start()
    wait_until(lambda: len(sink.stored) == 8, 10, "the good records of all three segments")
    assert sorted(sink.stored) == sorted(_uids(0, 5) + _uids(6, 3))
    worker.close()
    assert worker.quarantined == 1
    [bad] = list((tmp_path / "sql-quarantine").iterdir())
    header, line = bad.read_bytes().splitlines()
    assert "corrupt or truncated" in json.loads(header)["reason"] and line.startswith(b'{"uid"')
    assert Spool(directory).segments() == []  # nothing left to block the next start


def test_a_restart_knows_the_backlog_from_segment_names(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s3")
    spool.append(_records(0, 7))
    spool.append(_records(7, 5))
    (tmp_path / "s3" / "00000000000000000001-00000001.jsonl").write_bytes(b'{"uid": "a"}\n{"uid": "b"}\n')
    sink = Sink()
    sink.down.set()
    worker = SinkWorker(sink, Spool(tmp_path / "s3"), **FAST)
    assert worker.backlog() == 14  # 7 + 5 from the names, 2 counted in the old-style segment


def test_unreadable_segment_is_moved_aside(tmp_path: Path) -> None:
    directory = tmp_path / "s3"
    spool = Spool(directory)
    (directory / "00000000000000000001-00000001.jsonl").mkdir()  # reading it raises IsADirectoryError
    spool.append(_records(0, 4))
    sink = Sink()
    worker = SinkWorker(sink, Spool(directory), **FAST)
    worker.start()
    wait_until(lambda: sorted(sink.stored) == _uids(0, 4), 10, "the readable segment")
    worker.close()
    assert worker.quarantined >= 1
    moved = [p.name for p in (tmp_path / "s3-quarantine").iterdir()]
    assert moved == ["00000000000000000001-00000001.jsonl.unreadable"]


def test_a_poison_record_is_quarantined_and_does_not_block_the_others(tmp_path: Path) -> None:
    poison = _uids(17, 1)[0]
    sink = Sink(poison=frozenset({poison}))
    worker = SinkWorker(sink, Spool(tmp_path / "sql"), **FAST)
    worker.start()
    for start in range(0, 100, 10):
        worker.submit(_records(start, 10))
    expected = [u for u in _uids(0, 100) if u != poison]
    wait_until(lambda: sorted(sink.stored) == expected, 10, "the 99 good records")
    worker.close()
    assert worker.quarantined == 1
    [bad] = list((tmp_path / "sql-quarantine").iterdir())
    assert poison in bad.read_text() and "violates a constraint" in bad.read_text()


def test_a_hung_sink_does_not_keep_records_in_memory(tmp_path: Path) -> None:
    """The loss bound: within CAPTURE_FLUSH_SECONDS the records are on disk, whatever the sink does."""
    sink = Sink()
    sink.hang.set()
    worker = SinkWorker(sink, Spool(tmp_path / "s3"), flush_records=1000, flush_seconds=0.2, retry_initial=0.05)
    worker.start()
    worker.submit(_records(0, 5))
    wait_until(lambda: _on_disk(tmp_path / "s3") == 5, 10, "records on disk while the sink hangs")
    sink.release.set()
    sink.hang.clear()
    wait_until(lambda: sink.stored == _uids(0, 5), 10, "delivered once the sink answers")
    worker.close()


def test_close_flushes_every_sink_even_when_one_fails(tmp_path: Path) -> None:
    first, second = Sink("s3"), Sink("sql")
    first.close_error = RuntimeError("connection pool broken")
    slow = {"flush_records": 100_000, "flush_seconds": 3600}
    workers = [SinkWorker(first, Spool(tmp_path / "s3"), **slow), SinkWorker(second, Spool(tmp_path / "sql"), **slow)]
    writer = CaptureWriter(workers)
    writer.start()
    writer.submit(_records(0, 20))
    writer.close()
    assert second.stored == _uids(0, 20) and first.stored == _uids(0, 20)


def test_close_reports_records_it_could_not_save(tmp_path: Path) -> None:
    sink, spool = Sink(), FullDisk(tmp_path / "s3")
    sink.down.set()
    spool.full.set()
    worker = SinkWorker(sink, spool, flush_records=100_000, flush_seconds=3600, retry_initial=60, retry_max=60)
    writer = CaptureWriter([worker])
    writer.start()
    writer.submit(_records(0, 9))
    assert writer.close(timeout=5) == 9


def test_spool_cap_drop_oldest_keeps_the_newest(tmp_path: Path) -> None:
    sink = Sink()
    sink.down.set()
    one_batch = len(Spool(tmp_path / "probe").append(_records(0, 10)).read_bytes())  # type: ignore[union-attr]
    worker = SinkWorker(
        sink, Spool(tmp_path / "s3"), **{**FAST, "retry_initial": 60, "retry_max": 60}, spool_max_bytes=3 * one_batch
    )
    worker.start()
    for start in range(0, 50, 10):
        worker.submit(_records(start, 10))
        wait_until(lambda s=start: worker.spooled >= s + 10, 10, "batch spooled")
    assert worker.spool.bytes <= 3 * one_batch
    kept = {r["uid"] for s in worker.spool.segments() for r in worker.spool.read(s)}
    # The batch the deliverer holds (the first) is never dropped; the oldest of the others are.
    assert kept == set(_uids(0, 10) + _uids(30, 20)) and worker.dropped == 20
    worker.close()


def test_spool_cap_drop_newest_keeps_the_oldest(tmp_path: Path) -> None:
    sink = Sink()
    sink.down.set()
    one_batch = len(Spool(tmp_path / "probe").append(_records(0, 10)).read_bytes())  # type: ignore[union-attr]
    worker = SinkWorker(
        sink,
        Spool(tmp_path / "s3"),
        **{**FAST, "retry_initial": 60, "retry_max": 60},
        spool_max_bytes=2 * one_batch,
        overflow="drop_newest",
    )
    worker.start()
    for start in range(0, 40, 10):
        worker.submit(_records(start, 10))
        wait_until(lambda s=start: worker.spooled + worker.dropped >= s + 10, 10, "batch handled")
    kept = {r["uid"] for s in worker.spool.segments() for r in worker.spool.read(s)}
    assert kept == set(_uids(0, 20)) and worker.dropped == 20
    worker.close()


def test_health_reports_a_sink_failing_longer_than_the_limit(tmp_path: Path) -> None:
    sink = Sink()
    sink.down.set()
    worker = SinkWorker(sink, Spool(tmp_path / "s3"), **FAST, unhealthy_seconds=0.3)
    writer = CaptureWriter([worker])
    writer.start()
    writer.submit(_records(0, 3))
    assert writer.unhealthy_reasons() == []
    wait_until(lambda: writer.unhealthy_reasons() != [], 10, "capture reported unhealthy")
    assert "oldest unsent record" in writer.unhealthy_reasons()[0]
    assert worker.backlog() == 3
    sink.down.clear()
    wait_until(lambda: writer.unhealthy_reasons() == [], 10, "healthy again once delivered")
    assert worker.backlog() == 0
    writer.close()


def test_emf_line_names_the_metrics_the_alarms_use(tmp_path: Path) -> None:
    from app import capture_contract as contract

    lines: list[str] = []
    sink = Sink("s3", poison=frozenset(_uids(1, 1)))
    worker = SinkWorker(sink, Spool(tmp_path / "s3"), **FAST, service="prod", emf_seconds=0.01, emf_write=lines.append)
    worker.start()
    worker.submit(_records(0, 3))
    wait_until(lambda: worker.quarantined == 1 and len(sink.stored) == 2, 10, "delivery")
    wait_until(lambda: any(json.loads(x)[contract.QUARANTINED] == 1 for x in lines), 10, "an EMF line with the count")
    worker.close()
    document = json.loads(lines[-1])
    [directive] = document["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == contract.EMF_NAMESPACE
    assert directive["Dimensions"] == [["Service", "Sink"]]
    assert {m["Name"] for m in directive["Metrics"]} == {
        contract.BACKLOG,
        contract.OLDEST_UNSENT,
        contract.QUARANTINED,
        contract.DROPPED,
        contract.SPOOL_WRITE_ERRORS,
        contract.UNHEALTHY,
    }
    assert document["Service"] == "prod" and document["Sink"] == "s3"
    assert sum(json.loads(x)[contract.QUARANTINED] for x in lines) == 1  # deltas, not running totals
