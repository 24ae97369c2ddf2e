"""Errors of the retrain job that are not about a model package (those live in ``model_package.errors``).

Exit codes continue the package family (2..6) so one table documents every status of ``python -m retrain``.
"""

from __future__ import annotations


class RetrainError(Exception):
    """Base of the job's own failures."""

    exit_code = 1


class DataError(RetrainError):
    """The training data cannot be used: missing, unreadable, wrong columns/types, too few rows, bad target.

    Raised before anything is trained, so bad data never reaches the bucket.
    """

    exit_code = 7


class ConfigError(RetrainError):
    """The job's settings (environment or flags) are missing or invalid."""

    exit_code = 8


class UploadError(RetrainError):
    """The model bucket refused a write (e.g. the immutable versioned key already exists)."""

    exit_code = 9


USAGE_EXIT_CODE = 64  # EX_USAGE: argparse's own 2 would collide with PackageError
