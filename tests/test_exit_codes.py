"""One exit-code table (``contracts.exit_codes``): unique codes, no bare integers, every CLI uses it.

The grep test is what keeps the table the only place a number lives: a new ``return 3`` in an entry
point, or an ``exit_code = 9`` on an error class, fails here with the file and line.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pytest

from contracts.exit_codes import ExitCode

ROOT = Path(__file__).resolve().parent.parent

# Patterns that put a literal number where an exit status goes.
BARE_EXIT = [
    re.compile(r"\bexit_code\s*=\s*-?\d"),
    re.compile(r"\bexit_code\s+or\s+\d"),
    re.compile(r"\bsys\.exit\(\s*-?\d"),
    re.compile(r"\bos\._exit\(\s*-?\d"),
    re.compile(r"\.exit\(\s*-?\d"),
    re.compile(r"\bSystemExit\(\s*-?\d"),
    re.compile(r"RunResult\([^)]*,\s*-?\d+\)"),
    # A module's own status constants (evaluation had EXIT_CONFIG = 3, which the table calls MANIFEST_INVALID).
    re.compile(r"^\s*EXIT_\w+\s*(:\s*\w+\s*)?=\s*-?\d"),
]
# In command-line modules a bare ``return <int>`` is an exit status too.
BARE_RETURN = re.compile(r"^\s*return\s+-?\d+\s*(#.*)?$")
ENTRY_POINT_FILES = {"__main__.py", "demo.py"}


def _bare_exit_lines(package: str) -> list[str]:
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            code = line.split("#", 1)[0]
            hits = any(p.search(code) for p in BARE_EXIT)
            if path.name in ENTRY_POINT_FILES and BARE_RETURN.match(code):
                hits = True
            if hits:
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    return found


def test_every_code_has_one_meaning_and_a_docstring() -> None:
    values = [member.value for member in ExitCode]
    assert len(values) == len(set(values)) == len(ExitCode.__members__), "an exit code is an alias of another"
    source = (ROOT / "contracts" / "exit_codes.py").read_text()
    for member in ExitCode:
        # every member is followed by its docstring in the class body
        assert re.search(rf"^\s+{member.name} = {member.value}\n\s+\"\"\"\S", source, re.M), member.name
    assert ExitCode.UNEXPECTED == 1  # Python's status for an uncaught exception: must stay "unexpected"
    # Meanings documented before the table (verify 0/2-6, usage 64) are kept.
    assert (ExitCode.OK, ExitCode.PACKAGE_UNUSABLE, ExitCode.MANIFEST_INVALID) == (0, 2, 3)
    assert (ExitCode.INTEGRITY, ExitCode.SCHEMA, ExitCode.PARITY, ExitCode.USAGE) == (4, 5, 6, 64)


def test_docs_table_lists_every_code() -> None:
    table = (ROOT / "docs" / "exit-codes.md").read_text()
    for member in ExitCode:
        assert re.search(rf"^\| {member.value} \| `{member.name}` \|", table, re.M), member.name


@pytest.mark.parametrize(
    "package",
    [
        "model_package",
        "retrain",
        "monitor",
        "inference",
        "release",
        "app",
        "evaluation",
        "jobs_common",
        "alerting",
    ],
)
def test_no_bare_integer_exit_codes(package: str) -> None:
    assert _bare_exit_lines(package) == []


def test_grep_catches_a_bare_exit_code() -> None:
    """The scanner itself must find what it is looking for (else the test above proves nothing)."""
    assert BARE_EXIT[0].search("    exit_code = 9")
    assert BARE_EXIT[2].search("sys.exit(3)")
    assert BARE_EXIT[4].search('self.exit(2, "x")')
    assert BARE_RETURN.match("        return 2")
    assert not BARE_RETURN.match("        return ExitCode.USAGE")
    assert BARE_EXIT[7].search("EXIT_CONFIG = 3")
    assert not BARE_EXIT[7].search("EXIT_CONFIG = ExitCode.CONFIG")


def test_evaluation_cli_exit_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    from evaluation.__main__ import main

    _usage_and_help(main, ["nope"])
    monkeypatch.setenv("MODEL_BUCKET", "models")
    assert _code(main, ["run", "--candidate", "x", "--stage-url", "not-a-url"]) == ExitCode.CONFIG


# ---- every CLI's exit paths, run in-process, compared with the enum ---------------------------------


def _code(main: object, argv: list[str]) -> int:
    try:
        return int(main(argv))  # type: ignore[operator]
    except SystemExit as exc:  # argparse exits itself
        return int(exc.code or 0)


def _usage_and_help(main: object, argv_bad: list[str]) -> None:
    assert _code(main, argv_bad) == ExitCode.USAGE
    assert _code(main, ["--help"]) == ExitCode.OK


def test_retrain_cli_exit_paths(tmp_path: Path) -> None:
    from retrain.__main__ import main

    _usage_and_help(main, ["nope"])
    assert _code(main, ["train", "--target", "y"]) == ExitCode.USAGE  # missing --data/--out
    assert _code(main, ["verify", str(tmp_path / "absent.zip")]) == ExitCode.PACKAGE_UNUSABLE
    bad_manifest = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad_manifest, "w") as archive:
        archive.writestr("manifest.json", "{not json")
    assert _code(main, ["verify", str(bad_manifest)]) == ExitCode.MANIFEST_INVALID
    data = tmp_path / "d.csv"
    data.write_text("a,b\n1,2\n")
    out = str(tmp_path / "m.zip")
    assert _code(main, ["train", "--data", str(data), "--target", "y", "--out", out]) == ExitCode.BAD_DATA
    assert _code(main, ["synth", "--rows", "10", "--out", str(tmp_path / "d.xlsx")]) == ExitCode.USAGE


def test_monitor_cli_exit_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor.__main__ import main

    _usage_and_help(main, ["drift", "--bogus"])
    assert _code(main, ["drift", "--model", str(tmp_path / "absent.zip")]) == ExitCode.BAD_DATA  # no --data/--out
    for name in ("CAPTURE_BUCKET", "CAPTURE_DB_URL", "MODEL_BUCKET"):
        monkeypatch.delenv(name, raising=False)
    assert _code(main, ["drift"]) == ExitCode.CONFIG  # cloud mode without MODEL_BUCKET
    monkeypatch.setenv("SUMMARY_WINDOW_MINUTES", "soon")
    assert _code(main, ["summary", "--data", str(tmp_path)]) == ExitCode.CONFIG


def test_inference_cli_exit_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from inference.__main__ import main

    _usage_and_help(main, ["score"])
    assert _code(main, ["run", "--threshold", "2"]) == ExitCode.USAGE
    for name in ("INPUT_URI", "OUTPUT_URI"):
        monkeypatch.delenv(name, raising=False)
    assert _code(main, ["run"]) == ExitCode.BAD_DATA  # no input/output named
    monkeypatch.setenv("CHUNK_ROWS", "many")
    args = ["run", "--input", "a.csv", "--output", "b.csv", "--model", str(tmp_path / "m.zip")]
    assert _code(main, args) == ExitCode.CONFIG
    monkeypatch.delenv("CHUNK_ROWS")
    assert _code(main, args) == ExitCode.PACKAGE_UNUSABLE


def test_release_cli_exit_paths(tmp_path: Path) -> None:
    from release.__main__ import main

    _usage_and_help(main, ["deploy"])
    assert _code(main, ["model-info", str(tmp_path / "absent")]) == ExitCode.PACKAGE_UNUSABLE
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:v1"  # a tag, not a pinned digest
    argv = ["imagedefinitions", "--container-name", "app", "--image", image, "--out", str(tmp_path / "x")]
    assert _code(main, argv) == ExitCode.CONFIG
