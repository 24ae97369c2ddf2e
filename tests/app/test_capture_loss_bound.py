"""The loss bound under hung sinks (issue #13): records leave memory for the spool within
``CAPTURE_FLUSH_SECONDS`` whatever the sinks do, so a kill -9 after that loses nothing.

The sinks hang for real: S3 is a TCP server that accepts and never answers, PostgreSQL has the capture
table locked by another session. After the kill the app is started again on the same spool with the sink
healthy, and every uid the clients were given must arrive.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from app.capture import SqlSink, capture_records
from contracts.exit_codes import ExitCode
from tests.app.conftest import TrainedPackage
from tests.app.test_capture import _s3, _s3_uids, _sql_uids
from tests.support.servers import LOOPBACK, wait_until

FLUSH_SECONDS = 0.5
# The contract is "on disk within CAPTURE_FLUSH_SECONDS"; the kill comes a few flush periods after the
# last answer (the spooler polls every 50 ms and fsyncs), which is the documented bound, not a guess.
KILL_AFTER_SECONDS = 4 * FLUSH_SECONDS


class BlackHole:
    """Accepts TCP connections and never answers: an endpoint that hangs every request."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind((LOOPBACK, 0))
        self.sock.listen(128)
        self.connections: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.sock.getsockname()[1]}"

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            self.connections.append(connection)

    def close(self) -> None:
        self.sock.close()
        for connection in self.connections:
            connection.close()


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    hole = BlackHole()
    yield hole
    hole.close()


def _answer(url: str, records: list[dict], requests: int) -> list[str]:
    uids: list[str] = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for i in range(requests):
            response = client.post("/predict", json=records[i % len(records) : i % len(records) + 3])
            assert response.status_code == 200, response.text
            uids.extend(p["uid"] for p in response.json()["predictions"])
    return uids


def _kill9(app) -> None:
    app.process.send_signal(signal.SIGKILL)
    app.process.wait(30)


FAST = {"CAPTURE_FLUSH_SECONDS": str(FLUSH_SECONDS), "CAPTURE_FLUSH_RECORDS": "1000", "CAPTURE_RETRY_MAX_SECONDS": "1"}


def test_hung_s3_then_kill_9_loses_nothing_older_than_the_flush_window(
    trained: TrainedPackage, moto_server, app_process, black_hole: BlackHole, tmp_path: Path
) -> None:
    bucket = f"capture-{uuid.uuid4().hex[:12]}"
    spool = tmp_path / "spool"
    env = {**FAST, "SPOOL_DIR": str(spool), "CAPTURE_S3_URI": f"s3://{bucket}"}
    app = app_process(trained.path, env={**env, "AWS_ENDPOINT_URL": black_hole.url})
    sent = _answer(app.url, trained.records, 150)
    time.sleep(KILL_AFTER_SECONDS)
    _kill9(app)
    client = _s3(moto_server)
    client.create_bucket(Bucket=bucket)
    again = app_process(trained.path, env={**env, "AWS_ENDPOINT_URL": moto_server.endpoint_url})
    with contextlib.suppress(TimeoutError):  # on failure, report how many were lost rather than a timeout
        wait_until(lambda: len(set(_s3_uids(client, bucket, ""))) >= len(sent), 60, "replay after kill -9")
    stored = set(_s3_uids(client, bucket, ""))
    missing = set(sent) - stored
    assert not missing, f"{len(missing)} of {len(sent)} records lost to kill -9 while S3 hung"
    assert again.terminate()


@pytest.fixture
def pg_schema(postgres_server) -> str:
    schema = f"lock_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(postgres_server.url)
    with admin.begin() as connection:
        connection.execute(sa.text(f"create schema {schema}"))
    admin.dispose()
    return f"{postgres_server.url}?options=-csearch_path%3D{schema}"


def test_locked_postgres_table_then_kill_9_loses_nothing_older_than_the_flush_window(
    trained: TrainedPackage, app_process, pg_schema: str, tmp_path: Path
) -> None:
    url = pg_schema
    sink = SqlSink(url)  # the table exists before the lock, as in production
    seed = capture_records(
        uids=["0" * 32],
        inputs=[{}],
        outputs=[{"label": 0, "probability": 0.5, "prediction": 0}],
        time="2026-01-01T00:00:00+00:00",
        service="local",
        model_name="churn",
        model_version=7,
        latency_ms=1.0,
    )
    sink.write(seed)
    sink.close()
    locker = sa.create_engine(url)
    connection = locker.connect()
    transaction = connection.begin()
    connection.execute(sa.text("lock table prediction_capture in access exclusive mode"))
    try:
        env = {**FAST, "SPOOL_DIR": str(tmp_path / "spool"), "CAPTURE_DB_URL": url}
        app = app_process(trained.path, env=env)
        sent = _answer(app.url, trained.records, 150)
        time.sleep(KILL_AFTER_SECONDS)
        _kill9(app)
    finally:
        transaction.rollback()
        connection.close()
        locker.dispose()
    again = app_process(trained.path, env=env)
    with contextlib.suppress(TimeoutError):  # on failure, report how many were lost rather than a timeout
        wait_until(lambda: len(_sql_uids(url)) >= len(sent) + 1, 60, "replay after kill -9")
    missing = set(sent) - set(_sql_uids(url))
    assert not missing, f"{len(missing)} of {len(sent)} records lost to kill -9 while the table was locked"
    assert again.terminate()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs for the spool, so the test can fill the disk mid-run."""
    spool = tmp_path / "spool"
    spool.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(spool)], check=False).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield spool
    finally:
        subprocess.run(["umount", "-l", str(spool)], check=False)


def _fill(directory: Path) -> None:
    with (directory / "filler").open("wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError:
            pass


def test_sigterm_flushes_the_healthy_sink_and_exits_non_zero_for_what_it_could_not_save(
    small_disk: Path, trained: TrainedPackage, app_process, black_hole: BlackHole, tmp_path: Path
) -> None:
    """S3 hangs and the spool's disk is full: the SQL sink still gets everything, and the exit says loss."""
    db = f"sqlite:///{tmp_path / 'capture.db'}"
    env = {
        "CAPTURE_FLUSH_SECONDS": "3600",
        "CAPTURE_FLUSH_RECORDS": "100000",
        "SPOOL_DIR": str(small_disk),
        "CAPTURE_S3_URI": "s3://bucket",
        "AWS_ENDPOINT_URL": black_hole.url,
        "CAPTURE_DB_URL": db,
    }
    app = app_process(trained.path, env=env)
    sent = _answer(app.url, trained.records, 20)
    _fill(small_disk)
    app.process.send_signal(signal.SIGTERM)
    code = app.wait_exit(120)
    assert sorted(_sql_uids(db)) == sorted(sent), "the healthy sink must be flushed whatever the other does"
    assert code == ExitCode.CAPTURE_NOT_SAVED, app.log()
    assert "could not be delivered or spooled" in app.log()


@pytest.mark.parametrize(("policy", "status"), [("drain", 503), ("alarm", 200)])
def test_ready_reflects_a_capture_failing_too_long_per_policy(
    trained: TrainedPackage, app_process, black_hole: BlackHole, policy: str, status: int
) -> None:
    env = {
        **FAST,
        "CAPTURE_S3_URI": "s3://bucket",
        "AWS_ENDPOINT_URL": black_hole.url,
        "CAPTURE_UNHEALTHY_SECONDS": "1",
        "CAPTURE_FAILURE_POLICY": policy,
    }
    app = app_process(trained.path, env=env)
    assert httpx.get(f"{app.url}/ready").status_code == 200  # nothing unsent yet
    _answer(app.url, trained.records, 3)
    wait_until(lambda: httpx.get(f"{app.url}/ready").json().get("capture_failing"), 60, "capture reported failing")
    response = httpx.get(f"{app.url}/ready")
    assert response.status_code == status
    assert "s3: oldest unsent record" in response.json()["capture_failing"][0]
    # The gauges are refreshed about once a second by the spooler thread.
    wait_until(lambda: app.metric("app_capture_unhealthy", '{sink="s3"}') == 1, 30, "unhealthy gauge")
    assert app.metric("app_capture_backlog_records", '{sink="s3"}') == 9
    assert app.metric("app_capture_oldest_unsent_seconds", '{sink="s3"}') > 1
