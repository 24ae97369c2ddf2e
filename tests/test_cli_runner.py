"""One CLI runner (``jobs_common.cli.run_command``) ends every command line: retrain, monitor, inference,
evaluation and release exit with the table's status and one line ``<command>: <Error> (exit N NAME): why``.

Issue #15 item 6 ("what the jobs share ... CLI runner ... in one common layer"): before, retrain, release and
evaluation each printed their own way and the evaluation's configuration error had no exit code of its own.
"""

from __future__ import annotations

import ast
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from contracts.exit_codes import ExitCode
from jobs_common.cli import BAD_INPUT, exit_code_of, run_command
from model_package.errors import IntegrityError

ROOT = Path(__file__).resolve().parent.parent
COMMAND_LINES = ("retrain", "monitor", "inference", "evaluation", "release")


@pytest.mark.parametrize("package", COMMAND_LINES)
def test_every_command_line_ends_through_the_one_runner(package: str) -> None:
    tree = ast.parse((ROOT / package / "__main__.py").read_text())
    [main] = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "main"]
    calls = {node.func.id for node in ast.walk(main) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    assert "run_command" in calls, f"{package}/__main__.py main() does not end through jobs_common.cli.run_command"
    handlers = [node for node in ast.walk(main) if isinstance(node, ast.ExceptHandler)]
    assert handlers == [], f"{package}/__main__.py main() turns errors into statuses itself"


def test_an_error_with_a_code_exits_with_it_and_says_so_once(capsys: pytest.CaptureFixture[str]) -> None:
    def broken() -> int:
        raise IntegrityError("model.onnx: sha256 differs from the manifest")

    assert run_command(broken, program="retrain verify") == ExitCode.INTEGRITY
    err = capsys.readouterr().err
    assert err == "retrain verify: IntegrityError (exit 4 INTEGRITY): model.onnx: sha256 differs from the manifest\n"


def test_bad_input_is_bad_data_only_where_the_command_reads_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    def unreadable() -> int:
        raise ValueError("column 'tenure': could not convert 'x' to float")

    assert run_command(unreadable, program="monitor drift", bad_input=BAD_INPUT) == ExitCode.BAD_DATA
    assert "monitor drift: ValueError (exit 7 BAD_DATA): column 'tenure'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="could not convert"):  # a bug elsewhere keeps its traceback (exit 1)
        run_command(unreadable, program="release record")


def test_a_bug_is_raised_with_its_traceback() -> None:
    assert exit_code_of(KeyError("x")) is None and exit_code_of(OSError("disk"), BAD_INPUT) == ExitCode.BAD_DATA
    with pytest.raises(ZeroDivisionError):
        run_command(lambda: 1 // 0, program="inference run")


def test_where_logging_writes_to_stderr_the_line_is_one_log_record(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [handler])
    monkeypatch.setattr(root, "level", logging.INFO)

    def broken() -> int:
        raise IntegrityError("bad")

    assert run_command(broken, program="retrain verify") == ExitCode.INTEGRITY
    assert capsys.readouterr().err.splitlines() == [
        "ERROR jobs_common.cli: retrain verify: IntegrityError (exit 4 INTEGRITY): bad"
    ]


@pytest.mark.parametrize(
    ("argv", "env", "code", "line"),
    [
        (["retrain", "--plain-logs", "verify", "/etc/hostname"], {}, ExitCode.PACKAGE_UNUSABLE,
         "retrain verify: PackageError (exit 2 PACKAGE_UNUSABLE): /etc/hostname: not a zip archive"),
        (["release", "history"], {"MODEL_BUCKET": ""}, ExitCode.CONFIG,
         "release history: ConfigurationError (exit 8 CONFIG): give --bucket or set MODEL_BUCKET"),
        (["evaluation", "run", "--candidate", "x", "--stage-url", "not-a-url"], {}, ExitCode.CONFIG,
         "evaluation run: ConfigError (exit 8 CONFIG): "),
        (["inference", "run", "--model", "/no/such/model.zip", "--input", "in.csv", "--output", "out.csv"], {},
         ExitCode.PACKAGE_UNUSABLE, "inference run: PackageError (exit 2 PACKAGE_UNUSABLE): model '/no/such/"),
        (["monitor", "summary", "--data", "/no/such/capture", "--out", "/tmp"], {}, ExitCode.BAD_DATA,
         "monitor summary: "),
    ],
)  # fmt: skip
def test_each_command_line_fails_the_same_way(
    argv: list[str], env: dict[str, str], code: ExitCode, line: str, tmp_path: Path
) -> None:
    import os

    done = subprocess.run(
        [sys.executable, "-m", *argv], cwd=ROOT, capture_output=True, text=True, check=False, timeout=120,
        env={**os.environ, "ALERT_STATE_DIR": str(tmp_path), **env},
    )  # fmt: skip
    assert done.returncode == code, done.stderr
    failures = [text for text in done.stderr.splitlines() if f"(exit {int(code)} {code.name})" in text]
    assert len(failures) == 1, done.stderr
    assert line in failures[0], done.stderr
