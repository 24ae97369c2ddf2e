"""The capture record (contract 3): one JSON object per prediction, ``uid`` is the dedup key."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def capture_records(
    *,
    uids: Sequence[str],
    inputs: Sequence[Mapping[str, Any]],
    predictions: Sequence[int],
    probabilities: Sequence[float],
    time: str,
    service: str,
    model_name: str,
    model_version: int,
    latency_ms: float,
) -> list[dict[str, Any]]:
    return [
        {
            "uid": uid,
            "time": time,
            "service": service,
            "model_name": model_name,
            "model_version": model_version,
            "input": record,
            "output": {"prediction": prediction, "probability": probability},
            "latency_ms": latency_ms,
        }
        for uid, record, prediction, probability in zip(uids, inputs, predictions, probabilities, strict=True)
    ]
