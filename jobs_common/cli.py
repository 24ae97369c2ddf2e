"""How every command line ends: the exit status from the one table and one clear line saying why.

retrain, monitor, inference, evaluation and release run their command through :func:`run_command`, so a
failure looks the same whichever printed it and exits with the number ``docs/exit-codes.md`` gives it. The
line appears once on stderr: as an ERROR log record where the process logs there (structured where it logs
JSON, for CloudWatch Logs Insights), else printed.

- an error that carries an ``exit_code`` (``model_package.errors.PackageError`` and its family, the jobs'
  ``RetrainError`` family, ``JobConfigError``/``InputDataError``, release's ``ReleaseError`` family, the
  evaluation's ``ConfigError``) exits with it;
- for a command that reads a user's table (monitor, inference) any other ``ValueError`` (a rejected
  value) or ``OSError`` (an unreadable file) is bad input and exits ``BAD_DATA``;
- anything else is a bug: it keeps its traceback and Python's exit 1 (``ExitCode.UNEXPECTED``).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from contracts.exit_codes import ExitCode

LOG = logging.getLogger(__name__)
BAD_INPUT: tuple[type[Exception], ...] = (ValueError, OSError)
"""What a command reading a user's table treats as bad input when the error has no code of its own."""


def exit_code_of(exc: BaseException, bad_input: tuple[type[Exception], ...] = ()) -> ExitCode | None:
    """The documented status for ``exc``, or ``None`` when it is a bug (to be raised with its traceback)."""
    code = getattr(exc, "exit_code", None)
    if isinstance(code, int) and not isinstance(code, bool):
        return ExitCode(code)
    if bad_input and isinstance(exc, bad_input):
        return ExitCode.BAD_DATA
    return None


def failure_line(program: str, exc: BaseException, code: ExitCode) -> str:
    """``<program>: <ErrorKind> (exit <n> <NAME>): <message>``: what failed, why, and the status it exits."""
    return f"{program}: {type(exc).__name__} (exit {int(code)} {code.name}): {exc}"


def run_command(command: Callable[[], int], *, program: str, bad_input: tuple[type[Exception], ...] = ()) -> int:
    """Run ``command`` and turn an anticipated failure into its exit status with one clear line.

    ``program`` names the command as a user typed it (``monitor drift``); ``bad_input`` is
    :data:`BAD_INPUT` for the commands that read a user's table.
    """
    try:
        return int(command())
    except Exception as exc:
        code = exit_code_of(exc, bad_input)
        if code is None:
            raise
        line = failure_line(program, exc, code)
        if _logging_reaches_stderr():
            LOG.error("%s", line, extra={"exit_code": int(code), "error": type(exc).__name__})
        else:
            print(line, file=sys.stderr)
        return code


def _logging_reaches_stderr() -> bool:
    """Whether an ERROR record already lands on stderr (the jobs log there; Batch and CodeBuild ship it to
    CloudWatch Logs): then the line goes through logging (structured where the job logs JSON), else it is
    printed, and either way it appears exactly once."""
    root = logging.getLogger()
    return any(
        isinstance(handler, logging.StreamHandler) and handler.stream is sys.stderr and handler.level <= logging.ERROR
        for handler in root.handlers
    ) and root.isEnabledFor(logging.ERROR)
