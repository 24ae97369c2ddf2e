"""The SQL source: ``churn_ddl.sql`` / ``churn_etl.sql`` / ``churn_test.sql`` on SQLite and on PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from contracts.bucket_layout import MODELS_PREFIX
from contracts.exit_codes import ExitCode
from jobs_common.errors import ConfigError, DataError
from jobs_common.readers import SqlFiles, SqlReader, engine_url
from retrain.job import SQL_DIR, Decision, RetrainJob
from retrain.settings import Settings
from retrain.synthetic import generate_churn

COLUMNS = [
    "customer_id",
    "tenure_months",
    "monthly_spend",
    "satisfaction_score",
    "engagement_score",
    "star_rating",
    "logins_30d",
    "support_tickets_90d",
    "campaign_id",
    "acquisition_date",
    "churn",
]


def load_rows(url: str, frame: pd.DataFrame) -> None:
    """Create the table from the DDL file and insert ``frame`` (what an upstream loader would do)."""
    SqlReader(SqlFiles.load("churn", SQL_DIR), url).apply_ddl()
    records = []
    for i, row in enumerate(frame.to_dict("records")):
        record = {k: (None if isinstance(v, float) and pd.isna(v) else v) for k, v in row.items()}
        record["star_rating"] = None if record["star_rating"] is None else int(record["star_rating"])
        records.append({"customer_id": f"cust-{i:06d}", **record})
    # Fixed column names from this file; the values are bound parameters.
    insert = f"INSERT INTO churn_training ({', '.join(COLUMNS)}) VALUES ({', '.join(':' + c for c in COLUMNS)})"  # noqa: S608
    statement = text(insert)
    engine = create_engine(engine_url(url))
    with engine.begin() as conn:
        conn.execute(statement, records)
    engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'warehouse.db'}"


@pytest.fixture
def postgres_url(postgres_server: Any) -> Iterator[str]:
    """A fresh database per test on the shared server, so the fixed table name cannot collide."""
    name = f"retrain_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_server.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    # The plain postgresql:// form is what a Secrets Manager value usually holds; the reader accepts it.
    yield postgres_server.url.replace("postgresql+psycopg://", "postgresql://").rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(f"{request.param}_url")


def test_sql_source_reads_the_same_rows_on_both_databases(database_url: str) -> None:
    frame = generate_churn(700, seed=21)
    load_rows(database_url, frame)
    data = SqlReader(SqlFiles.load("churn", SQL_DIR), database_url).read()
    assert len(data.frame) == 700
    assert list(data.frame.columns) == [c for c in COLUMNS if c != "customer_id"]
    assert pd.api.types.is_numeric_dtype(data.frame["star_rating"]) and data.frame["star_rating"].isna().any()
    assert data.frame["churn"].sum() == frame["churn"].sum()
    assert data.uri.startswith("sql://churn@") and "***" not in data.uri.split("@", 1)[0]
    # Same rows, same order by the ETL's ORDER BY: the hash is stable, so a re-run is recognised.
    assert SqlReader(SqlFiles.load("churn", SQL_DIR), database_url).read().sha256 == data.sha256


def test_job_trains_from_sql_and_a_failing_check_stops_it(database_url: str, s3: Any, bucket: str) -> None:
    load_rows(database_url, generate_churn(1200, seed=22))
    settings = Settings(sql_name="churn", database_url=database_url, model_bucket=bucket).validated()
    first = RetrainJob(settings, s3).run()
    assert first.decision == Decision.ACCEPTED, first.reason
    assert first.report["data"]["uri"].startswith("sql://churn@")

    engine = create_engine(engine_url(database_url))
    with engine.begin() as conn:
        conn.execute(text("UPDATE churn_training SET star_rating = 9 WHERE customer_id = 'cust-000007'"))
    engine.dispose()
    stopped = RetrainJob(settings, s3).run()
    assert stopped.decision == Decision.BAD_DATA and stopped.exit_code == ExitCode.BAD_DATA
    assert "churn_test.sql check 2 returned rows" in stopped.reason and "cust-000007" in stopped.reason
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=MODELS_PREFIX)["Contents"]]
    assert keys == ["models/1/model.zip"]


def test_sql_configuration_errors_name_the_problem(sqlite_url: str) -> None:
    with pytest.raises(ConfigError, match="known names: \\['churn'\\]"):
        SqlFiles.load("orders", SQL_DIR)
    with pytest.raises(ConfigError, match="must match"):
        SqlFiles.load("../etc/passwd", SQL_DIR)
    with pytest.raises(DataError, match="churn_training"):  # the table does not exist yet
        SqlReader(SqlFiles.load("churn", SQL_DIR), sqlite_url).read()
