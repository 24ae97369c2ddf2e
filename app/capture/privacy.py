"""Capture privacy in the app: applies the checked policy to each captured input before it leaves the process.

The hash, the actions and the checks live in :mod:`model_package.capture_privacy` (shared with the monitor).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from model_package.capture_privacy import (
    HASH_KEY_ENV,
    CapturePolicyError,
    check_policy,
    hash_value,
    key_from_env,
)

__all__ = ["HASH_KEY_ENV", "CapturePolicyError", "CapturePrivacy", "hash_value", "key_from_env"]


class CapturePrivacy:
    """Applies one checked policy to capture inputs. ``keep`` for every feature is a no-op fast path."""

    def __init__(self, policy: Mapping[str, str], features: Sequence[str], key: bytes | None) -> None:
        check_policy(policy, features, key)
        self.policy = dict(policy)
        self._hash = sorted(n for n, a in policy.items() if a == "hash")
        self._drop = sorted(n for n, a in policy.items() if a == "drop")
        self._key = key
        self.active = bool(self._hash or self._drop)

    def apply(self, inputs: Sequence[Mapping[str, Any]]) -> Sequence[Mapping[str, Any]]:
        """New dicts with hashed/dropped features; the caller's records are not changed."""
        if not self.active:
            return inputs
        out: list[dict[str, Any]] = []
        for record in inputs:
            row = {name: value for name, value in record.items() if name not in self._drop}
            for name in self._hash:
                if name in row:
                    row[name] = hash_value(self._key, row[name])  # type: ignore[arg-type]  # checked: key set
            out.append(row)
        return out
