"""Errors of the build and release steps, each with the process exit status it maps to.

The codes come from the one table, ``contracts.exit_codes.ExitCode`` (docs/exit-codes.md), so a
status in a pipeline log means the same as in a job's.
"""

from __future__ import annotations

from contracts.exit_codes import ExitCode


class ReleaseError(Exception):
    """A build or release step cannot go on; the message names what is wrong and what is allowed."""

    exit_code = ExitCode.RELEASE_FAILED


class ConfigurationError(ReleaseError):
    """An environment variable or argument is missing or malformed."""

    exit_code = ExitCode.CONFIG


class ImageNotFoundError(ReleaseError):
    """The image tag asked for is not in the ECR repository."""

    exit_code = ExitCode.IMAGE_NOT_FOUND


class ReleaseStateError(ReleaseError):
    """The bucket or a job definition disagrees with the build record; nothing past this point was changed."""

    exit_code = ExitCode.RELEASE_STATE
