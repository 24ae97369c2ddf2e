"""Drift on privacy-protected capture (issue #17 item 4, docs/monitoring.md "Capture privacy").

Capture stores a hashed feature as ``HMAC-SHA256(key, value)`` and leaves a dropped one out. The drift job
therefore judges what it can see:

- **hashed categorical**: the manifest's categories and baseline fractions are hashed with the same key
  (read from the same secret), so the chi-square/TVD/PSI tests compare like with like and a real shift in
  the raw categories is still flagged;
- **hashed numeric**: hashes have no order or distance, so the feature is not tested (a note says so);
- **dropped**: absent from capture, not tested (a note says so) instead of reported "missing".

The model cannot score hashed rows, so the predictor is not used (the captured probability is).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from contracts.environment import MonitorEnvironment
from jobs_common.capture import Observations
from model_package.capture_privacy import CapturePolicyError, check_policy, hash_value, key_from_env
from model_package.manifest import Manifest

# The app's runtime settings document: ssm:/name or file:/path.
SETTINGS_SOURCE_ENV = MonitorEnvironment.variable("capture_settings_source")


class CapturePrivacyView:
    """The drift job's view of one capture policy: what to hash, what to skip, and why."""

    def __init__(self, policy: Mapping[str, str], manifest: Manifest, key: bytes | None) -> None:
        check_policy(policy, manifest.feature_names, key)
        self.policy = {name: action for name, action in policy.items() if action != "keep"}
        self.key = key
        self.active = bool(self.policy)
        numeric = {spec.name for spec in manifest.features if spec.is_numeric}
        self.hashed = sorted(n for n, a in self.policy.items() if a == "hash" and n not in numeric)
        self.skipped = {
            n: "dropped from capture by the capture policy"
            if a == "drop"
            else "numeric and hashed in capture (hashes have no order), so not comparable to the baseline"
            for n, a in sorted(self.policy.items())
            if a == "drop" or n in numeric
        }

    def notes(self) -> list[str]:
        """One report line per feature the policy changes (docs/monitoring.md)."""
        lines = [f"{name}: not tested: {why}" for name, why in self.skipped.items()]
        lines += [f"{name}: tested on keyed hashes (capture policy hash)" for name in self.hashed]
        return lines

    def _hash(self, value: Any) -> str | None:
        return hash_value(self.key, value)  # type: ignore[arg-type]  # check_policy: a hash policy has a key

    def manifest(self, manifest: Manifest) -> Manifest:
        """Skipped features removed; hashed categoricals' categories and baseline fractions hashed."""
        features, baselines = [], []
        for spec in manifest.features:
            if spec.name in self.skipped:
                continue
            hashed = spec.name in self.hashed and spec.categories is not None
            categories = tuple(self._hash(c) for c in spec.categories or ()) if hashed else None
            features.append(spec.model_copy(update={"categories": categories}) if hashed else spec)
        for base in manifest.baseline:
            if base.name in self.skipped:
                continue
            fractions = {self._hash(c): f for c, f in base.category_fractions.items()}
            baselines.append(
                base.model_copy(update={"category_fractions": fractions}) if base.name in self.hashed else base
            )
        return manifest.model_copy(update={"features": tuple(features), "baseline": tuple(baselines)})

    def frame(self, frame: pd.DataFrame, already_hashed: bool) -> pd.DataFrame:
        """Skipped columns removed; the reference's raw categoricals hashed (capture's already are)."""
        out = frame.drop(columns=[c for c in self.skipped if c in frame.columns])
        if not already_hashed:
            for name in self.hashed:
                if name in out.columns:
                    out[name] = [None if pd.isna(v) else self._hash(v) for v in out[name]]
        return out

    def observations(self, observations: Observations) -> Observations:
        return replace(observations, inputs=self.frame(observations.inputs, already_hashed=True))


def read_policy(location: str, ssm_client: Any = None) -> dict[str, str]:
    """``capture_policy`` from the app's runtime settings document (missing document or key: keep all)."""
    if location.startswith("file:"):
        try:
            text: str | None = Path(location.removeprefix("file:")).read_text(encoding="utf-8")
        except FileNotFoundError:
            text = None
    elif location.startswith("ssm:"):
        import boto3

        client = ssm_client or boto3.client("ssm")
        try:
            text = client.get_parameter(Name=location.removeprefix("ssm:"), WithDecryption=True)["Parameter"]["Value"]
        except client.exceptions.ParameterNotFound:
            text = None
    else:
        raise CapturePolicyError(f"{SETTINGS_SOURCE_ENV}={location!r}: expected 'ssm:/name' or 'file:/path.json'")
    if text is None:
        return {}
    try:
        policy = json.loads(text).get("capture_policy", {})
    except (json.JSONDecodeError, AttributeError) as exc:
        raise CapturePolicyError(f"{location}: not a JSON object with 'capture_policy' ({exc})") from exc
    if not isinstance(policy, dict):
        raise CapturePolicyError(f"{location}: capture_policy must be an object feature -> keep|hash|drop")
    return policy


def privacy_from_env(manifest: Manifest, environ: Mapping[str, str] | None = None) -> CapturePrivacyView | None:
    """The view for the drift job: ``None`` when no settings source is configured (capture kept raw)."""
    location = MonitorEnvironment.from_env(environ, error=CapturePolicyError).capture_settings_source
    if location is None or not location.strip():
        return None
    view = CapturePrivacyView(read_policy(location.strip()), manifest, key_from_env(environ))
    return view if view.active else None
