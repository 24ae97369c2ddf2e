"""Builds the capture record (``contracts.capture_record``: fields, per-task ``output`` keys, tables).

Rejected records are not captured: they have no output.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from contracts.capture_record import (
    IDS,
    INPUT,
    LATENCY_MS,
    MODEL_NAME,
    MODEL_VERSION,
    OUTPUT,
    OUTPUT_KEYS,
    SERVICE,
    TIME,
    UID,
)

__all__ = ["IDS", "OUTPUT_KEYS", "capture_records"]


def capture_records(
    *,
    uids: Sequence[str],
    inputs: Sequence[Mapping[str, Any]],
    outputs: Sequence[Mapping[str, Any] | None],
    time: str,
    service: str,
    model_name: str,
    model_version: int,
    latency_ms: float,
    ids: Sequence[Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Capture records of the scored rows (``outputs[i] is None`` marks a rejected row, left out)."""
    records = []
    for i, (uid, record, output) in enumerate(zip(uids, inputs, outputs, strict=True)):
        if output is None:
            continue
        item = {
            UID: uid,
            TIME: time,
            SERVICE: service,
            MODEL_NAME: model_name,
            MODEL_VERSION: model_version,
            INPUT: record,
            OUTPUT: output,
            LATENCY_MS: latency_ms,
        }
        if ids is not None and ids[i]:
            item[IDS] = ids[i]
        records.append(item)
    return records
