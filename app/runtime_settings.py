"""Settings operators change without a redeploy: decision threshold, violation policies, capture on/off.

They come from a :class:`SettingsSource` (SSM Parameter Store in AWS, a JSON file locally) and a
:class:`SettingsRefresher` re-reads it on an interval. A bad document is refused with a log line and the
last good settings stay in force, so a typo in the console can never take the service down.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Protocol

from contracts.runtime_settings import RuntimeSettings, SettingsError, parse_settings

log = logging.getLogger("app.settings")

# The document itself (keys, allowed values, defaults) is a contract infra shares: contracts/runtime_settings.py.
__all__ = [
    "FileSettingsSource",
    "RuntimeSettings",
    "SettingsError",
    "SettingsRefresher",
    "SettingsSource",
    "SsmSettingsSource",
    "parse_settings",
    "source_from_location",
]


class SettingsSource(Protocol):
    """Where the document lives. ``read`` returns ``None`` when there is no document (= defaults)."""

    description: str

    def read(self) -> str | bytes | None: ...


class FileSettingsSource:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.description = f"file:{self.path}"

    def read(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None


class SsmSettingsSource:
    """An SSM String parameter; the client honours ``AWS_ENDPOINT_URL`` (tests point it at moto)."""

    def __init__(self, name: str, client: Any = None) -> None:
        self.name = name
        self.description = f"ssm:{name}"
        self._client = client

    def read(self) -> str | None:
        if self._client is None:
            import boto3

            self._client = boto3.client("ssm")
        try:
            value: str = self._client.get_parameter(Name=self.name, WithDecryption=True)["Parameter"]["Value"]
            return value
        except self._client.exceptions.ParameterNotFound:
            return None


def source_from_location(location: str, client: Any = None) -> SettingsSource:
    if location.startswith("ssm:"):
        return SsmSettingsSource(location.removeprefix("ssm:"), client)
    if location.startswith("file:"):
        return FileSettingsSource(location.removeprefix("file:"))
    raise SettingsError(f"settings source {location!r}: expected 'ssm:/name' or 'file:/path.json'")


class SettingsRefresher:
    """Holds the current settings; a daemon thread re-reads the source every ``interval`` seconds."""

    def __init__(self, source: SettingsSource, interval: float, on_change: Any = None, validate: Any = None) -> None:
        self.source = source
        self._validate = validate  # raises SettingsError: checks needing the model (capture privacy hook)
        self.checked: Any = None  # what ``validate`` returned for ``current``
        # True once a document (or its confirmed absence) has been read and accepted. Until then the
        # capture policy is unknown and the app holds capture (privacy fails closed; app/factory.py).
        self.policy_known = False
        self.interval = interval
        self.current = RuntimeSettings()
        self.last_error: str | None = None
        self.refreshes = 0
        self._on_change = on_change
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> RuntimeSettings:
        """One read. Unreadable source or bad document: log, keep the last good settings."""
        try:
            raw = self.source.read()
            new = RuntimeSettings() if raw is None else parse_settings(raw, self.source.description)
            checked = self._validate(new) if self._validate is not None else None
        except SettingsError as exc:
            self._reject(str(exc))
            return self.current
        except Exception as exc:  # network/permission errors from the source: same policy as a bad value
            self._reject(f"{self.source.description}: cannot be read ({type(exc).__name__}: {exc})")
            return self.current
        self.last_error = None
        self.refreshes += 1
        first_read, self.policy_known = not self.policy_known, True
        if new != self.current or first_read:
            log.info("runtime settings from %s: %s", self.source.description, new.model_dump())
            self.current, self.checked = new, checked
            if self._on_change is not None:
                self._on_change(new)
        return self.current

    def _reject(self, message: str) -> None:
        from app import metrics

        metrics.SETTINGS_REJECTED.inc()
        if message != self.last_error:
            log.error(
                "runtime settings rejected, keeping the last good ones %s: %s", self.current.model_dump(), message
            )
        self.last_error = message
        self.refreshes += 1

    def start(self) -> None:
        self.refresh()
        self._thread = threading.Thread(target=self._run, name="settings-refresh", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.refresh()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
