"""One configuration style (issue #15 item 2): processes read their environment through contracts/environment.py.

The test greps the non-test sources of the app, the jobs, their shared layer, the model package and alerting
for ``os.environ``/``os.getenv``: what remains must be process plumbing, each use listed here with the reason,
so a new variable read by hand fails the test with its file:line instead of escaping the contract.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = (
    "app",
    "retrain",
    "monitor",
    "inference",
    "release",
    "evaluation",
    "jobs_common",
    "model_package",
    "alerting",
)
ENV_ACCESS = re.compile(r"\bos\.(environ|getenv)\b")

# (file, text on the line) -> why it is plumbing, not configuration. The text, not the line number, so an edit
# above does not break the list; each entry must still match a line (checked below).
PLUMBING: dict[tuple[str, str], str] = {
    ("app/factory.py", "os.environ.get(STATUS_DIR_ENV)"): "set by python -m app for its own workers",
    ("app/factory.py", "os.environ.get(PARENT_PID_ENV)"): "set by python -m app for its own workers",
    ("app/__main__.py", "os.environ[PARENT_PID_ENV] ="): "python -m app tells its workers its pid",
    ("app/__main__.py", "os.environ[STATUS_DIR_ENV] ="): "python -m app gives its workers a status dir",
    ("app/__main__.py", "os.environ.update(AppEnvironment(model_dir="): "CLI choice handed to the workers, via to_env",
    ("app/__main__.py", 'os.environ.get("PROMETHEUS_MULTIPROC_DIR")'): "prometheus_client's own variable",
    ("app/__main__.py", 'os.environ["PROMETHEUS_MULTIPROC_DIR"] ='): "prometheus_client's own variable",
    ("app/metrics.py", 'os.environ.get("PROMETHEUS_MULTIPROC_DIR")'): "prometheus_client's own variable",
    ("retrain/demo.py", "env = {**os.environ, **app_env}"): "the demo's child app inherits PATH and the venv",
    ("app/capture/sql_process.py", "env = dict(os.environ)"): (
        "the SQL child inherits its worker's environment (PATH, the venv, PROMETHEUS_MULTIPROC_DIR); only"
        " PYTHONPATH is added, for its imports"
    ),
}


def _env_accesses() -> list[tuple[str, int, str]]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if "/tests/" in f"/{relative}":
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                if ENV_ACCESS.search(line):
                    found.append((relative, number, line.strip()))
    return found


def _allowed(relative: str, line: str) -> bool:
    return any(file == relative and text in line for file, text in PLUMBING)


def test_processes_read_the_environment_only_through_their_contract() -> None:
    """Every other read goes through a ProcessEnvironment class (from_env), which names the variable at fault."""
    by_hand = [f"{file}:{number}: {line}" for file, number, line in _env_accesses() if not _allowed(file, line)]
    assert not by_hand, (
        "read the variable through its class in contracts/environment.py (from_env), or, if it is process "
        "plumbing, add it with the reason to PLUMBING in this test:\n" + "\n".join(by_hand)
    )


def test_every_plumbing_entry_is_still_in_the_source() -> None:
    """A stale entry would silently allow a future read by hand at that place."""
    accesses = _env_accesses()
    stale = [key for key in PLUMBING if not any(f == key[0] and key[1] in line for f, _, line in accesses)]
    assert not stale, f"PLUMBING entries matching no line any more: {stale}"


def test_the_grep_catches_a_read_by_hand() -> None:
    """The pattern itself: both spellings are caught, a mention in prose is not an access."""
    assert ENV_ACCESS.search('value = os.environ.get("X")')
    assert ENV_ACCESS.search('value = os.getenv("X")')
    assert ENV_ACCESS.search("env = dict(os.environ)")
    assert not ENV_ACCESS.search("environ: Mapping[str, str] | None = None")
