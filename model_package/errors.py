"""Errors raised while reading or checking a model package.

Each error carries an ``exit_code`` so command-line entry points (``python -m retrain verify``,
the app's start-up) can turn it into a documented process exit status without a lookup table
of their own.
"""

from __future__ import annotations

import sys
from collections.abc import Callable


class PackageError(Exception):
    """A model package cannot be used. The message names the file or field and what is allowed."""

    exit_code = 2


class ManifestError(PackageError):
    """``manifest.json`` is missing, is not JSON, or a field is absent or of the wrong kind."""

    exit_code = 3


class IntegrityError(PackageError):
    """A file's sha256 differs from the manifest, or a listed file is missing or unlisted."""

    exit_code = 4


class SchemaError(PackageError):
    """The feature schema is absent or inconsistent (duplicate names, min > max, ...)."""

    exit_code = 5


class ParityError(PackageError):
    """The ONNX model and the fitted estimator disagree on the stored parity sample."""

    exit_code = 6


def run_command(command: Callable[[], int]) -> int:
    """Run a job's command line and turn its failure into the documented exit status, with one clear line.

    A :class:`PackageError` exits with its own code (2-6, ``docs/model-package.md``); bad input that a
    command rejects (``ValueError``) or cannot read (``OSError``) exits 2. Anything else is a bug and keeps
    its traceback.
    """
    try:
        return int(command())
    except PackageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
