"""Fixtures of the evaluation tests: three models of known quality, a model and a capture bucket on moto,
and the stage service as a real app process on loopback."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pandas as pd
import pytest

from app.capture.record import capture_records
from contracts.bucket_layout import CHAMPION_KEY, TRAINING_DATA_PREFIX, versioned_model_key
from model_package.archive import ModelPackage, open_package, package_bytes
from model_package.registry import ChampionPointer
from tests.app.conftest import AppProcess
from tests.support.servers import free_port


def _flip(frame: pd.DataFrame, share: float, seed: int) -> pd.DataFrame:
    """Training data with ``share`` of the labels flipped: a model of known, lower quality."""
    out = frame.copy()
    flip = np.random.default_rng(seed).random(len(out)) < share
    out.loc[flip, "churn"] = 1 - out.loc[flip, "churn"]
    return out


def as_version(package: ModelPackage, version: int) -> bytes:
    """The same model re-sealed as another version (what an unchanged retrain would upload)."""
    manifest = package.manifest.model_copy(update={"version": version})
    files = {k: v for k, v in package.files.items() if k != "manifest.json"}
    return package_bytes(manifest, files)[1]


@dataclass(frozen=True)
class Models:
    """AUC on fresh data (measured): clean ~0.77, noisy (15 % flipped) ~0.75, bad (45 % flipped) ~0.59."""

    clean: ModelPackage
    noisy: ModelPackage
    bad: ModelPackage


@pytest.fixture(scope="session")
def models() -> Models:
    from retrain.synthetic import generate_churn
    from retrain.training import fit_candidate

    train = generate_churn(2000, seed=1)
    fitted = {
        name: open_package(fit_candidate(frame, "churn", name="churn", version=1, git_sha="abc1234").data)
        for name, frame in (("clean", train), ("noisy", _flip(train, 0.15, 1)), ("bad", _flip(train, 0.45, 2)))
    }
    return Models(**fitted)


@pytest.fixture
def s3(moto_server: Any) -> Any:
    return boto3.client("s3", endpoint_url=moto_server.endpoint_url, region_name="us-east-1")


@pytest.fixture
def buckets(s3: Any) -> tuple[str, str]:
    """(model bucket, capture bucket), fresh per test; the model bucket versioned as in every stack."""
    names = (f"models-{uuid.uuid4().hex[:16]}", f"capture-{uuid.uuid4().hex[:16]}")
    for name in names:
        s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=names[0], VersioningConfiguration={"Status": "Enabled"})
    return names


def make_champion(s3: Any, bucket: str, data: bytes) -> ChampionPointer:
    """What the Release action leaves behind: the archived package and champion.json naming it."""
    package = open_package(data)
    key = versioned_model_key(package.manifest.version)
    s3.put_object(Bucket=bucket, Key=key, Body=data)
    pointer = ChampionPointer(
        model_name=package.manifest.name, model_version=package.manifest.version, package_key=key,
        model_sha256=package.sha256, release_key="releases/x.json", updated_at=datetime.now(UTC),
    )  # fmt: skip
    s3.put_object(Bucket=bucket, Key=CHAMPION_KEY, Body=pointer.model_dump_json().encode())
    return pointer


def put_labelled(s3: Any, bucket: str, rows: int = 1500, seed: int = 5) -> pd.DataFrame:
    from retrain.synthetic import generate_churn

    frame = generate_churn(rows, seed=seed)
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    s3.put_object(Bucket=bucket, Key=f"{TRAINING_DATA_PREFIX}labelled.csv", Body=buffer.getvalue().encode())
    return frame


def put_capture(s3: Any, bucket: str, package: ModelPackage, at: datetime, *, rows: int, seed: int) -> list[str]:
    """Capture records (contract 3, built by the app's own function) in the S3 sink's dt=/hour= layout."""
    from retrain.synthetic import generate_churn

    frame = generate_churn(rows, seed=seed)
    inputs = frame[[f.name for f in package.manifest.features]]
    inputs = [{k: (None if pd.isna(v) else v.item() if hasattr(v, "item") else v) for k, v in r.items()}
              for r in inputs.to_dict(orient="records")]  # fmt: skip
    uids = [uuid.uuid4().hex for _ in inputs]
    records = capture_records(
        uids=uids, inputs=inputs, outputs=[{"label": 0, "probability": 0.1, "prediction": 0}] * rows,
        time=at.isoformat(),
        service="prod", model_name=package.manifest.name, model_version=package.manifest.version, latency_ms=3.0,
    )  # fmt: skip
    key = f"capture/prod/dt={at:%Y-%m-%d}/hour={at:%H}/{uuid.uuid4().hex}.jsonl"
    s3.put_object(Bucket=bucket, Key=key, Body="".join(json.dumps(r) + "\n" for r in records).encode())
    return uids


@pytest.fixture
def stage_app(tmp_path: Path) -> Iterator[Callable[[bytes], AppProcess]]:
    """Factory: the stage service serving the given package, as ``python -m app`` on a loopback port."""
    started: list[AppProcess] = []

    def start(data: bytes) -> AppProcess:
        index = len(started)
        model = tmp_path / f"stage-{index}.zip"
        model.write_bytes(data)
        env = {"SPOOL_DIR": str(tmp_path / f"spool-{index}"), "SERVICE_NAME": "stage", "LOG_LEVEL": "WARNING"}
        app = AppProcess(model=model, env=env, port=free_port(), log_path=tmp_path / f"stage-{index}.log")
        started.append(app)
        return app.start()

    yield start
    for app in started:
        if app.process is not None and app.process.poll() is None:
            app.process.terminate()
            app.process.wait(30)


def recent(hours: float) -> datetime:
    return datetime.now(UTC) - timedelta(hours=hours)
