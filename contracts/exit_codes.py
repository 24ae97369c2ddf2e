"""The one table of process exit statuses: the app, every job (retrain, monitor, inference) and release.

Why one table: a pipeline log, a Batch job's ``exitCode`` or an ECS stopped-task reason shows only the
number, so a number must mean the same thing whichever command printed it (before this module 9 was
"upload refused" in retrain and "image not found" in release, 2 was both "package unusable" and "bad
input", and a busy port exited 3, the bad-manifest code). Every entry point returns a member of
:class:`ExitCode`; error classes carry one as ``exit_code``; ``tests`` grep for bare integers.

Codes 0-10 and 64 keep the meanings documented before this table existed (``verify`` 0/2-6, retrain
7/8/9, release 8/10, usage 64); codes that changed meaning moved to new numbers (release 7 -> 11,
release 9 -> 12). ``docs/exit-codes.md`` is this table for humans; keep the two in step.
"""

from __future__ import annotations

import argparse
import sys
from enum import IntEnum
from typing import NoReturn


class ExitCode(IntEnum):
    """Process exit status of every ml-delivery command. Each value has exactly one meaning."""

    OK = 0
    """Done. For ``retrain run`` also a rejected or unchanged candidate; for drift also "drift found"."""

    UNEXPECTED = 1
    """An error nobody anticipated (a bug, or an AWS call failing for an unlisted reason); the log has
    the traceback. Python's own status for an uncaught exception, so it must stay "unexpected"."""

    PACKAGE_UNUSABLE = 2
    """The model package cannot be used: not a zip, unsafe member, no runtime can load the model."""

    MANIFEST_INVALID = 3
    """``manifest.json`` is missing, not JSON, or a field is absent or invalid."""

    INTEGRITY = 4
    """A package file's sha256 differs from the manifest, a listed file is missing or an unlisted one
    present, or ``--expect-sha256`` does not match."""

    SCHEMA = 5
    """The feature schema is absent or inconsistent, or disagrees with the ONNX graph / reference data."""

    PARITY = 6
    """ONNX and the fitted estimator disagree on the reference sample beyond the tolerance."""

    BAD_DATA = 7
    """The input data cannot be used and nothing was produced from it: training data (missing, unreadable,
    bad column names, bad cells, too large for memory, bad target), a drift/summary input that parses
    into one column, an inference input that is unreadable. The message names the file, column or row."""

    CONFIG = 8
    """A setting is missing or invalid: an environment variable, a settings file, a release argument
    whose format is wrong. The message names the variable and what is allowed."""

    UPLOAD_REFUSED = 9
    """The model bucket refused a write (the immutable versioned key already exists)."""

    RELEASE_STATE = 10
    """The bucket or a Batch job definition disagrees with the build record; nothing past that point
    was changed (release ``record``)."""

    RELEASE_FAILED = 11
    """A build or release step cannot go on for a reason that is not one of the more precise codes
    (e.g. the ECR repository does not exist). Was 7 before this table."""

    IMAGE_NOT_FOUND = 12
    """The image tag asked for is not in the ECR repository (``release image-digest`` without
    ``--missing-ok``). Was 9 before this table."""

    PORT_IN_USE = 13
    """The app could not bind its listen address (port in use, or not permitted). Before this table
    uvicorn's own 3 leaked out and read as "manifest invalid"."""

    SERVER_FAILED = 14
    """The app's server stopped without a clean shutdown: a worker process died or could not start, or
    the parent lost its workers (e.g. only the parent was killed and restarted)."""

    CAPTURE_NOT_SAVED = 15
    """The app stopped but some captured predictions could not be delivered or spooled (a sink failed
    at shutdown, or the spool directory is not writable). The log names the sink and the count."""

    INSUFFICIENT_DATA = 16
    """Too few rows to judge: a drift window below the configured minimum row count. Nothing was
    concluded ("no drift" would be a guess); the message gives the count, the minimum and the window."""

    CANDIDATE_REJECTED = 17
    """The Evaluate stage judged the candidate worse than the bar (a failed check: the champion gate on
    labelled data, replay agreement or score distance, stage smoke or latency). The report names the check."""

    USAGE = 64
    """The command line is wrong (unknown flag, missing argument, value out of range). BSD ``EX_USAGE``;
    argparse's own 2 would collide with :attr:`PACKAGE_UNUSABLE`. Environment variables are
    :attr:`CONFIG`, not usage."""

    TERMINATED = 143
    """Stopped by SIGTERM (128 + 15, the shell convention) after cleaning up: e.g. batch inference
    removed its partial staging files and wrote no output."""


class UsageArgumentParser(argparse.ArgumentParser):
    """``argparse`` parser whose usage errors exit :attr:`ExitCode.USAGE`, not argparse's 2.

    Pass it as ``parser_class`` to ``add_subparsers`` so sub-commands get it too.
    """

    def error(self, message: str) -> NoReturn:
        """Print usage and the message, then exit with the usage code (2 means "package unusable")."""
        self.print_usage(sys.stderr)
        self.exit(ExitCode.USAGE, f"{self.prog}: error: {message}\n")


__all__ = ["ExitCode", "UsageArgumentParser"]
