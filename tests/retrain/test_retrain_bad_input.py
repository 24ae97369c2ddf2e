"""Training on bad or large input (issue #13, item 6): refused before any fit, with a message naming the column.

Each case was measured on main: bad header names and duplicate headers failed only after the whole fit
with an ONNX schema message about a column the user never wrote (``monthly_spend`` for ``monthly.spend``);
a numeric column with two bad cells silently became a 387-category text feature; ``inf`` gave a
scikit-learn traceback (exit 1); a file larger than memory was read whole.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pandas as pd
import pytest

from contracts.exit_codes import ExitCode
from jobs_common.errors import DataError
from jobs_common.readers import LocalFileReader, S3Reader
from retrain import training
from retrain.synthetic import generate_churn
from retrain.training import fit_candidate

ROWS = 400


@pytest.fixture
def no_fit(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record any pipeline construction: a refused input must never get as far as building the estimator."""
    built: list[str] = []
    real = training.default_pipeline

    def spy(*args: Any, **kwargs: Any) -> Any:
        built.append("fit")
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "default_pipeline", spy)
    return built


def _fit_csv(tmp_path: Path, text_or_frame: str | pd.DataFrame) -> Any:
    """Through the real reader (CSV header handling is part of the behaviour), then the real fit."""
    path = tmp_path / f"{uuid.uuid4().hex}.csv"
    if isinstance(text_or_frame, str):
        path.write_text(text_or_frame)
    else:
        text_or_frame.to_csv(path, index=False)
    frame = LocalFileReader(path).read().frame
    return fit_candidate(frame, "churn", time_column="acquisition_date")


@pytest.mark.parametrize("bad", ["monthly.spend", "monthly spend", "monthly-spend", "monthly/spend"])
def test_bad_column_name_refused_before_fit_naming_the_column(tmp_path: Path, no_fit: list[str], bad: str) -> None:
    frame = generate_churn(ROWS, seed=1).rename(columns={"monthly_spend": bad})
    with pytest.raises(DataError) as info:
        _fit_csv(tmp_path, frame)
    message = str(info.value)
    assert f"column name {bad!r} is not allowed" in message
    assert "letters, digits or '_'" in message  # the rule, not just the refusal
    assert no_fit == []


def test_duplicate_header_refused_as_a_duplicate(tmp_path: Path, no_fit: list[str]) -> None:
    text = generate_churn(ROWS, seed=1).to_csv(index=False)
    header, body = text.split("\n", 1)
    duplicated = header.replace("monthly_spend", "tenure_months")
    with pytest.raises(DataError) as info:
        _fit_csv(tmp_path, f"{duplicated}\n{body}")
    assert "column 'tenure_months' appears more than once in the header" in str(info.value)
    assert no_fit == []


def test_duplicate_parquet_columns_refused() -> None:
    frame = generate_churn(ROWS, seed=1)
    frame.columns = [c if c != "monthly_spend" else "tenure_months" for c in frame.columns]
    with pytest.raises(DataError, match="'tenure_months' appears more than once"):
        fit_candidate(frame, "churn", time_column="acquisition_date")


def test_numeric_column_with_a_few_bad_cells_is_reported_not_made_categorical(
    tmp_path: Path, no_fit: list[str]
) -> None:
    frame = generate_churn(ROWS, seed=1)
    frame["monthly_spend"] = frame["monthly_spend"].astype(object)
    frame.loc[[3, 7], "monthly_spend"] = "12,5"
    with pytest.raises(DataError) as info:
        _fit_csv(tmp_path, frame)
    message = str(info.value)
    assert "column 'monthly_spend' is 99.5% numbers but 2 cell(s) are not" in message
    assert "'12,5'" in message and "[3, 7]" in message and "--categorical" in message
    assert no_fit == []


def test_a_text_column_is_still_categorical(tmp_path: Path) -> None:
    """The report must not fire on real text: a mostly-text column with a few numbers stays a category."""
    frame = generate_churn(ROWS, seed=1)
    frame["region"] = np.where(frame["tenure_months"] > 20, "north", "south")
    frame.loc[[1, 2], "region"] = "7"
    result = _fit_csv(tmp_path, frame)
    assert result.manifest.feature("region").dtype == "string"


def test_forcing_the_column_categorical_accepts_it(tmp_path: Path) -> None:
    frame = generate_churn(ROWS, seed=1)
    frame["monthly_spend"] = frame["monthly_spend"].round(0).astype(object)
    frame.loc[[3, 7], "monthly_spend"] = "unknown"
    path = tmp_path / "d.csv"
    frame.to_csv(path, index=False)
    result = fit_candidate(
        LocalFileReader(path).read().frame, "churn", time_column="acquisition_date", categorical=["monthly_spend"]
    )
    assert result.manifest.feature("monthly_spend").dtype == "string"


@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_inf_is_a_clear_data_error(tmp_path: Path, no_fit: list[str], value: float) -> None:
    frame = generate_churn(ROWS, seed=1)
    frame.loc[[3, 7], "monthly_spend"] = value
    with pytest.raises(DataError) as info:
        _fit_csv(tmp_path, frame)
    message = str(info.value)
    assert "column 'monthly_spend' has 2 infinite value(s)" in message and "[3, 7]" in message
    assert no_fit == []


def test_train_cli_exits_bad_data_for_inf(tmp_path: Path) -> None:
    from retrain.__main__ import main

    frame = generate_churn(ROWS, seed=1)
    frame.loc[5, "satisfaction_score"] = np.inf
    frame.to_csv(tmp_path / "d.csv", index=False)
    args = ["train", "--data", str(tmp_path / "d.csv"), "--target", "churn", "--out", str(tmp_path / "m.zip")]
    assert main(args) == ExitCode.BAD_DATA
    assert not (tmp_path / "m.zip").exists()


# ---- larger than memory: refused from the size, before reading --------------------------------------


def test_file_over_the_configured_cap_is_refused_before_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "big.csv"
    generate_churn(2000, seed=1).to_csv(path, index=False)
    size = path.stat().st_size
    monkeypatch.setenv("MAX_DATA_BYTES", "64K")
    reads: list[Path] = []
    real = Path.read_bytes

    def counting(self: Path) -> bytes:
        reads.append(self)
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", counting)
    with pytest.raises(DataError) as info:
        LocalFileReader(path).read()
    message = str(info.value)
    assert f"{size / 1024:.1f} KiB" in message and "MAX_DATA_BYTES=64.0 KiB" in message
    assert "refused before reading" in message and "retrainMemoryMib" in message
    assert path not in reads


def test_file_larger_than_available_memory_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from jobs_common import datasize

    path = tmp_path / "d.parquet"
    generate_churn(2000, seed=1).to_parquet(path, index=False)
    monkeypatch.setattr(datasize, "available_memory", lambda: path.stat().st_size * 5)  # < x20 for Parquet
    with pytest.raises(DataError, match=r"needs about .* of memory \(x20\) but only .* is available"):
        LocalFileReader(path).read()
    monkeypatch.setattr(datasize, "available_memory", lambda: path.stat().st_size * 50)
    assert len(LocalFileReader(path).read().frame) == 2000


def test_s3_object_over_the_cap_is_refused_without_reading_the_body(
    moto_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3 = boto3.client("s3", endpoint_url=moto_server.endpoint_url, region_name="us-east-1")
    bucket = f"data-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="train.csv", Body=generate_churn(2000, seed=1).to_csv(index=False).encode())
    monkeypatch.setenv("MAX_DATA_BYTES", "1K")
    with pytest.raises(DataError, match=r"s3://.*/train.csv is .* KiB, over MAX_DATA_BYTES=1.0 KiB"):
        S3Reader(f"s3://{bucket}/train.csv", s3).read()


def test_retrain_cli_refuses_a_large_file_with_exit_bad_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from retrain.__main__ import main

    generate_churn(2000, seed=1).to_csv(tmp_path / "d.csv", index=False)
    monkeypatch.setenv("MAX_DATA_BYTES", "10K")
    args = ["train", "--data", str(tmp_path / "d.csv"), "--target", "churn", "--out", str(tmp_path / "m.zip")]
    assert main(args) == ExitCode.BAD_DATA
    monkeypatch.setenv("MAX_DATA_BYTES", "ten")
    assert main(args) == ExitCode.CONFIG


def test_retrain_job_reports_a_too_large_object_as_bad_data_and_uploads_nothing(
    s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Batch job path: the size refusal is a bad-data run (report, notice, exit 7), not an OOM kill."""
    from retrain.job import Decision, RetrainJob
    from retrain.settings import Settings

    s3.put_object(Bucket=bucket, Key="data/train.csv", Body=generate_churn(2000, seed=1).to_csv(index=False).encode())
    monkeypatch.setenv("MAX_DATA_BYTES", "50K")
    settings = Settings(data_uri=f"s3://{bucket}/data/train.csv", model_bucket=bucket).validated()
    result = RetrainJob(settings, s3).run()
    assert result.decision == Decision.BAD_DATA and result.exit_code == ExitCode.BAD_DATA
    assert "over MAX_DATA_BYTES=50.0 KiB" in result.reason
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert not any(k.startswith("models/") or k == "model.zip" for k in keys)
    assert any(k.startswith("reports/retrain/") for k in keys)
