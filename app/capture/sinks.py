"""Where capture records end up: S3 (JSON lines, partitioned by dt/hour) and a SQL table.

Both writes are idempotent so the spool can replay after an ambiguous failure: the S3 key is derived
from the batch's first record, and the SQL insert ignores uids already stored.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlparse

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from app import metrics
from app.json_codec import dumps, dumps_text
from contracts.bucket_layout import capture_key, capture_prefix
from contracts.capture_record import IDS, PREDICTION, PROBABILITY, SQL_COLUMNS, SQL_JSON_COLUMNS

LOG = logging.getLogger(__name__)
CAPTURE_TABLE = "prediction_capture"
_COLUMNS = SQL_COLUMNS
_COLUMNS_WITHOUT_IDS = tuple(column for column in SQL_COLUMNS if column != IDS)


class Sink(Protocol):
    """Where records go. The writer holds every waiting batch as the spool's bytes only, and one optional
    method saves the deliverer the work of decoding them, holding the GIL: ``write_lines(records, lines)``,
    for a sink that takes JSON lines, gets its batches, live or replayed, as those bytes (``S3Sink``, and
    ``SqlProcessSink``, whose child process decodes them). ``write`` gets the records decoded.
    """

    name: str

    def write(self, records: Sequence[dict[str, Any]]) -> None:
        """Store all records or raise; a return means the sink has them durably."""


# Errors that say "this record can never be stored", as opposed to "the sink is down": the writer then
# splits the batch and quarantines only the offending records instead of retrying them forever.
_RECORD_ERRORS = KeyError | TypeError | ValueError


def parse_s3_uri(uri: str, service: str) -> tuple[str, str]:
    """``s3://bucket[/prefix]``; the prefix defaults to ``capture/<service>``."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"capture S3 URI {uri!r}: expected s3://bucket[/prefix]")
    prefix = parsed.path.strip("/") or capture_prefix(service)
    return parsed.netloc, prefix


def s3_key(prefix: str, records: Sequence[dict[str, Any]], worker: str) -> str:
    """The batch's key in the one capture layout (``contracts.bucket_layout``, read by the jobs)."""
    first = records[0]
    return capture_key(prefix, datetime.fromisoformat(first["time"]), worker, first["uid"])


class S3Sink:
    """One object per batch. The client is injected (tests) or built with short timeouts (a down endpoint
    must send records to the spool quickly, not hold the drain thread for minutes)."""

    name = "s3"

    def __init__(self, bucket: str, prefix: str, worker: str, client: Any = None) -> None:
        self.bucket, self.prefix, self.worker = bucket, prefix.strip("/"), worker
        if client is None:
            import boto3
            from botocore.config import Config

            client = boto3.client(
                "s3",
                config=Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 2, "mode": "standard"}),
            )
        self.client = client

    @staticmethod
    def permanent(exc: BaseException) -> bool:
        """A request S3 will refuse however often it is sent (400/413 other than a timeout), or a bad record.

        403 and 5xx stay transient: a missing permission or a throttled bucket is fixed by an operator or by
        time, and the records must wait for that, not be set aside.
        """
        from botocore.exceptions import ClientError, ParamValidationError

        if isinstance(exc, ParamValidationError | _RECORD_ERRORS):
            return True
        if isinstance(exc, ClientError):
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = exc.response.get("Error", {}).get("Code", "")
            return status in (400, 413) and code not in ("RequestTimeout", "SlowDown", "Throttling")
        return False

    def write(self, records: Sequence[dict[str, Any]]) -> None:
        self.write_lines(records, b"".join([dumps(r) + b"\n" for r in records]))

    def write_lines(self, records: Sequence[dict[str, Any]], lines: bytes) -> None:
        """Store ``lines``, the records already encoded as JSON lines (a replayed spool segment), as the
        batch's object: the key still comes from the first record, so a replay overwrites, never adds."""
        if not records:
            return
        self.client.put_object(
            Bucket=self.bucket,
            Key=s3_key(self.prefix, records, self.worker),
            Body=lines,
            ContentType="application/x-ndjson",
        )


def _db_time(text: str, sqlite: bool) -> Any:
    """UTC datetime for PostgreSQL/MySQL; for SQLite the text form SQLAlchemy's DateTime reads back."""
    if sqlite and len(text) == 32 and text.endswith("+00:00") and text[10] == "T":
        # The app's own stamps (``datetime.now(UTC).isoformat()``): slice instead of parse + format.
        return f"{text[:10]} {text[11:26]}"
    when = datetime.fromisoformat(text).astimezone(UTC)
    return when.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else when


_CAPTURE_TIME = sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def capture_table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        CAPTURE_TABLE,
        metadata,
        sa.Column("uid", sa.String(32), primary_key=True),
        # MySQL's DATETIME keeps whole seconds unless given a precision; capture times keep microseconds.
        sa.Column("time", _CAPTURE_TIME, nullable=False, index=True),
        sa.Column("service", sa.String(16), nullable=False),
        sa.Column("model_name", sa.String(64), nullable=False),
        # BIGINT: manifest versions are not capped at 2**31 (a timestamp-like version stopped all capture).
        sa.Column("model_version", sa.BigInteger, nullable=False),
        sa.Column("input", sa.JSON, nullable=False),
        sa.Column("output", sa.JSON, nullable=False),
        sa.Column("latency_ms", sa.Double, nullable=False),
        # The manifest's id columns found in the record (NULL when the model has none). A table created before
        # this column gets it on the app's first write (SqlSink._add_ids_column): adding a nullable column
        # without a default only changes the catalog (PostgreSQL "ALTER TABLE": no table rewrite; MariaDB's
        # instant ADD COLUMN), so a busy table is not locked for a rewrite.
        sa.Column(IDS, sa.JSON, nullable=True),
        # Binary only (1 = positive label, P(positive)); NULL for multiclass and regression, whose answer is
        # in ``output``. A table created before task types had NOT NULL here: docs/app.md gives the ALTER.
        sa.Column("prediction", sa.Integer, nullable=True),
        sa.Column("probability", sa.Double, nullable=True),  # Double: MySQL FLOAT is single precision
    )


# Rows per INSERT statement: 90 rows x 11 columns = 990 bound values, under SQLite's historical limit of 999
# (https://www.sqlite.org/limits.html#max_variable_number) and far under PostgreSQL's 65,535.
ROWS_PER_STATEMENT = 90
STATEMENT_TIMEOUT_MS = 30_000  # PostgreSQL: longest one capture statement may wait (e.g. on a lock)


class SqlSink:
    """The ``prediction_capture`` table via SQLAlchemy; SQLite by default, PostgreSQL/MySQL by URL."""

    name = "sql"

    def __init__(self, url: str, engine: sa.Engine | None = None) -> None:
        self.url = url
        self.engine = engine or self._engine(url)
        self.metadata = sa.MetaData()
        self.table = capture_table(self.metadata)
        self._created = False
        self._sqlite = self.engine.dialect.name == "sqlite"
        self._statements: dict[int, str] = {}
        # What this sink inserts: every column, or all but ``ids`` when the table lacks it and this
        # connection may not add it (then each record with ids counts in app_capture_ids_not_stored_total).
        self.columns: tuple[str, ...] = _COLUMNS

    @staticmethod
    def _engine(url: str) -> sa.Engine:
        backend = sa.make_url(url).get_backend_name()
        if backend == "sqlite":
            # Several workers share the file: wait for the lock instead of failing the batch.
            engine = sa.create_engine(url, connect_args={"timeout": 30})

            @sa.event.listens_for(engine, "connect")
            def _wal(dbapi_connection: Any, _record: Any) -> None:
                # WAL with synchronous=NORMAL, the combination SQLite recommends for WAL
                # (https://www.sqlite.org/pragma.html#pragma_synchronous): a commit survives a crash of
                # the app; only power loss or an OS crash may roll back the last commits, the same
                # exposure the in-memory capture queue already has (docs/app.md).
                dbapi_connection.execute("PRAGMA journal_mode=WAL")
                dbapi_connection.execute("PRAGMA synchronous=NORMAL")

            return engine
        connect_args: dict[str, Any] = {"connect_timeout": 3} if backend in ("postgresql", "mysql") else {}
        options = sa.make_url(url).query.get("options", "")
        if backend == "postgresql" and "statement_timeout" not in str(options):
            # A statement waiting on a table lock would otherwise hold the deliverer forever; the records are
            # safe in the spool either way, but an error makes the wait visible (log, metric) and retried.
            # https://www.postgresql.org/docs/current/runtime-config-client.html#GUC-STATEMENT-TIMEOUT
            # connect_args replace the URL's own ``options``, so those are kept in front.
            given = " ".join(options) if isinstance(options, tuple) else options
            connect_args["options"] = f"{given} -c statement_timeout={STATEMENT_TIMEOUT_MS}".strip()
        return sa.create_engine(url, pool_pre_ping=True, pool_size=2, connect_args=connect_args)

    @staticmethod
    def permanent(exc: BaseException) -> bool:
        """A row the database refuses on its content (out of range, constraint, bad value), not an outage."""
        if isinstance(exc, sa.exc.DataError | sa.exc.IntegrityError | _RECORD_ERRORS):
            return True
        return isinstance(exc, sa.exc.StatementError) and isinstance(exc.orig, _RECORD_ERRORS)

    def _statement(self, rows: int) -> str:
        """A raw multi-row INSERT per dialect, idempotent on uid, with the JSON columns passed as text.

        Why raw DBAPI SQL: SQLAlchemy's per-row bind processing cost twice the insert itself. Why many rows
        per statement: the driver releases the GIL around each statement it runs, and this thread shares the
        GIL with the request path; one statement per row made the two threads trade the GIL per row.
        """
        statement = self._statements.get(rows)
        if statement is not None:
            return statement
        dialect = self.engine.dialect.name
        columns = ", ".join(self.columns)
        if dialect == "sqlite":
            row = "(" + ", ".join("?" for _ in self.columns) + ")"
            head, tail = "INSERT", " ON CONFLICT (uid) DO NOTHING"
        elif dialect == "postgresql":
            row = "(" + ", ".join("%s::json" if c in SQL_JSON_COLUMNS else "%s" for c in self.columns) + ")"
            head, tail = "INSERT", " ON CONFLICT (uid) DO NOTHING"
        elif dialect in ("mysql", "mariadb"):
            row = "(" + ", ".join("%s" for _ in self.columns) + ")"
            head, tail = "INSERT IGNORE", ""
        else:
            raise ValueError(f"capture database {dialect!r} is not supported; use sqlite, postgresql or mysql")
        values = ", ".join([row] * rows)
        statement = f"{head} INTO {CAPTURE_TABLE} ({columns}) VALUES {values}{tail}"
        self._statements[rows] = statement
        return statement

    def _prepare_table(self) -> None:
        """Create the table if missing, and give a table created before ``ids`` its column."""
        self.metadata.create_all(self.engine, checkfirst=True)
        if IDS not in self._table_columns():
            self._add_ids_column()
        self.columns = _COLUMNS if IDS in self._table_columns() else _COLUMNS_WITHOUT_IDS
        self._statements.clear()
        self._statement(1)  # an unsupported dialect fails here, before any row is bound

    def _table_columns(self) -> set[str]:
        return {column["name"] for column in sa.inspect(self.engine).get_columns(CAPTURE_TABLE)}

    def _add_ids_column(self) -> None:
        column_type = self.table.c[IDS].type.compile(dialect=self.engine.dialect)
        statement = f"ALTER TABLE {CAPTURE_TABLE} ADD COLUMN {IDS} {column_type}"
        try:
            with self.engine.begin() as connection:
                connection.exec_driver_sql(statement)
        except sa.exc.DBAPIError as exc:
            if IDS in self._table_columns():
                return  # another worker added it first
            LOG.error(
                "capture table %s has no column %r and could not add it (%s: %s): records' ids "
                "are NOT stored in SQL (app_capture_ids_not_stored_total) until someone runs: %s",
                CAPTURE_TABLE, IDS, type(exc).__name__, str(exc).splitlines()[0], statement,
            )  # fmt: skip
            return
        LOG.warning("capture table %s: added the nullable column %r (%s)", CAPTURE_TABLE, IDS, statement)

    def _rows(self, records: Sequence[dict[str, Any]]) -> tuple[list[Any], int]:
        """One flat list of values for ``self.columns``, row after row, JSON columns as text; and how many
        records carry ids the table cannot hold (no ``ids`` column and no right to add it)."""
        columns = self.columns
        sqlite = self._sqlite
        with_ids = IDS in columns
        dumps = dumps_text
        values: list[Any] = []
        last_text, when = "", None
        ids_lost = 0
        for r in records:
            output = r["output"]
            if r["time"] != last_text:  # records of one request share a time: convert once
                last_text = r["time"]
                when = _db_time(last_text, sqlite)
            values += (
                r["uid"],
                when,
                r["service"],
                r["model_name"],
                r["model_version"],
                dumps(r["input"]),
                dumps(output),
                r["latency_ms"],
            )
            ids = r.get(IDS)
            if with_ids:
                values.append(dumps(ids) if ids else None)
            elif ids:
                ids_lost += 1
            values += (output.get(PREDICTION), output.get(PROBABILITY))
        return values, ids_lost

    def write(self, records: Sequence[dict[str, Any]]) -> None:
        ids_lost = self.store(records)
        if ids_lost:
            metrics.CAPTURE_IDS_NOT_STORED.labels(self.name).inc(ids_lost)

    def store(self, records: Sequence[dict[str, Any]]) -> int:
        """``write`` without the metric: returns how many records' ids the table could not hold, for the
        process that counts them (the SQL child process reports them to its worker, which serves /metrics)."""
        if not records:
            return 0
        self._ensure_table()
        values, ids_lost = self._rows(records)
        self._insert(values)
        return ids_lost

    def _ensure_table(self) -> None:
        if not self._created:
            self._prepare_table()
            self._created = True

    def _insert(self, values: list[Any]) -> None:
        width = len(self.columns)
        step = ROWS_PER_STATEMENT * width
        with self.engine.begin() as connection:
            for start in range(0, len(values), step):
                chunk = values[start : start + step]
                connection.exec_driver_sql(self._statement(len(chunk) // width), tuple(chunk))

    def close(self) -> None:
        self.engine.dispose()
