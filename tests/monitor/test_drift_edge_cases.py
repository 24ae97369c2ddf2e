"""Drift on inputs it cannot judge (issue #13, item 6): too few rows, a file that parses into one column.

Measured on main: 0 or 1 rows gave a report saying "no drift" (exit 0); a semicolon-separated CSV became
one column named ``tenure_months;monthly_spend;...`` and the report said every feature was missing,
"retrain warranted". Both now stop before any report or alert, with the count/minimum or the column seen.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contracts.exit_codes import ExitCode
from monitor.__main__ import main
from tests.monitor.conftest import capture_records, fresh, write_jsonl


def drift(trained, data: Path, out: Path) -> int:
    return main(["drift", "--model", str(trained.path), "--data", str(data), "--out", str(out), "--no-adversarial"])


@pytest.mark.parametrize("rows", [0, 1, 99])
def test_csv_window_below_the_minimum_is_refused(trained, tmp_path: Path, capsys, rows: int) -> None:
    frame = fresh(max(rows, 1), seed=41).head(rows)
    frame.to_csv(tmp_path / "window.csv", index=False)
    out = tmp_path / "out"
    assert drift(trained, tmp_path / "window.csv", out) == ExitCode.INSUFFICIENT_DATA
    err = capsys.readouterr().err
    assert f"{rows} row(s)" in err and "at least 100 (thresholds min_rows, DRIFT_MIN_ROWS)" in err
    assert not (out / "report.json").exists()  # no "no drift" report, no alert


def test_capture_window_of_one_record_is_refused(trained, tmp_path: Path, capsys) -> None:
    data = write_jsonl(tmp_path / "c.jsonl", capture_records(fresh(1, seed=42), trained.package))
    assert drift(trained, data, tmp_path / "out") == ExitCode.INSUFFICIENT_DATA
    assert "1 row(s)" in capsys.readouterr().err


def test_minimum_is_configurable(trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fresh(30, seed=43).to_csv(tmp_path / "window.csv", index=False)
    monkeypatch.setenv("DRIFT_MIN_ROWS", "20")
    out = tmp_path / "out"
    assert drift(trained, tmp_path / "window.csv", out) == ExitCode.OK
    assert json.loads((out / "report.json").read_text())["rows"] == 30
    monkeypatch.setenv("DRIFT_MIN_ROWS", "5")  # below the thresholds' own floor (10)
    assert drift(trained, tmp_path / "window.csv", out) == ExitCode.CONFIG
    monkeypatch.delenv("DRIFT_MIN_ROWS")
    thresholds = tmp_path / "t.json"
    thresholds.write_text('{"min_rows": 20}')  # the same number, from the thresholds file
    args = ["drift", "--model", str(trained.path), "--data", str(tmp_path / "window.csv"), "--out", str(out)]
    assert main([*args, "--no-adversarial", "--thresholds", str(thresholds)]) == ExitCode.OK


@pytest.mark.parametrize("separator", [";", "\t", "|"])
def test_wrong_delimiter_is_bad_data_not_retrain_warranted(trained, tmp_path: Path, capsys, separator: str) -> None:
    fresh(500, seed=44).to_csv(tmp_path / "window.csv", index=False, sep=separator)
    out = tmp_path / "out"
    assert drift(trained, tmp_path / "window.csv", out) == ExitCode.BAD_DATA
    err = capsys.readouterr().err
    assert "parses into one column" in err and "comma-separated" in err
    assert not (out / "report.json").exists()


def test_a_file_with_none_of_the_features_is_bad_data(trained, tmp_path: Path, capsys) -> None:
    frame = fresh(500, seed=45)
    frame.columns = [f"col{i}" for i in range(len(frame.columns))]
    frame.to_csv(tmp_path / "window.csv", index=False)
    assert drift(trained, tmp_path / "window.csv", tmp_path / "out") == ExitCode.BAD_DATA
    assert "none of the model's features" in capsys.readouterr().err


def test_enough_rows_still_report(trained, tmp_path: Path) -> None:
    fresh(150, seed=46).to_csv(tmp_path / "window.csv", index=False)
    out = tmp_path / "out"
    assert drift(trained, tmp_path / "window.csv", out) == ExitCode.OK
    assert json.loads((out / "report.json").read_text())["rows"] == 150
