"""Process settings read once at start from the environment (the ECS task definition sets them).

The variables, their types, ranges and defaults are ``contracts.environment.AppEnvironment``: infra writes the
task definition from that class and :meth:`AppConfig.from_env` reads it.

Runtime settings that change without a redeploy live in :mod:`app.runtime_settings`; these here need a
restart. Every bad value stops the start with a message naming the variable and what is allowed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from app.capture.sql_process import check_url as check_db_url
from contracts.environment import AppEnvironment
from contracts.exit_codes import ExitCode

# The variables' defaults are AppEnvironment's; AppConfig repeats them for processes built in code (tests),
# and tests/app/test_settings.py checks that the two agree.
DEFAULT_SPOOL_DIR: str = AppEnvironment.model_fields["spool_dir"].default
DEFAULT_SPOOL_MAX_BYTES: int = AppEnvironment.model_fields["capture_spool_max_bytes"].default


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"  # every process of the app logs alike


class ConfigError(ValueError):
    """An environment variable has a value the app cannot use."""

    exit_code = ExitCode.CONFIG


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
    # The service name in the prediction-distribution EMF lines (contracts.prediction_metrics.SERVICE_NAME_ENV);
    # None: that metric is off (a local run has no alarm reading it).
    prediction_metrics_service: str | None = None

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
        """The variables (names, types, ranges: ``contracts.environment.AppEnvironment``, the class infra writes
        the task definition from), plus the format checks of the URIs."""
        read = AppEnvironment.from_env(env, error=ConfigError)
        s3_uri = read.capture_s3_uri
        if s3_uri is not None and (not s3_uri.startswith("s3://") or len(s3_uri) <= len("s3://")):
            raise ConfigError(f"CAPTURE_S3_URI={s3_uri!r}: expected s3://bucket[/prefix]")
        if read.capture_db_url is not None:
            try:
                check_db_url(read.capture_db_url)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        source = read.settings_source
        if source is not None and not source.startswith(("ssm:", "file:")):
            raise ConfigError(f"SETTINGS_SOURCE={source!r}: expected 'ssm:/parameter/name' or 'file:/path.json'")
        return cls(**{name: getattr(read, name) for name in _FROM_ENVIRONMENT})


# Every AppConfig field the environment sets (``host`` comes from the command line only).
_FROM_ENVIRONMENT = tuple(name for name in AppConfig.__dataclass_fields__ if name in AppEnvironment.model_fields)


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
