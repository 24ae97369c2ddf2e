"""Errors raised while reading or checking a model package.

Each error carries an ``exit_code`` (a member of :class:`contracts.exit_codes.ExitCode`, the one
table) so command-line entry points (``python -m retrain verify``, the app's start-up, the jobs) can turn
it into a documented process exit status without a lookup table of their own.
"""

from __future__ import annotations

from contracts.exit_codes import ExitCode


class PackageError(Exception):
    """A model package cannot be used. The message names the file or field and what is allowed."""

    exit_code = ExitCode.PACKAGE_UNUSABLE


class ManifestError(PackageError):
    """``manifest.json`` is missing, is not JSON, or a field is absent or of the wrong kind."""

    exit_code = ExitCode.MANIFEST_INVALID


class IntegrityError(PackageError):
    """A file's sha256 differs from the manifest, or a listed file is missing or unlisted."""

    exit_code = ExitCode.INTEGRITY


class SchemaError(PackageError):
    """The feature schema is absent or inconsistent (duplicate names, min > max, ...)."""

    exit_code = ExitCode.SCHEMA


class ParityError(PackageError):
    """The ONNX model and the fitted estimator disagree on the stored parity sample."""

    exit_code = ExitCode.PARITY


class JobConfigError(ValueError):
    """A job's setting (environment variable, settings file) is missing or invalid; names it and what is allowed."""

    exit_code = ExitCode.CONFIG


class InputDataError(ValueError):
    """A job's input data cannot be used (bad header, one column, unreadable); names the file and column."""

    exit_code = ExitCode.BAD_DATA


class InsufficientDataError(InputDataError):
    """Too few rows to conclude anything (e.g. a drift window below its minimum); gives count and minimum."""

    exit_code = ExitCode.INSUFFICIENT_DATA
