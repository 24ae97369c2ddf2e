"""Payload capture: every request and answer, off the request path, to S3 and a SQL table, never lost."""

from app.capture.record import capture_records
from app.capture.sinks import S3Sink, Sink, SqlSink
from app.capture.spool import Spool, claim_slot
from app.capture.writer import CaptureWriter, SinkWorker

__all__ = ["CaptureWriter", "S3Sink", "Sink", "SinkWorker", "Spool", "SqlSink", "capture_records", "claim_slot"]
