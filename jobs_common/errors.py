"""Errors of the jobs that are not about a model package (those live in ``model_package.errors``).

Raised by the shared readers, store and gate and by retrain and evaluation; ``RetrainError`` keeps its name
(retrain was their first user) as the base every one of them derives from.

Exit codes come from the one table, ``contracts.exit_codes.ExitCode`` (docs/exit-codes.md).
"""

from __future__ import annotations

from contracts.exit_codes import ExitCode


class RetrainError(Exception):
    """Base of the job's own failures."""

    exit_code = ExitCode.UNEXPECTED


class DataError(RetrainError):
    """The training data cannot be used: missing, unreadable, wrong columns/types, too few rows, bad target.

    Raised before anything is trained, so bad data never reaches the bucket.
    """

    exit_code = ExitCode.BAD_DATA


class ConfigError(RetrainError):
    """The job's settings (environment or flags) are missing or invalid."""

    exit_code = ExitCode.CONFIG


class UsageError(RetrainError):
    """A command-line argument has a value the command cannot use (e.g. an unknown output format)."""

    exit_code = ExitCode.USAGE


class UploadError(RetrainError):
    """The model bucket refused a write (e.g. the immutable versioned key already exists)."""

    exit_code = ExitCode.UPLOAD_REFUSED
