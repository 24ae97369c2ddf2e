"""Errors of the build and release steps, each with the process exit status it maps to.

The codes continue after the model package's (2-6, ``model_package.errors``) so that one table in
``docs/build.md`` covers every status a pipeline log can show.
"""

from __future__ import annotations


class ReleaseError(Exception):
    """A build or release step cannot go on; the message names what is wrong and what is allowed."""

    exit_code = 7


class ConfigurationError(ReleaseError):
    """An environment variable or argument is missing or malformed."""

    exit_code = 8


class ImageNotFoundError(ReleaseError):
    """The image tag asked for is not in the ECR repository."""

    exit_code = 9


class ReleaseStateError(ReleaseError):
    """The bucket or a job definition disagrees with the build record; nothing past this point was changed."""

    exit_code = 10
