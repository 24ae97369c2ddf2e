"""A batch job killed mid-write (SIGKILL: no cleanup code runs) leaves no output object on S3."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import boto3
import pyarrow as pa
import pyarrow.parquet as pq

from retrain.synthetic import generate_churn
from tests.support.servers import wait_until

ROOT = Path(__file__).resolve().parents[2]


def test_sigkill_during_the_write_leaves_no_output(trained, moto_server, tmp_path: Path) -> None:
    s3 = boto3.client("s3", endpoint_url=moto_server.endpoint_url)
    bucket = f"batch-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    frame = generate_churn(300_000, seed=71).drop(columns=["churn"])
    frame["acquisition_date"] = frame["acquisition_date"].astype(str)
    source = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), source)
    staging = tmp_path / "tmp"
    staging.mkdir()
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": moto_server.endpoint_url,
        "TMPDIR": str(staging),
        "ALERT_STATE_DIR": str(tmp_path),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "inference",
            "run",
            "--model",
            str(trained.path),
            "--input",
            str(source),
            "--output",
            f"s3://{bucket}/out/scores.parquet",
            "--chunk-rows",
            "500",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def writing() -> bool:
            assert process.poll() is None, "the job finished before it could be interrupted"
            return any(p.stat().st_size > 0 for p in staging.glob("inference-out-*/*.partial"))

        wait_until(writing, timeout=120, what="the job's staged output")
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
    assert process.returncode == -signal.SIGKILL
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
