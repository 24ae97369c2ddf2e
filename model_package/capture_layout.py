"""The S3 key layout of captured predictions: written by the app, read by the drift and summary jobs.

Defined once here (``model_package`` is the one library both the serving image and the jobs image
carry) so the writer and the readers cannot drift apart. The layout is time-prefixed:

    <prefix>/dt=YYYY-MM-DD/hour=HH/<YYYYmmddTHHMMSSffffff>Z-<worker>-<uid>.jsonl

``dt``/``hour`` are the UTC time of the batch's first record. A reader of the window [since, until)
lists only the hour prefixes that window touches (:func:`hour_prefixes`), so the cost of a run grows
with the window, never with the bucket's history. A batch spans at most the app's flush interval, so
records of the window's first hour can sit in an object whose key is a few seconds earlier: readers
list whole hour partitions and filter records by their own ``time``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

CAPTURE_SUFFIX = ".jsonl"
HOUR = timedelta(hours=1)


def _utc(when: datetime) -> datetime:
    return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)


def hour_prefix(prefix: str, when: datetime) -> str:
    """``<prefix>/dt=YYYY-MM-DD/hour=HH/``: the partition holding batches that start in ``when``'s hour."""
    when = _utc(when)
    return f"{prefix.strip('/')}/dt={when:%Y-%m-%d}/hour={when:%H}/"


def capture_key(prefix: str, when: datetime, worker: str, uid: str) -> str:
    """The object key of one batch whose first record was made at ``when`` (idempotent for a replay)."""
    when = _utc(when)
    return f"{hour_prefix(prefix, when)}{when:%Y%m%dT%H%M%S%f}Z-{worker}-{uid}{CAPTURE_SUFFIX}"


def hour_prefixes(prefix: str, since: datetime, until: datetime) -> list[str]:
    """Every hour partition that can hold records of [since, until), oldest first."""
    since, until = _utc(since), _utc(until)
    if until <= since:
        return []
    hour = since.replace(minute=0, second=0, microsecond=0)
    prefixes = []
    while hour < until:
        prefixes.append(hour_prefix(prefix, hour))
        hour += HOUR
    return prefixes


__all__ = ["CAPTURE_SUFFIX", "capture_key", "hour_prefix", "hour_prefixes"]
