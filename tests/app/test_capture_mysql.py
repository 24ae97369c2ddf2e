"""Payload capture into MySQL/MariaDB by URL: a real MariaDB (Debian's) on 127.0.0.1, stopped mid-load and
started again; no record lost, none duplicated (uid is the key)."""

from __future__ import annotations

import sqlalchemy as sa

from tests.app.conftest import TrainedPackage
from tests.app.test_capture import FAST, Load, _sql_uids
from tests.support.servers import wait_until


def test_mariadb_outage_mid_load_loses_and_duplicates_nothing(
    trained: TrainedPackage, mariadb_server, app_process
) -> None:
    url = mariadb_server.url
    app = app_process(trained.path, env={**FAST, "CAPTURE_DB_URL": url})
    with Load(app, trained.records) as load:
        load.wait_for(100)
        mariadb_server.stop()
        load.wait_for(len(load.uids) + 300)
        mariadb_server.start()
        load.wait_for(len(load.uids) + 100)
    assert not load.failures
    assert app.metric("app_capture_records_total", '{outcome="spooled",sink="sql"}') > 0
    sent = load.uids
    wait_until(lambda: len(_sql_uids(url)) >= len(sent), 60, "all records in MariaDB")
    assert sorted(_sql_uids(url)) == sorted(sent)
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        row = connection.execute(sa.text("select service, model_version, prediction, input from prediction_capture"
                                         " limit 1")).one()  # fmt: skip
    engine.dispose()
    assert row.service == "local" and row.model_version == 7
    assert row.prediction in (0, 1) and "satisfaction_score" in str(row.input)
    assert app.terminate()
