"""The local CLI and its reports: report.json shape, the HTML renders with its plots, errors are clear."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from contracts.exit_codes import ExitCode
from monitor.__main__ import main
from tests.monitor.conftest import capture_records, fresh, write_jsonl


class ReportParser(HTMLParser):
    """Collects what a reader would see: tables (with row counts), figures (with their SVGs)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, int] = {}
        self.figures: list[dict[str, str]] = []
        self.svgs = 0
        self._table: str | None = None
        self._stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "table":
            self._table = attributes.get("id") or f"table{len(self.tables)}"
            self.tables[self._table] = 0
        elif tag == "tr" and self._table is not None:
            self.tables[self._table] += 1
        elif tag == "figure":
            self.figures.append({k: v or "" for k, v in attributes.items()})
        elif tag == "svg":
            self.svgs += 1
            if self.figures:
                self.figures[-1]["has_svg"] = "yes"
        elif tag == "path" and self.figures:
            self.figures[-1]["paths"] = str(int(self.figures[-1].get("paths", "0")) + 1)

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = None


def run(*args: str) -> int:
    return main(["drift", *args])


def test_local_drift_writes_report_json_and_html_with_plots(trained, tmp_path: Path) -> None:
    frame = fresh(3000, seed=31)
    frame["satisfaction_score"] *= 1.10
    frame.loc[frame.index[:200], "campaign_id"] = "C77"
    records = capture_records(frame, trained.package, seconds_apart=10)
    data = write_jsonl(tmp_path / "capture" / "part.jsonl", records)
    out = tmp_path / "out"
    assert run("--model", str(trained.path), "--data", str(data), "--out", str(out)) == 0

    report = json.loads((out / "report.json").read_text())
    assert report["dataset_drift"] is True and report["concept_drift"] is False
    assert {"satisfaction_score", "campaign_id"} <= set(report["drifted_features"])
    for feature in report["features"]:
        assert {"name", "drift", "test", "statistic", "p_value"} <= set(feature)
    assert {"feature": "campaign_id", "kind": "unknown_category"}.items() <= next(
        v for v in report["violations"] if v["kind"] == "unknown_category"
    ).items()
    assert sum(p["count"] for p in report["timeline"]) == 3000

    page = ReportParser()
    page.feed((out / "report.html").read_text())
    assert page.tables["summary"] == 1 + len(trained.manifest.features)  # header + one row per feature
    plotted = {f["data-feature"] for f in page.figures if f["data-kind"] == "distribution"}
    assert plotted == set(report["drifted_features"])
    assert any(f["data-kind"] == "timeline" for f in page.figures)
    assert all(f.get("has_svg") == "yes" and int(f.get("paths", "0")) > 5 for f in page.figures)
    assert "<script" not in (out / "report.html").read_text()  # self-contained, nothing to fetch or run
    assert not any(p.name.startswith(".report") for p in out.iterdir())  # no temp files left


def test_local_drift_accepts_csv_and_parquet(trained, tmp_path: Path) -> None:
    frame = fresh(1500, seed=32)
    frame.to_parquet(tmp_path / "rows.parquet")
    frame.to_csv(tmp_path / "rows.csv", index=False)
    for name in ("rows.parquet", "rows.csv"):
        out = tmp_path / name.replace(".", "-")
        assert run("--model", str(trained.path), "--data", str(tmp_path / name), "--out", str(out)) == 0
        report = json.loads((out / "report.json").read_text())
        assert report["dataset_drift"] is False
        assert report["concept"]["evaluated"] is True  # the table has the target: live metrics computed
        assert report["concept_drift"] is False


def test_bad_inputs_fail_with_a_clear_message(trained, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    odd = tmp_path / "rows.txt"
    odd.write_text("a,b\n1,2\n")
    assert run("--model", str(trained.path), "--data", str(odd), "--out", str(tmp_path / "o")) == ExitCode.BAD_DATA
    assert "allowed: .csv, .parquet" in capsys.readouterr().err
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"uid": "x", "input": {}}\nnot json\n')
    assert run("--model", str(trained.path), "--data", str(broken), "--out", str(tmp_path / "o")) == ExitCode.BAD_DATA
    assert "line 2 is not JSON" in capsys.readouterr().err
    thresholds = tmp_path / "t.json"
    thresholds.write_text('{"ks_stat": 0.2}')
    code = run(
        "--model", str(trained.path), "--data", str(odd), "--out", str(tmp_path / "o"), "--thresholds", str(thresholds)
    )
    assert code == ExitCode.CONFIG and "allowed fields" in capsys.readouterr().err
    not_a_model = tmp_path / "model.zip"
    not_a_model.write_bytes(b"nope")
    code = run("--model", str(not_a_model), "--data", str(odd), "--out", str(tmp_path / "o"))
    assert code == ExitCode.PACKAGE_UNUSABLE
    assert "not a zip archive" in capsys.readouterr().err
    assert not (tmp_path / "o" / "report.json").exists()


def test_sensitivity_prints_and_writes_the_table(trained, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "holdout.csv"
    fresh(2000, seed=33).to_csv(data, index=False)
    out = tmp_path / "sens"
    assert main(["sensitivity", "--model", str(trained.path), "--data", str(data), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "satisfaction_score x1.10" in printed and "log_loss" in printed
    rows = json.loads((out / "sensitivity.json").read_text())["rows"]
    numeric = [f for f in trained.manifest.features if f.is_numeric]
    assert len(rows) == 1 + 4 * len(numeric) + 4
    as_is = rows[0]
    assert as_is["scenario"] == "as is" and not as_is["drift_flagged"]
    ten = next(r for r in rows if r["scenario"] == "satisfaction_score x1.10")
    assert ten["drift_flagged"] and ten["log_loss"] > as_is["log_loss"]
    multi = [r for r in rows if "% of rows" in r["scenario"]]
    assert [r["share_of_rows"] for r in multi] == [0.1, 0.25, 0.5, 1.0]
    assert multi[-1]["log_loss"] > multi[0]["log_loss"]  # more rows shifted, more harm
    page = ReportParser()
    page.feed((out / "sensitivity.html").read_text())
    assert page.tables["sensitivity"] == len(rows) + 1
