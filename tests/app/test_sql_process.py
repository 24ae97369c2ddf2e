"""The SQL capture sink as the app runs it: a ``SqlSink`` in a child process at the lowest CPU priority.

Each test drives the real child (``python -m app.capture.sql_process``) over its pipes: records land in
the table once, a refused record is told apart from a database that is down, a child that dies or hangs is
replaced without losing a record, and the URL never shows on a command line.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
from pathlib import Path

import pytest

from app.capture import SinkWorker, Spool, capture_records
from app.capture.sql_process import CHILD_NICE, SqlProcessError, SqlProcessSink, SqlRecordRejectedError
from app.config import AppConfig, ConfigError
from app.core import new_uids
from tests.support.servers import wait_until


def _records(count: int) -> list[dict]:
    return capture_records(
        uids=new_uids(count),
        inputs=[{"tenure_months": i, "plan": "basic"} for i in range(count)],
        outputs=[{"label": i % 2, "probability": 0.25, "prediction": i % 2} for i in range(count)],
        time="2026-12-02T05:00:00.000001+00:00",
        service="stage",
        model_name="churn",
        model_version=3,
        latency_ms=1.5,
    )


def _count(db: Path) -> int:
    with sqlite3.connect(db) as connection:
        return connection.execute("select count(*) from prediction_capture").fetchone()[0]


@pytest.fixture
def sink(tmp_path: Path):
    sink = SqlProcessSink(f"sqlite:///{tmp_path / 'capture.db'}", reply_timeout=5)
    yield sink
    sink.close()


def test_rows_are_stored_once_by_a_child_at_the_lowest_priority(sink: SqlProcessSink, tmp_path: Path) -> None:
    records = _records(120)  # more than one statement (90 rows)
    sink.write(records)
    sink.write(records)  # a replay after an ambiguous failure stores nothing twice
    assert _count(tmp_path / "capture.db") == 120
    child = sink.pid
    assert child is not None and child != os.getpid()
    assert os.getpriority(os.PRIO_PROCESS, child) == min(19, os.getpriority(os.PRIO_PROCESS, 0) + CHILD_NICE)
    cmdline = Path(f"/proc/{child}/cmdline").read_bytes().decode()
    assert "capture.db" not in cmdline  # the URL (it may hold a password) travels over the pipe


def test_a_refused_record_is_permanent_and_a_database_that_is_down_is_not(tmp_path: Path) -> None:
    good = SqlProcessSink(f"sqlite:///{tmp_path / 'capture.db'}", reply_timeout=5)
    broken = _records(2)
    del broken[1]["output"]
    with pytest.raises(SqlRecordRejectedError, match="output") as refused:
        good.write(broken)
    assert good.permanent(refused.value)
    good.close()

    down = SqlProcessSink(f"sqlite:///{tmp_path / 'no-such-dir' / 'capture.db'}", reply_timeout=5)
    with pytest.raises(SqlProcessError, match="OperationalError") as failed:
        down.write(_records(2))
    assert not down.permanent(failed.value)
    down.close()


def test_a_killed_child_is_replaced_and_no_record_is_lost(tmp_path: Path) -> None:
    sink = SqlProcessSink(f"sqlite:///{tmp_path / 'capture.db'}", reply_timeout=5)
    worker = SinkWorker(sink, Spool(tmp_path / "sql"), flush_records=50, flush_seconds=0.05, retry_initial=0.05)
    worker.start()
    first, second = _records(50), _records(50)
    worker.submit(first)
    wait_until(lambda: worker.delivered == 50, 30, "the first batch delivered")
    killed = sink.pid
    assert killed is not None
    os.kill(killed, signal.SIGKILL)
    worker.submit(second)
    wait_until(lambda: worker.delivered == 100, 30, "the second batch delivered by a new child")
    worker.close()
    assert sink.pid not in (None, killed)
    sink.close()
    assert _count(tmp_path / "capture.db") == 100


def test_a_child_that_does_not_answer_is_killed_and_the_batch_retried(tmp_path: Path) -> None:
    """A child stuck on a lock (SQLite waits 30 s for it) is killed after ``reply_timeout``; the batch fails
    as transient and is stored by a new child once the lock is gone."""
    db = tmp_path / "capture.db"
    sink = SqlProcessSink(f"sqlite:///{db}", reply_timeout=1)
    sink.write(_records(1))  # the table exists
    stuck = sink.pid
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("begin exclusive")
    records = _records(5)
    with pytest.raises(SqlProcessError, match="did not answer in time"):
        sink.write(records)
    assert stuck is not None and not Path(f"/proc/{stuck}").exists()
    holder.execute("rollback")
    holder.close()
    sink.write(records)
    sink.close()
    assert _count(db) == 6


def test_the_child_outlives_a_sigterm_to_the_process_group_and_ends_with_its_input(sink: SqlProcessSink) -> None:
    """A stop signals the whole group; the worker still delivers its last batch through the child, which then
    ends when the worker closes the pipe."""
    sink.write(_records(1))
    child = sink.pid
    assert child is not None
    os.kill(child, signal.SIGTERM)
    sink.write(_records(1))
    assert sink.pid == child
    sink.close()
    assert not Path(f"/proc/{child}").exists()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("oracle://scott@db/orcl", "backend 'oracle' is not supported; allowed: ['sqlite', 'postgresql'"),
        ("capture.db", "CAPTURE_DB_URL is not a database URL"),
    ],
)
def test_a_bad_url_stops_the_start_with_what_is_allowed(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        AppConfig.from_env({"CAPTURE_DB_URL": url})


def test_close_does_not_wait_for_a_hung_batch(tmp_path: Path) -> None:
    """At shutdown a batch stuck on a lock must not hold the stop for ``reply_timeout``: ``close`` kills the
    child after its own timeout, and the stuck write fails as transient (the batch stays in the spool)."""
    db = tmp_path / "capture.db"
    sink = SqlProcessSink(f"sqlite:///{db}", reply_timeout=60)
    sink.write(_records(1))
    child = sink.pid
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("begin exclusive")
    failures: list[BaseException] = []

    def stuck_write() -> None:
        try:
            sink.write(_records(3))
        except BaseException as exc:
            failures.append(exc)

    writer = threading.Thread(target=stuck_write)
    writer.start()
    wait_until(sink._lock.locked, 10, "the batch in flight")
    sink.close(timeout=1)
    writer.join(30)
    holder.execute("rollback")
    holder.close()
    assert not writer.is_alive()
    assert len(failures) == 1 and isinstance(failures[0], SqlProcessError)
    assert child is not None and not Path(f"/proc/{child}").exists()
    assert _count(db) == 1
