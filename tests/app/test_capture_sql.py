"""The SQL capture sink on each database it supports: multi-row INSERTs that are idempotent on ``uid``.

A batch larger than one statement (90 rows) is split into several statements in one transaction; uids
already stored, and uids repeated inside the batch (a replay after an ambiguous failure), are skipped.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from app.capture import SqlSink, capture_records
from app.capture.sinks import ROWS_PER_STATEMENT, capture_table
from app.capture.sql_process import SqlProcessSink
from app.core import new_uids
from app.json_codec import loads

STAMP = "2026-11-22T07:10:11.123456+00:00"


def _records(count: int, time: str = STAMP) -> list[dict]:
    inputs = [{"tenure_months": i, "campaign_id": f"C{i % 3}", "note": "ünïcode"} for i in range(count)]
    return capture_records(
        uids=new_uids(count),
        inputs=inputs,
        outputs=[{"label": i % 2, "probability": i / (count + 1), "prediction": i % 2} for i in range(count)],
        time=time,
        service="stage",
        model_name="churn",
        model_version=7,
        latency_ms=1.25,
    )


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'capture.db'}"
        return
    if request.param == "postgresql":
        server = request.getfixturevalue("postgres_server")
        schema = f"sink_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(server.url)
        with admin.begin() as connection:
            connection.execute(sa.text(f"create schema {schema}"))
        admin.dispose()
        yield f"{server.url}?options=-csearch_path%3D{schema}"
        return
    url = request.getfixturevalue("mariadb_server").url
    _drop_capture_table(url)  # one database per server, shared with the outage test: start and leave it empty
    yield url
    _drop_capture_table(url)


def _drop_capture_table(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("drop table if exists prediction_capture"))
    engine.dispose()


def _stored(url: str) -> list[sa.Row]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return list(
                connection.execute(
                    sa.text(
                        "select uid, time, service, model_version, input, output, prediction, probability"
                        " from prediction_capture order by uid"
                    )
                )
            )
    finally:
        engine.dispose()


def test_batches_beyond_one_statement_are_stored_once_each(database_url: str) -> None:
    sink = SqlSink(database_url)
    first = _records(10)
    sink.write(first)
    batch = _records(2 * ROWS_PER_STATEMENT + 20)
    # A replay: rows already stored, and a row repeated inside the batch, must not fail or duplicate.
    sink.write(first[:5] + batch + batch[:3])
    sink.close()

    rows = _stored(database_url)
    expected = sorted(r["uid"] for r in first + batch)
    assert [row.uid for row in rows] == expected
    by_uid = {r["uid"]: r for r in first + batch}
    for row in rows:
        record = by_uid[row.uid]
        stored_input = row.input if isinstance(row.input, dict) else loads(row.input)
        stored_output = row.output if isinstance(row.output, dict) else loads(row.output)
        assert stored_input == record["input"]
        assert stored_output == record["output"]
        assert row.prediction == record["output"]["prediction"]
        assert row.probability == pytest.approx(record["output"]["probability"])
        assert row.service == "stage" and row.model_version == 7
        when = row.time if isinstance(row.time, datetime) else datetime.fromisoformat(str(row.time))
        assert when.replace(tzinfo=UTC) == datetime.fromisoformat(STAMP)


def test_times_in_other_offsets_are_stored_in_utc(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'capture.db'}"
    sink = SqlSink(url)
    sink.write(_records(2, time="2026-11-22T09:10:11+02:00"))
    sink.close()
    rows = _stored(url)
    assert {str(row.time) for row in rows} == {"2026-11-22 07:10:11.000000"}


def test_a_model_version_beyond_32_bits_is_stored(database_url: str) -> None:
    """Issue #13: a manifest ``version`` >= 2**31 stopped PostgreSQL capture entirely (INTEGER column)."""
    records = _records(3)
    for record in records:
        record["model_version"] = 2**31 + 5
    sink = SqlSink(database_url)
    sink.write(records)
    sink.close()
    assert [row.model_version for row in _stored(database_url)] == [2**31 + 5] * 3


def test_a_row_the_database_refuses_is_a_permanent_error(database_url: str) -> None:
    """The writer quarantines such a row instead of retrying it forever (and blocking all behind it)."""
    bad = _records(1)
    bad[0]["uid"] = "x" * 40  # longer than the uid column
    sink = SqlSink(database_url)
    if sa.make_url(database_url).get_backend_name() != "postgresql":
        sink.close()
        pytest.skip("SQLite does not enforce VARCHAR lengths; MySQL's INSERT IGNORE turns the error into a warning")
    with pytest.raises(Exception) as caught:
        sink.write(bad)
    sink.close()
    assert SqlSink.permanent(caught.value), caught.value
    assert not SqlSink.permanent(sa.exc.OperationalError("insert", {}, ConnectionError("server closed")))


@pytest.mark.parametrize("sink_class", [SqlSink, SqlProcessSink], ids=["in-process", "child-process"])
def test_a_poison_row_on_an_old_integer_table_is_quarantined_and_the_rest_delivered(
    postgres_server, tmp_path: Path, sink_class: type[SqlSink] | type[SqlProcessSink]
) -> None:
    """A table created before the BIGINT change refuses a version >= 2**31: only that row is set aside,
    also when the rows are stored by the child process the app uses (the refusal crosses the pipe)."""
    from app.capture import SinkWorker, Spool
    from tests.support.servers import wait_until

    schema = f"old_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(postgres_server.url)
    with admin.begin() as connection:
        connection.execute(sa.text(f"create schema {schema}"))
        old = sa.MetaData(schema=schema)
        table = capture_table(old)
        table.c.model_version.type = sa.Integer()
        old.create_all(connection)
    admin.dispose()
    url = f"{postgres_server.url}?options=-csearch_path%3D{schema}"
    records = _records(50)
    records[20]["model_version"] = 2**31
    sink = sink_class(url)
    worker = SinkWorker(sink, Spool(tmp_path / "sql"), flush_records=50, flush_seconds=0.05)
    worker.start()
    worker.submit(records)
    wait_until(lambda: worker.delivered + worker.quarantined == 50, 30, "every record delivered or quarantined")
    worker.close()
    sink.close()
    assert worker.quarantined == 1
    assert {row.uid for row in _stored(url)} == {r["uid"] for i, r in enumerate(records) if i != 20}
    assert "out of range" in next((tmp_path / "sql-quarantine").iterdir()).read_text()


def test_s3_errors_are_classified_permanent_or_transient() -> None:
    from botocore.exceptions import ClientError, EndpointConnectionError

    from app.capture import S3Sink

    def client_error(status: int, code: str) -> ClientError:
        return ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")

    assert S3Sink.permanent(client_error(400, "InvalidArgument"))
    assert S3Sink.permanent(client_error(413, "EntityTooLarge"))
    assert S3Sink.permanent(TypeError("Type is not JSON serializable: set"))
    assert not S3Sink.permanent(client_error(400, "RequestTimeout"))
    assert not S3Sink.permanent(client_error(403, "AccessDenied"))  # an operator fixes IAM; records wait
    assert not S3Sink.permanent(client_error(503, "SlowDown"))
    assert not S3Sink.permanent(EndpointConnectionError(endpoint_url="http://127.0.0.1:1"))


def _records_with_ids(count: int) -> list[dict]:
    """Every other record carries the model's id columns (a model with ``--id-columns``); the rest none."""
    records = _records(count)
    for i, record in enumerate(records):
        if i % 2 == 0:
            record["ids"] = {"customer_id": f"c-{i}", "branch": "Zürich"}
    return records


def _without_ids_table(url: str) -> None:
    """The table as an app before the ``ids`` column created it, with one row already stored."""
    legacy = sa.MetaData()
    current = capture_table(sa.MetaData())
    table = sa.Table(current.name, legacy, *(c._copy() for c in current.columns if c.name != "ids"))
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        legacy.create_all(connection)
        [old] = _records(1, time="2026-11-21T00:00:00.000001+00:00")
        connection.execute(table.insert(), [{**old, "time": datetime.fromisoformat(old["time"]), "prediction": 0,
                                             "probability": 0.0}])  # fmt: skip
    engine.dispose()


def _read_back(url: str) -> dict[str, dict]:
    from jobs_common.capture import SqlCaptureReader

    return {r["uid"]: r for r in SqlCaptureReader(url).read(None, datetime(1970, 1, 1, tzinfo=UTC))}


def test_ids_are_stored_and_read_back_on_every_database(database_url: str) -> None:
    """Issue #14 item 3: id columns pass through capture; the S3 records had them, the SQL table did not."""
    records = _records_with_ids(30)
    SqlSink(database_url).write(records)
    stored = _read_back(database_url)
    assert len(stored) == 30
    for record in records:
        assert stored[record["uid"]].get("ids") == record.get("ids"), record["uid"]
        assert stored[record["uid"]]["output"] == record["output"]


def test_a_table_from_before_ids_gets_the_column_and_keeps_its_rows(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    _without_ids_table(database_url)
    records = _records_with_ids(10)
    with caplog.at_level("WARNING", logger="app.capture.sinks"):
        SqlSink(database_url).write(records)
    assert "added the nullable column 'ids'" in caplog.text
    stored = _read_back(database_url)
    assert len(stored) == 11, "the row stored before the migration is still there"
    assert sum("ids" in r for r in stored.values()) == 5
    assert stored[records[0]["uid"]]["ids"] == {"customer_id": "c-0", "branch": "Zürich"}
    SqlSink(database_url).write(_records_with_ids(3))  # a second process finds the column and adds nothing
    assert len(_read_back(database_url)) == 14


def _insert_only_role(postgres_server) -> tuple[str, str]:
    """A table from before ``ids`` and a capture role that may INSERT and SELECT it but not ALTER it:
    (the role's URL, the admin's URL), both on a schema of their own."""
    schema, role = f"ro_{uuid.uuid4().hex[:8]}", f"capture_{uuid.uuid4().hex[:8]}"
    admin_url = f"{postgres_server.url}?options=-csearch_path%3D{schema}"
    admin = sa.create_engine(postgres_server.url)
    with admin.begin() as connection:
        connection.execute(sa.text(f"create schema {schema}"))
        connection.execute(sa.text(f"create role {role} login"))
        connection.execute(sa.text(f"grant usage on schema {schema} to {role}"))
    admin.dispose()
    _without_ids_table(admin_url)
    admin = sa.create_engine(admin_url)
    with admin.begin() as connection:
        connection.execute(sa.text(f"grant select, insert on prediction_capture to {role}"))
    admin.dispose()
    return admin_url.replace("postgres@", f"{role}@", 1), admin_url


def test_without_the_right_to_add_the_column_rows_are_stored_and_the_lost_ids_counted(
    postgres_server, caplog: pytest.LogCaptureFixture
) -> None:
    """A capture role that may INSERT and SELECT but not ALTER: capture goes on, the ids are counted as not
    stored, and an ERROR names the statement a DBA has to run."""
    from app import metrics

    url, admin_url = _insert_only_role(postgres_server)
    before = metrics.CAPTURE_IDS_NOT_STORED.labels("sql")._value.get()
    records = _records_with_ids(10)
    with caplog.at_level("ERROR", logger="app.capture.sinks"):
        SqlSink(url).write(records)
    assert "ALTER TABLE prediction_capture ADD COLUMN ids JSON" in caplog.text
    assert "are NOT stored" in caplog.text
    assert metrics.CAPTURE_IDS_NOT_STORED.labels("sql")._value.get() - before == 5
    stored = _read_back(admin_url)
    assert len(stored) == 11 and not any("ids" in r for r in stored.values())


def test_the_sql_child_process_reports_lost_ids_to_its_worker(postgres_server, capfd: pytest.CaptureFixture) -> None:
    """The same through the child process the app uses: the count reaches the worker's metric (the one
    /metrics serves), and the child's ERROR reaches the log on stderr."""
    from app import metrics

    url, admin_url = _insert_only_role(postgres_server)
    before = metrics.CAPTURE_IDS_NOT_STORED.labels("sql")._value.get()
    sink = SqlProcessSink(url, reply_timeout=30)
    sink.write(_records_with_ids(10))
    sink.close()
    assert metrics.CAPTURE_IDS_NOT_STORED.labels("sql")._value.get() - before == 5
    assert "ALTER TABLE prediction_capture ADD COLUMN ids JSON" in capfd.readouterr().err
    assert len(_read_back(admin_url)) == 11
