"""The runtime-settings document: what operators change without a redeploy, and its defaults.

The app re-reads it (``app/runtime_settings.py``: SSM Parameter Store in AWS, a JSON file locally) and infra
seeds the SSM parameter with :func:`default_document` (``infra/service/model_service.py``), so the keys, allowed
values and defaults are written once, here. Unknown keys and wrong types are refused with the key and what
is allowed; missing keys take the defaults.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class RuntimeSettings(BaseModel):
    """The settings document (JSON); unknown keys and wrong types are refused, missing keys take the defaults."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    decision_threshold: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5
    out_of_range: Literal["warn", "reject"] = "warn"
    # Per violation class (app/policies.py, docs/app.md "Serving policies"): reject the record, or score it
    # with a warning. Defaults are strict, as the app always was; operators relax them in the parameter
    # (unknown_category: missing, extra_feature: ignore, unexpected_null: impute).
    unknown_category: Literal["reject", "missing"] = "reject"
    extra_feature: Literal["reject", "ignore"] = "reject"
    unexpected_null: Literal["reject", "impute"] = "reject"
    capture_enabled: bool = True
    # Capture privacy (docs/app.md "Capture privacy"): feature -> keep | hash | drop; unnamed features: keep.
    capture_policy: dict[str, Literal["keep", "hash", "drop"]] = Field(default_factory=dict)


class SettingsError(ValueError):
    """The settings document cannot be used; the message says which key and what is allowed."""


def default_document() -> dict[str, Any]:
    """Every key with its default, as JSON values: the SSM parameter's first value."""
    return RuntimeSettings().model_dump(mode="json")


def parse_settings(text: str | bytes, source: str) -> RuntimeSettings:
    """The document in ``text`` (from ``source``, named in errors), or :class:`SettingsError` naming each bad key."""
    try:
        raw = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{source}: not valid JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise SettingsError(f"{source}: must be a JSON object with keys {sorted(RuntimeSettings.model_fields)}")
    if isinstance(raw.get("decision_threshold"), int) and not isinstance(raw.get("decision_threshold"), bool):
        raw["decision_threshold"] = float(raw["decision_threshold"])  # 1 is a fine threshold; strict mode refuses it
    try:
        return RuntimeSettings.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in exc.errors())
        raise SettingsError(f"{source}: {problems}") from exc


__all__ = ["RuntimeSettings", "SettingsError", "default_document", "parse_settings"]
