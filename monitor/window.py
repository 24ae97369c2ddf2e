"""Which capture the drift job reads: a bounded window, by default since the last successful report.

Why: the job used to read every capture record since the champion was trained. With a few prod tasks
and a champion a few weeks old that is millions of records, fetched one GET at a time into memory; the
2-hour timeout and 4 GiB ran out and the job failed every day. Now each run reads

- ``DRIFT_WINDOW_HOURS`` back from now when set (a fixed window), else
- from the end of the last successful report's window (``last-success.json`` beside the reports), else
- from the model's training time (its first run),

never before the model's ``created_at`` (older records were made by other models) and never more than
``DRIFT_MAX_WINDOW_HOURS`` (default 168, one week). A failed or refused run (too few rows) does not
move the marker, so the next run's window simply grows, up to the cap.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from model_package.manifest import Manifest

LOG = logging.getLogger(__name__)
LAST_SUCCESS_NAME = "last-success.json"
DEFAULT_MAX_WINDOW = timedelta(hours=168)


@dataclass(frozen=True)
class Window:
    """[since, until) in UTC and, for the report and the logs, why it starts where it does."""

    since: datetime
    until: datetime
    basis: str

    def to_dict(self) -> dict[str, str | None]:
        return {"since": self.since.isoformat(), "until": self.until.isoformat(), "basis": self.basis}


def report_root(report_prefix: str, manifest: Manifest) -> str:
    """``<REPORT_PREFIX>/<model>/v<version>``: where this model version's drift reports go."""
    return f"{report_prefix.strip('/')}/{manifest.name}/v{manifest.version}"


def drift_window(
    manifest: Manifest,
    now: datetime,
    last_success: datetime | None,
    fixed: timedelta | None = None,
    max_window: timedelta = DEFAULT_MAX_WINDOW,
) -> Window:
    """The window of this run (see the module docstring for the rules, in order)."""
    now = now.astimezone(UTC)
    created = manifest.created_at.astimezone(UTC)
    if fixed is not None:
        since, basis = now - fixed, f"fixed: DRIFT_WINDOW_HOURS={fixed / timedelta(hours=1):g}"
    elif last_success is not None:
        since, basis = last_success.astimezone(UTC), f"since the last successful report (until {last_success})"
    else:
        since, basis = created, "since the model was trained (no successful report yet)"
    if since < created:
        since, basis = created, basis + "; not before the model's created_at"
    if now - since > max_window:
        since = now - max_window
        basis += f"; capped at DRIFT_MAX_WINDOW_HOURS={max_window / timedelta(hours=1):g}"
    return Window(min(since, now), now, basis)


class RunLedger:
    """The ``last-success.json`` marker of one model version: written last by a successful run."""

    def __init__(self, s3_client: Any, bucket: str, root: str) -> None:
        self.s3, self.bucket, self.key = s3_client, bucket, f"{root.strip('/')}/{LAST_SUCCESS_NAME}"

    def last_success(self) -> datetime | None:
        from botocore.exceptions import ClientError

        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=self.key)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        try:
            return datetime.fromisoformat(json.loads(body)["until"])
        except (ValueError, KeyError, TypeError) as exc:
            # A damaged marker must not stop monitoring: fall back to the capped window, loudly.
            LOG.warning("s3://%s/%s is not a valid marker (%s); using the capped window", self.bucket, self.key, exc)
            return None

    def record_success(self, window: Window, report: str | None) -> None:
        body = json.dumps({**window.to_dict(), "report": report}, indent=2).encode()
        self.s3.put_object(Bucket=self.bucket, Key=self.key, Body=body, ContentType="application/json")
