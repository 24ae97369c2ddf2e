"""Capture privacy (issue #17 item 4): the keyed hash and the policy checks shared by the app and the monitor.

Here, not in ``app/``, because both images carry ``model_package`` and the monitor must hash baseline
categories exactly as the app hashes captured values.

``keep`` (the default) stores the value as sent; ``hash`` stores ``HMAC-SHA256(key, value)`` as hex, so equal
values still join across records (and drift can compare distributions) but cannot be read back or
brute-forced from a small domain without the key; ``drop`` removes the feature from the capture record.

The policy lives in the runtime settings (``capture_policy``, docs/app.md "Capture privacy"); the key comes
from Secrets Manager through the ECS task definition's ``secrets`` entry as the environment variable
:data:`HASH_KEY_ENV` (the drift job gets it the same way).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from contracts.environment import CapturePrivacyEnvironment

CaptureAction = Literal["keep", "hash", "drop"]
ACTIONS: tuple[str, ...] = ("keep", "hash", "drop")
# Infra names the secret it injects by this (contracts.environment.CapturePrivacyEnvironment).
HASH_KEY_ENV = CapturePrivacyEnvironment.variable("capture_hash_key")
HASH_PREFIX = "hmac-sha256:"  # marks a hashed value in the record, so no reader mistakes it for a real one
MIN_KEY_BYTES = 16


class CapturePolicyError(ValueError):
    """The policy cannot be applied; the message names the feature or key and what is allowed."""


def hash_value(key: bytes, value: Any) -> str | None:
    """Keyed hash of one value; ``None`` stays ``None`` (null rates stay measurable).

    Numbers are hashed by their JSON text (``int`` 3 and ``float`` 3.0 differ, as they do in the record).
    """
    if value is None:
        return None
    text = value if isinstance(value, str) else repr(value)
    return HASH_PREFIX + hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


def key_from_env(environ: Mapping[str, str] | None = None) -> bytes | None:
    """The HMAC key, or ``None`` when unset/empty. A key shorter than 16 bytes is refused: guessable."""
    # The length check stays here, not in the class: a validation error would echo the value, i.e. the key.
    secret = CapturePrivacyEnvironment.from_env(environ, error=CapturePolicyError).capture_hash_key
    if secret is None:
        return None
    key = secret.get_secret_value().encode("utf-8")
    if len(key) < MIN_KEY_BYTES:
        raise CapturePolicyError(f"{HASH_KEY_ENV} is {len(key)} bytes; at least {MIN_KEY_BYTES} are required")
    return key


def check_policy(policy: Mapping[str, str], features: Iterable[str], key: bytes | None) -> None:
    """Refuse an unknown feature, an unknown action, or ``hash`` without a key (before anything is captured)."""
    known = list(features)
    unknown = sorted(set(policy) - set(known))
    if unknown:
        raise CapturePolicyError(f"capture_policy names unknown feature(s) {unknown}; the model's features: {known}")
    bad = {name: action for name, action in policy.items() if action not in ACTIONS}
    if bad:
        raise CapturePolicyError(f"capture_policy: {bad} not allowed; each action must be one of {list(ACTIONS)}")
    hashed = sorted(name for name, action in policy.items() if action == "hash")
    if hashed and key is None:
        raise CapturePolicyError(
            f"capture_policy hashes {hashed} but {HASH_KEY_ENV} is not set: the key comes from the Secrets "
            "Manager secret (stack config captureHashKey, docs/app.md 'Capture privacy'); refusing to capture "
            "those values unhashed"
        )
