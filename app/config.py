"""Process settings read once at start from the environment (the ECS task definition sets them).

Runtime settings that change without a redeploy live in :mod:`app.runtime_settings`; these here need a
restart. Every bad value stops the start with a message naming the variable and what is allowed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from app.capture.writer import OVERFLOW_POLICIES
from contracts.exit_codes import ExitCode

SERVICES = ("stage", "prod", "local")
# Inside the container /tmp is the task's own ephemeral storage, not a shared world-writable dir.
DEFAULT_SPOOL_DIR = "/tmp/capture-spool"  # noqa: S108
RUNTIME_CHOICES = ("onnx", "skops", "pickle")
FAILURE_POLICIES = ("alarm", "drain")  # what /ready does when capture fails too long (docs/app.md)
DEFAULT_SPOOL_MAX_BYTES = 1 << 30


class ConfigError(ValueError):
    """An environment variable has a value the app cannot use."""

    exit_code = ExitCode.CONFIG


def _int(env: Mapping[str, str], name: str, default: int, minimum: int, maximum: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer; allowed {minimum}..{maximum}") from None
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name}={value} is out of range; allowed {minimum}..{maximum}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, minimum: float, maximum: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number; allowed {minimum}..{maximum}") from None
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name}={value} is out of range; allowed {minimum}..{maximum}")
    return value


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    raw = env.get(name, "").strip().lower() or default
    if raw not in allowed:
        raise ConfigError(f"{name}={raw!r}: allowed {list(allowed)}")
    return raw


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "0").strip().lower()
    if raw in ("1", "true", "yes"):
        return True
    if raw in ("", "0", "false", "no"):
        return False
    raise ConfigError(f"{name}={raw!r}: allowed 1/0 (or true/false)")


@dataclass(frozen=True)
class AppConfig:
    """Everything the process needs to start; see docs/app.md for the table of variables."""

    model_dir: str = "/opt/model"
    host: str = "0.0.0.0"  # noqa: S104 - the container must listen on its interface; local runs pass --host
    port: int = 8080
    workers: int = 2
    service_name: str = "local"
    capture_s3_uri: str | None = None
    capture_db_url: str | None = None
    spool_dir: str = DEFAULT_SPOOL_DIR
    settings_source: str | None = None
    settings_refresh_seconds: float = 30.0
    sentry_dsn: str | None = None
    allow_pickle: bool = False
    model_runtime: str | None = None
    max_batch_size: int = 64
    max_batch_wait_ms: float = 2.0
    max_body_bytes: int = 1 << 20
    log_level: str = "INFO"
    capture_flush_records: int = 1000
    capture_flush_seconds: float = 5.0
    capture_queue_size: int = 100_000
    capture_retry_max_seconds: float = 30.0
    capture_spool_max_bytes: int = DEFAULT_SPOOL_MAX_BYTES
    capture_spool_overflow: str = "drop_oldest"
    capture_unhealthy_seconds: float = 300.0
    capture_failure_policy: str = "alarm"
    capture_emf_seconds: float = 0.0
    max_records_per_request: int = 1000
    http_max_header_bytes: int = 16384
    http_header_timeout_seconds: float = 10.0
    http_body_timeout_seconds: float = 30.0
    http_keepalive_seconds: float = 5.0
    http_max_connections: int = 1000

    @property
    def db_url(self) -> str | None:
        """The SQL capture sink's URL, or None: no SQL capture unless configured.

        Why no SQLite default any more: a file on the task's ephemeral volume, never pruned, filled the disk
        the spool needs (issue #13). A local run that wants SQL capture sets ``CAPTURE_DB_URL=sqlite:///...``.
        """
        return self.capture_db_url

    @property
    def settings_location(self) -> str:
        return self.settings_source or f"file:{Path(self.spool_dir) / 'runtime-settings.json'}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AppConfig:
        env = os.environ if env is None else env
        service = env.get("SERVICE_NAME", "local").strip() or "local"
        if service not in SERVICES:
            raise ConfigError(f"SERVICE_NAME={service!r}: allowed {list(SERVICES)}")
        s3_uri = env.get("CAPTURE_S3_URI", "").strip() or None
        if s3_uri is not None and (not s3_uri.startswith("s3://") or len(s3_uri) <= len("s3://")):
            raise ConfigError(f"CAPTURE_S3_URI={s3_uri!r}: expected s3://bucket[/prefix]")
        runtime = env.get("MODEL_RUNTIME", "").strip() or None
        if runtime is not None and runtime not in RUNTIME_CHOICES:
            raise ConfigError(
                f"MODEL_RUNTIME={runtime!r}: allowed {list(RUNTIME_CHOICES)} (unset = onnx, skops fallback)"
            )
        source = env.get("SETTINGS_SOURCE", "").strip() or None
        if source is not None and not source.startswith(("ssm:", "file:")):
            raise ConfigError(f"SETTINGS_SOURCE={source!r}: expected 'ssm:/parameter/name' or 'file:/path.json'")
        level = env.get("LOG_LEVEL", "INFO").strip().upper() or "INFO"
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ConfigError(f"LOG_LEVEL={level!r}: allowed DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return cls(
            model_dir=env.get("MODEL_DIR", "/opt/model").strip() or "/opt/model",
            port=_int(env, "PORT", 8080, 1, 65535),
            workers=_int(env, "WORKERS", 2, 1, 64),
            service_name=service,
            capture_s3_uri=s3_uri,
            capture_db_url=env.get("CAPTURE_DB_URL", "").strip() or None,
            spool_dir=env.get("SPOOL_DIR", "").strip() or DEFAULT_SPOOL_DIR,
            settings_source=source,
            settings_refresh_seconds=_float(env, "SETTINGS_REFRESH_SECONDS", 30.0, 0.05, 86400),
            sentry_dsn=env.get("SENTRY_DSN", "").strip() or None,
            allow_pickle=_flag(env, "ALLOW_PICKLE"),
            model_runtime=runtime,
            max_batch_size=_int(env, "MAX_BATCH_SIZE", 64, 1, 4096),
            max_batch_wait_ms=_float(env, "MAX_BATCH_WAIT_MS", 2.0, 0.0, 1000.0),
            max_body_bytes=_int(env, "MAX_BODY_BYTES", 1 << 20, 1024, 1 << 30),
            log_level=level,
            capture_flush_records=_int(env, "CAPTURE_FLUSH_RECORDS", 1000, 1, 1_000_000),
            capture_flush_seconds=_float(env, "CAPTURE_FLUSH_SECONDS", 5.0, 0.01, 3600),
            capture_queue_size=_int(env, "CAPTURE_QUEUE_SIZE", 100_000, 10, 10_000_000),
            capture_retry_max_seconds=_float(env, "CAPTURE_RETRY_MAX_SECONDS", 30.0, 0.05, 3600),
            capture_spool_max_bytes=_int(env, "CAPTURE_SPOOL_MAX_BYTES", DEFAULT_SPOOL_MAX_BYTES, 1 << 20, 1 << 40),
            capture_spool_overflow=_choice(env, "CAPTURE_SPOOL_OVERFLOW", "drop_oldest", OVERFLOW_POLICIES),
            capture_unhealthy_seconds=_float(env, "CAPTURE_UNHEALTHY_SECONDS", 300.0, 1.0, 86400),
            capture_failure_policy=_choice(env, "CAPTURE_FAILURE_POLICY", "alarm", FAILURE_POLICIES),
            capture_emf_seconds=_float(env, "CAPTURE_EMF_SECONDS", 0.0, 0.0, 3600),
            max_records_per_request=_int(env, "MAX_RECORDS_PER_REQUEST", 1000, 1, 100_000),
            http_max_header_bytes=_int(env, "HTTP_MAX_HEADER_BYTES", 16384, 1024, 1 << 20),
            http_header_timeout_seconds=_float(env, "HTTP_HEADER_TIMEOUT_SECONDS", 10.0, 0.1, 3600),
            http_body_timeout_seconds=_float(env, "HTTP_BODY_TIMEOUT_SECONDS", 30.0, 0.1, 3600),
            http_keepalive_seconds=_float(env, "HTTP_KEEPALIVE_SECONDS", 5.0, 0.1, 3600),
            http_max_connections=_int(env, "HTTP_MAX_CONNECTIONS", 1000, 1, 100_000),
        )


def spool_dir_problem(spool_dir: str) -> str | None:
    """Why the capture spool cannot be used, or ``None``: checked once at start, so an unwritable directory
    stops the app with one line naming SPOOL_DIR and the fix instead of a traceback in every worker.

    The usual cause (issue #12, defect 1): on Fargate a task's bind mount is an empty directory owned by
    root, mode 0755, unless the image declares the mount path as ``VOLUME``, in which case the image's
    directory content and ownership are copied into it (ECS Developer Guide, "Use bind mounts with Amazon
    ECS", "Bind mount examples"); the app runs as a non-root user.
    """
    import tempfile

    path = Path(spool_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-probe-"):
            pass
    except OSError as exc:
        return (
            f"SPOOL_DIR={spool_dir} is not writable by uid {os.getuid()} ({exc.strerror}: {exc.filename}). "
            "The capture spool needs a writable directory: on ECS/Fargate mount a volume at the spool's "
            "parent and declare that same path as VOLUME in the image over a directory owned by the app "
            "user (docker/app.Dockerfile; docs/app.md), or set SPOOL_DIR to a writable path"
        )
    return None
