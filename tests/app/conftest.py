"""Fixtures of the app tests: one trained package per session, and the app as a real process."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from model_package import Manifest, open_package
from tests.support.servers import LOOPBACK, free_port, wait_until

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class TrainedPackage:
    path: Path
    manifest: Manifest
    records: list[dict[str, Any]]  # valid request records (features only), from held data


def _records(frame: Any, manifest: Manifest) -> list[dict[str, Any]]:
    out = []
    for row in frame.to_dict(orient="records"):
        record: dict[str, Any] = {}
        for spec in manifest.features:
            value = row[spec.name]
            if value is None or (isinstance(value, float) and math.isnan(value)):
                record[spec.name] = None
            elif spec.dtype == "int":
                record[spec.name] = int(value)
            elif spec.dtype == "float":
                record[spec.name] = float(value)
            else:
                record[spec.name] = str(value)
        out.append(record)
    return out


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainedPackage:
    from retrain.synthetic import generate_churn
    from retrain.training import train_package

    _manifest, data = train_package(generate_churn(2000, seed=3), name="churn", version=7, git_sha="abc1234")
    path = tmp_path_factory.mktemp("model") / "model.zip"
    path.write_bytes(data)
    package = open_package(path)
    # Requests drawn from the same generator, clipped to the training range so they validate cleanly.
    frame = generate_churn(400, seed=11)
    records = []
    for record in _records(frame, package.manifest):
        ok = True
        for spec in package.manifest.features:
            value = record[spec.name]
            if value is None and not spec.nullable:
                ok = False
            if isinstance(value, int | float) and spec.minimum is not None and spec.maximum is not None:
                ok = ok and spec.minimum <= value <= spec.maximum
        if ok:
            records.append(record)
    return TrainedPackage(path=path, manifest=package.manifest, records=records)


@dataclass
class AppProcess:
    """``python -m app`` on a free loopback port, as the image runs it."""

    model: Path
    env: dict[str, str]
    workers: int = 1
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self, wait: bool = True) -> AppProcess:
        assert self.log_path is not None
        env = {**os.environ, "PYTHONPATH": str(REPO), **self.env}
        argv = [sys.executable, "-m", "app", "--model", str(self.model), "--host", LOOPBACK, "--port", str(self.port)]
        argv += ["--workers", str(self.workers)]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        if wait:
            wait_until(self._ready, 60, f"app on {self.url}")
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"app exited with {self.process.returncode}:\n{self.log()}")
        try:
            with urllib.request.urlopen(f"{self.url}/ready", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def terminate(self, timeout: float = 60) -> bool:
        """SIGTERM and wait; True when the app shut down gracefully.

        uvicorn re-raises the captured SIGTERM after its graceful shutdown, so the status is -SIGTERM
        (as for any process ended by the signal) or 0; a crash or a hang is neither.
        """
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        return code in (0, -signal.SIGTERM) and "Application shutdown complete" in self.log()

    def wait_exit(self, timeout: float = 60) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def metric(self, name: str, labels: str = "") -> float:
        """Sum of a metric's samples whose line starts with ``name`` + ``labels``."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as response:
            text = response.read().decode()
        total = 0.0
        for line in text.splitlines():
            if line.startswith(f"{name}{labels}") and (labels or line[len(name)] in " {"):
                total += float(line.rsplit(" ", 1)[1])
        return total


@pytest.fixture
def app_process(tmp_path: Path) -> Iterator[Any]:
    """Factory: ``app_process(model, env=..., workers=...)``; every started app is stopped afterwards."""
    started: list[AppProcess] = []

    def make(
        model: Path, env: dict[str, str] | None = None, workers: int = 1, wait: bool = True, port: int | None = None
    ) -> AppProcess:
        index = len(started)
        base = {
            "SPOOL_DIR": str(tmp_path / f"spool-{index}"),
            "SERVICE_NAME": "local",
            "LOG_LEVEL": "INFO",
        }
        app = AppProcess(
            model=model, env={**base, **(env or {})}, workers=workers, log_path=tmp_path / f"app-{index}.log"
        )
        if port is not None:
            app.port = port
        started.append(app)
        return app.start(wait=wait)

    yield make
    for app in started:
        if app.process is not None and app.process.poll() is None:
            app.process.kill()
            app.process.wait(10)


def post_json(url: str, payload: Any, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    import httpx

    response = httpx.post(
        f"{url}/predict", content=json.dumps(payload), headers={"content-type": "application/json", **(headers or {})}
    )
    body = response.json() if response.headers.get("content-type", "").startswith("application/json") else response.text
    return response.status_code, dict(response.headers), body


@dataclass(frozen=True)
class TaskPackage:
    """A package of one task type trained with the repo's own training code, plus request records."""

    task: str
    path: Path
    manifest: Manifest
    records: list[dict[str, Any]]  # features plus the id column, valid


def _train_task(task: str, directory: Path) -> TaskPackage:
    from retrain.synthetic import ID_COLUMN, MULTICLASS_TARGET, REGRESSION_TARGET, TARGET, generate_task_frame
    from retrain.training import train_package

    target = {"binary": TARGET, "multiclass": MULTICLASS_TARGET, "regression": REGRESSION_TARGET}[task]
    frame = generate_task_frame(task, 1500, seed=4, with_id=True)
    _, data = train_package(frame, target, name=f"{task}-model", version=3, id_columns=[ID_COLUMN])
    path = directory / "model.zip"
    path.write_bytes(data)
    manifest = open_package(path).manifest
    held = generate_task_frame(task, 200, seed=12, with_id=True)
    records = []
    for record, customer in zip(_records(held, manifest), held[ID_COLUMN], strict=True):
        ok = all(
            (record[s.name] is not None or s.nullable)
            and (not isinstance(record[s.name], int | float) or s.minimum is None or s.minimum <= record[s.name])
            and (not isinstance(record[s.name], int | float) or s.maximum is None or record[s.name] <= s.maximum)
            for s in manifest.features
        )
        if ok:
            records.append({ID_COLUMN: customer, **record})
    return TaskPackage(task=task, path=path, manifest=manifest, records=records)


@pytest.fixture(scope="session", params=["binary", "multiclass", "regression"])
def task_package(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> TaskPackage:
    return _train_task(request.param, tmp_path_factory.mktemp(f"task-{request.param}"))


def captured_by_the_app(task_package: TaskPackage, count: int, service: str) -> list[dict[str, Any]]:
    """The capture records the app's own code builds for the package's first ``count`` records."""
    from app.capture import capture_records
    from app.handlers import model_fn, predict_fn

    model = model_fn(task_package.path)
    records = task_package.records[:count]
    prediction = predict_fn(records, model)
    return capture_records(
        uids=prediction.uids,
        inputs=records,
        outputs=prediction.outputs,
        ids=prediction.ids,
        time="2026-06-01T00:00:00+00:00",
        service=service,
        model_name=model.manifest.name,
        model_version=model.manifest.version,
        latency_ms=1.0,
    )
