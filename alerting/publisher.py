"""Readable, de-duplicated alerts: what happened, how bad, and where to look."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

LOG = logging.getLogger(__name__)
# SNS: subject up to 100 ASCII characters (Publish API reference).
SUBJECT_LIMIT = 100


class Severity(StrEnum):
    INFO = "INFO"
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"


@dataclass(frozen=True)
class Alert:
    """``source`` + ``kind`` + ``dedup_key`` identify an alert for suppression; the rest is the message."""

    source: str  # e.g. "retrain", "monitor.drift", "inference"
    kind: str  # e.g. "drift-detected", "candidate-rejected"
    severity: Severity
    summary: str
    where_to_look: str
    details: dict[str, Any] = field(default_factory=dict)
    dedup_key: str = ""

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(f"{self.source}|{self.kind}|{self.dedup_key}".encode()).hexdigest()[:32]

    @property
    def subject(self) -> str:
        text = f"[{self.severity}] {self.source}: {self.summary}"
        text = text.encode("ascii", "replace").decode()
        return text if len(text) <= SUBJECT_LIMIT else text[: SUBJECT_LIMIT - 3] + "..."

    def message(self) -> str:
        lines = [
            f"What happened: {self.summary}",
            f"How bad: {self.severity}",
            f"Where to look: {self.where_to_look}",
        ]
        if self.details:
            lines += ["", "Details:", json.dumps(self.details, indent=2, sort_keys=True, default=str)]
        return "\n".join(lines)


class DedupStore(Protocol):
    def last_sent(self, fingerprint: str) -> datetime | None: ...
    def mark_sent(self, fingerprint: str, at: datetime) -> None: ...


class LocalDedupStore:
    """One JSON file of fingerprint -> last sent time, for local runs and tests."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def _load(self) -> dict[str, str]:
        try:
            sent: dict[str, str] = json.loads(self.path.read_text())
            return sent
        except FileNotFoundError:
            return {}

    def last_sent(self, fingerprint: str) -> datetime | None:
        value = self._load().get(fingerprint)
        return datetime.fromisoformat(value) if value else None

    def mark_sent(self, fingerprint: str, at: datetime) -> None:
        state = self._load()
        state[fingerprint] = at.isoformat()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, sort_keys=True))
        tmp.replace(self.path)


class S3DedupStore:
    """One small object per fingerprint under ``prefix`` in a bucket the jobs already write to."""

    def __init__(self, s3_client: Any, bucket: str, prefix: str = "alerts/sent/") -> None:
        self.s3, self.bucket, self.prefix = s3_client, bucket, prefix

    def last_sent(self, fingerprint: str) -> datetime | None:
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=f"{self.prefix}{fingerprint}.json")["Body"].read()
        except self.s3.exceptions.NoSuchKey:
            return None
        return datetime.fromisoformat(json.loads(body)["sent_at"])

    def mark_sent(self, fingerprint: str, at: datetime) -> None:
        self.s3.put_object(
            Bucket=self.bucket,
            Key=f"{self.prefix}{fingerprint}.json",
            Body=json.dumps({"sent_at": at.isoformat()}).encode(),
            ContentType="application/json",
        )


class AlertPublisher:
    """Publishes to SNS (or only logs when no topic is configured, e.g. local runs)."""

    def __init__(
        self,
        sns_client: Any | None,
        topic_arn: str | None,
        store: DedupStore,
        window: timedelta = timedelta(hours=6),
        clock: Any = None,
    ) -> None:
        self.sns, self.topic_arn, self.store, self.window = sns_client, topic_arn, store, window
        self._now = clock or (lambda: datetime.now(UTC))

    def publish(self, alert: Alert) -> bool:
        """Send unless the same alert went out within the window. Returns whether it was sent."""
        now = self._now()
        last = self.store.last_sent(alert.fingerprint)
        if last is not None and now - last < self.window:
            LOG.info("alert suppressed (sent %s ago): %s", now - last, alert.subject)
            return False
        if self.sns is not None and self.topic_arn:
            self.sns.publish(
                TopicArn=self.topic_arn,
                Subject=alert.subject,
                Message=alert.message(),
                MessageAttributes={
                    "severity": {"DataType": "String", "StringValue": str(alert.severity)},
                    "source": {"DataType": "String", "StringValue": alert.source},
                },
            )
        LOG.warning("alert: %s", alert.subject)
        self.store.mark_sent(alert.fingerprint, now)
        return True
