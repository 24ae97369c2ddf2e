"""Issue #12 defect 2: the retrain job's ``DATA_URI`` is a prefix (``s3://<models>/training-data/``), as the
infra sets it and the README tells users to put data there. Against a real S3 API (moto on loopback)."""

from __future__ import annotations

import io
from typing import Any

import pandas as pd
import pytest

from contracts.bucket_layout import TRAINING_DATA_PREFIX
from jobs_common.errors import DataError
from jobs_common.readers import S3Reader, parse_bytes
from tests.infra.test_jobs import environment
from tools.plan.offline import OfflineRun, run_offline


@pytest.fixture(scope="module")
def dev() -> OfflineRun:
    return run_offline("dev")


def _csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def _parquet(frame: pd.DataFrame) -> bytes:
    out = io.BytesIO()
    frame.to_parquet(out, index=False)
    return out.getvalue()


def test_the_plans_data_uri_reads_every_file_under_the_prefix(
    s3: Any, bucket: str, churn_frame: pd.DataFrame, dev: OfflineRun
) -> None:
    planned = environment(dev, "retrain")["DATA_URI"]
    assert planned.endswith(f"/{TRAINING_DATA_PREFIX}")
    uri = f"s3://{bucket}/{planned.split('/', 3)[3]}"  # the plan's key part, in this test's bucket
    parts = [churn_frame.iloc[:800], churn_frame.iloc[800:1600], churn_frame.iloc[1600:]]
    # Uploaded out of order, one Parquet among CSVs, one nested "folder", a marker object and a _SUCCESS file.
    s3.put_object(Bucket=bucket, Key=f"{TRAINING_DATA_PREFIX}2026/03/c.parquet", Body=_parquet(parts[2]))
    s3.put_object(Bucket=bucket, Key=f"{TRAINING_DATA_PREFIX}a.csv", Body=_csv(parts[0]))
    s3.put_object(Bucket=bucket, Key=f"{TRAINING_DATA_PREFIX}b.csv.gz", Body=_gzip(_csv(parts[1])))
    s3.put_object(Bucket=bucket, Key=f"{TRAINING_DATA_PREFIX}2026/", Body=b"")
    s3.put_object(Bucket=bucket, Key=f"{TRAINING_DATA_PREFIX}_SUCCESS", Body=b"")
    s3.put_object(Bucket=bucket, Key="model.zip", Body=b"not under the prefix")

    data = S3Reader(uri, s3).read()

    assert data.uri == uri
    assert len(data.frame) == len(churn_frame)
    # Deterministic order: by key (2026/03/c.parquet < a.csv < b.csv.gz), each file parsed as on its own.
    expected = pd.concat(
        [parse_bytes(_parquet(parts[2]), "c.parquet"), parse_bytes(_csv(parts[0]), "a.csv"),
         parse_bytes(_csv(parts[1]), "b.csv")],
        ignore_index=True,
    )  # fmt: skip
    pd.testing.assert_frame_equal(data.frame, expected)
    assert S3Reader(uri, s3).read().sha256 == data.sha256
    s3.put_object(Bucket=bucket, Key=f"{TRAINING_DATA_PREFIX}d.csv", Body=_csv(parts[0]))
    assert S3Reader(uri, s3).read().sha256 != data.sha256, "new data is a new data set"


def _gzip(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data, mtime=0)


def test_an_empty_prefix_names_the_prefix_and_what_is_allowed(s3: Any, bucket: str) -> None:
    with pytest.raises(DataError) as caught:
        S3Reader(f"s3://{bucket}/{TRAINING_DATA_PREFIX}", s3).read()
    message = str(caught.value)
    assert f"s3://{bucket}/{TRAINING_DATA_PREFIX}" in message
    assert "no data files" in message and ".csv" in message and ".parquet" in message


def test_an_unknown_file_under_the_prefix_is_named(s3: Any, bucket: str, churn_frame: pd.DataFrame) -> None:
    s3.put_object(Bucket=bucket, Key=f"{TRAINING_DATA_PREFIX}a.csv", Body=_csv(churn_frame.iloc[:10]))
    s3.put_object(Bucket=bucket, Key=f"{TRAINING_DATA_PREFIX}notes.xlsx", Body=b"x")
    with pytest.raises(DataError, match=r"notes\.xlsx: unknown data format '\.xlsx'; allowed"):
        S3Reader(f"s3://{bucket}/{TRAINING_DATA_PREFIX}", s3).read()


def test_files_with_different_columns_are_refused(s3: Any, bucket: str, churn_frame: pd.DataFrame) -> None:
    s3.put_object(Bucket=bucket, Key=f"{TRAINING_DATA_PREFIX}a.csv", Body=_csv(churn_frame.iloc[:10]))
    s3.put_object(Bucket=bucket, Key=f"{TRAINING_DATA_PREFIX}b.csv", Body=_csv(churn_frame.iloc[:10, :3]))
    with pytest.raises(DataError, match=r"b\.csv: columns differ from .*a\.csv"):
        S3Reader(f"s3://{bucket}/{TRAINING_DATA_PREFIX}", s3).read()


def test_a_single_object_is_still_read(s3: Any, bucket: str, churn_frame: pd.DataFrame) -> None:
    s3.put_object(Bucket=bucket, Key="exports/churn.csv", Body=_csv(churn_frame.iloc[:50]))
    data = S3Reader(f"s3://{bucket}/exports/churn.csv", s3).read()
    assert len(data.frame) == 50


def test_a_prefix_whose_files_together_exceed_the_cap_is_refused_before_any_download(
    s3: Any, bucket: str, churn_frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each file is under MAX_DATA_BYTES, all of them together are not: refused from the listing alone."""
    body = _csv(churn_frame.iloc[:400])
    for name in ("a.csv", "b.csv", "c.csv"):
        s3.put_object(Bucket=bucket, Key=f"{TRAINING_DATA_PREFIX}{name}", Body=body)
    monkeypatch.setenv("MAX_DATA_BYTES", str(int(len(body) * 2.5)))
    fetched: list[str] = []
    original = s3.get_object
    monkeypatch.setattr(s3, "get_object", lambda **kw: fetched.append(kw["Key"]) or original(**kw))

    with pytest.raises(DataError, match="MAX_DATA_BYTES") as refused:
        S3Reader(f"s3://{bucket}/{TRAINING_DATA_PREFIX}", s3).read()

    assert f"s3://{bucket}/{TRAINING_DATA_PREFIX}" in str(refused.value)
    assert fetched == []
