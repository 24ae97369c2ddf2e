"""Issue #14 item 6: local drift and summary read the app's own local capture directly.

The app's local capture is the SQLite table (``CAPTURE_DB_URL=sqlite:///...``) plus JSON-lines segments
(the spool, the S3 layout). ``summary --data <dir>`` used to count 0 on a directory holding only the
SQLite database; an empty or unknown source is now an error naming what was expected.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.capture.sinks import SqlSink
from monitor.__main__ import main
from tests.monitor.conftest import capture_records, fresh, write_jsonl

WINDOW = ["--window-minutes", "10", "--now", "2026-06-01T12:10:00Z", "--min-count", "1"]


def _sqlite(path: Path, records: list[dict]) -> Path:
    sink = SqlSink(f"sqlite:///{path}")
    sink.write(records)
    sink.close()
    return path


@pytest.fixture
def records(trained) -> list[dict]:
    return capture_records(fresh(60, seed=51), trained.package, start="2026-06-01T12:00:00+00:00", seconds_apart=20)


def test_summary_reads_the_apps_sqlite_capture_in_a_directory(records, tmp_path: Path, capsys) -> None:
    data = tmp_path / "local"
    data.mkdir()
    _sqlite(data / "capture.db", records)
    assert main(["summary", "--data", str(data), "--out", str(tmp_path / "out"), *WINDOW]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["count"] == 30  # 20 s apart: the 10-minute window ending 12:10 holds 30


def test_sqlite_plus_spool_segments_are_read_once_each(records, tmp_path: Path, capsys) -> None:
    """A segment the sink confirmed but the app had not deleted yet holds records the database has too."""
    data = tmp_path / "local"
    (data / "spool" / "sql").mkdir(parents=True)
    _sqlite(data / "capture.db", records[:40])
    write_jsonl(data / "spool" / "sql" / "00000000000000000001-00000001-n30.jsonl", records[30:])
    (data / "spool" / "sql-quarantine").mkdir()
    (data / "spool" / "sql-quarantine" / "bad.jsonl").write_text("not json\n")
    from jobs_common.capture import read_local_capture

    got = read_local_capture(data)
    assert sorted(r["uid"] for r in got) == sorted(r["uid"] for r in records)
    assert main(["summary", "--data", str(data), "--out", str(tmp_path / "out"), *WINDOW]) == 0
    assert json.loads(capsys.readouterr().out)["count"] == 30


def test_sqlite_url_and_file_are_accepted_by_drift(trained, tmp_path: Path, capsys) -> None:
    many = capture_records(fresh(150, seed=52), trained.package, start="2026-06-01T12:00:00+00:00")
    db = _sqlite(tmp_path / "capture.sqlite", many)
    for index, source in enumerate((str(db), f"sqlite:///{db}")):
        out = tmp_path / f"out-{index}"
        assert (
            main(["drift", "--model", str(trained.path), "--data", source, "--out", str(out), "--no-adversarial"]) == 0
        )
        printed = json.loads(capsys.readouterr().out)
        assert printed["dataset_drift"] is False  # a fresh sample of the training distribution
        assert list(out.glob("*.json"))


@pytest.mark.parametrize("layout", ["empty-dir", "other-files", "empty-db"])
def test_an_empty_or_unknown_source_is_an_error_naming_what_was_expected(layout: str, tmp_path: Path) -> None:
    data = tmp_path / "local"
    data.mkdir()
    if layout == "other-files":
        (data / "notes.txt").write_text("hello\n")
    elif layout == "empty-db":
        _sqlite(data / "capture.db", [])
        SqlSink(f"sqlite:///{data / 'capture.db'}").engine.dispose()
    from jobs_common.capture import read_local_capture

    with pytest.raises(ValueError, match=r"capture") as caught:
        read_local_capture(data)
    message = str(caught.value)
    assert str(data) in message and ".jsonl" in message and "sqlite" in message.lower()
    assert main(["summary", "--data", str(data), "--out", str(tmp_path / "out"), *WINDOW]) != 0
