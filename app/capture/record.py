"""The capture record (contract 3): one JSON object per scored prediction, ``uid`` is the dedup key.

Fields: ``uid``, ``time`` (ISO 8601 UTC, the answer time), ``service``, ``model_name``, ``model_version``,
``input`` (the record as sent), ``output`` (the answer in the user's labels, per task — binary
``{"label", "probability", "prediction"}``, multiclass ``{"label", "probabilities": {label: p}}``,
regression ``{"value"}``: the shapes of ``model_package.runtime.Predictions.record``, so the jobs read it
without importing the app), ``latency_ms``, and ``ids`` (the manifest's id columns found in the record;
only present when the model has id columns). Rejected records are not captured: they have no output.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# The answer keys per task inside ``output`` (readers in monitor/ use the same names).
OUTPUT_KEYS = {
    "binary": ("label", "probability", "prediction"),
    "multiclass": ("label", "probabilities"),
    "regression": ("value",),
}
IDS = "ids"


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
            "uid": uid,
            "time": time,
            "service": service,
            "model_name": model_name,
            "model_version": model_version,
            "input": record,
            "output": output,
            "latency_ms": latency_ms,
        }
        if ids is not None and ids[i]:
            item[IDS] = ids[i]
        records.append(item)
    return records
