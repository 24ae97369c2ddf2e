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


def _start(trained, source: Path, output: str, staging: Path, env_extra: dict[str, str]) -> subprocess.Popen:
    env = {**os.environ, "TMPDIR": str(staging), **env_extra}
    args = ["run", "--model", str(trained.path), "--input", str(source), "--output", output, "--chunk-rows", "500"]
    return subprocess.Popen(
        [sys.executable, "-m", "inference", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _big_input(tmp_path: Path) -> Path:
    frame = generate_churn(300_000, seed=72).drop(columns=["churn"])
    frame["acquisition_date"] = frame["acquisition_date"].astype(str)
    source = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), source)
    return source


def test_sigterm_during_a_local_write_removes_the_partial_files(trained, tmp_path: Path) -> None:
    """Measured on main: SIGTERM (what Batch sends on cancel/timeout) left ``.scores.parquet.*.partial``
    beside the destination, where docs/inference.md said no partial file ever remains."""
    from contracts.exit_codes import ExitCode

    source = _big_input(tmp_path)
    out, staging = tmp_path / "out", tmp_path / "tmp"
    out.mkdir()
    staging.mkdir()
    process = _start(trained, source, str(out / "scores.parquet"), staging, {"ALERT_STATE_DIR": str(tmp_path)})
    try:

        def writing() -> bool:
            assert process.poll() is None, "the job finished before it could be interrupted"
            return any(p.stat().st_size > 0 for p in out.glob("*.partial"))

        wait_until(writing, timeout=120, what="the job's partial output beside the destination")
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
    assert sorted(p.name for p in out.iterdir()) == []  # no partial, no output, no rejected file
    assert list(staging.glob("inference-out-*")) == []
    assert process.returncode == ExitCode.TERMINATED, err[-2000:]
    assert "SIGTERM" in err and "partial" in err


def test_sigterm_during_an_s3_write_leaves_nothing(trained, moto_server, tmp_path: Path) -> None:
    from contracts.exit_codes import ExitCode

    s3 = boto3.client("s3", endpoint_url=moto_server.endpoint_url)
    bucket = f"batch-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    source = _big_input(tmp_path)
    staging = tmp_path / "tmp"
    staging.mkdir()
    env = {"AWS_ENDPOINT_URL": moto_server.endpoint_url, "ALERT_STATE_DIR": str(tmp_path)}
    process = _start(trained, source, f"s3://{bucket}/out/scores.parquet", staging, env)
    try:

        def writing() -> bool:
            assert process.poll() is None, "the job finished before it could be interrupted"
            return any(p.stat().st_size > 0 for p in staging.glob("inference-out-*/*.partial"))

        wait_until(writing, timeout=120, what="the job's staged output")
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
    assert list(staging.glob("inference-out-*")) == []  # the staging directory and its .partial files are gone
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    assert process.returncode == ExitCode.TERMINATED, err[-2000:]
