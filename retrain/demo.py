"""``make demo``: offline, end to end on one machine.

synthetic data -> train -> package -> verify -> serve with the app (when ``app/`` exists) -> a few
requests. Everything is written under ``out/demo`` (or ``DEMO_DIR``); nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from contracts.environment import AppEnvironment, DemoEnvironment
from contracts.exit_codes import ExitCode
from model_package.archive import write_atomically
from retrain.synthetic import generate_churn
from retrain.training import fit_candidate
from retrain.verify import verify_package

LOOPBACK = "127.0.0.1"
READY_TIMEOUT = 45.0


def _say(text: str) -> None:
    print(f"[demo] {text}", flush=True)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _ready(client: httpx.Client, url: str) -> bool:
    try:
        return client.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _app_available() -> bool:
    return importlib.util.find_spec("app") is not None and importlib.util.find_spec("app.__main__") is not None


def serve_and_query(model: Path, workdir: Path, records: list[dict[str, object]]) -> bool:
    """Start ``python -m app`` on a free port, wait for /ready, POST /predict, stop it. True on success."""
    port = _free_port()
    # The child inherits this process's environment (PATH, the venv) plus the app's own variables, written
    # through its contract as infra writes the task definition.
    app_env = AppEnvironment(service_name="local", spool_dir=str(workdir / "spool"), workers=1).to_env()
    env = {**os.environ, **app_env}
    argv = [sys.executable, "-m", "app", "--model", str(model), "--port", str(port), "--host", LOOPBACK]
    _say(f"starting the app: {' '.join(argv[1:])}")
    base = f"http://{LOOPBACK}:{port}"
    with (workdir / "app.log").open("wb") as log, httpx.Client(base_url=base) as client:
        process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + READY_TIMEOUT
            while not _ready(client, "/ready"):
                if process.poll() is not None:
                    _say(f"the app exited with status {process.returncode}; see {workdir / 'app.log'}")
                    return False
                if time.monotonic() > deadline:
                    _say(f"the app was not ready after {READY_TIMEOUT:.0f}s; see {workdir / 'app.log'}")
                    return False
                time.sleep(0.1)  # the polling interval of the readiness wait, not a stand-in for it
            _say(f"app ready on {base}")
            response = client.post("/predict", json=records, timeout=10)
            _say(f"POST /predict with {len(records)} records -> HTTP {response.status_code}")
            print(json.dumps(response.json(), indent=2), flush=True)
            return response.status_code == 200
        finally:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def main() -> int:
    started = time.monotonic()
    workdir = Path(DemoEnvironment.from_env().demo_dir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)

    frame = generate_churn(3000, seed=0)
    data_path = workdir / "churn.csv"
    write_atomically(data_path, frame.to_csv(index=False).encode())
    _say(f"1/5 generated {len(frame)} synthetic customers -> {data_path} (churn rate {frame['churn'].mean():.2f})")

    result = fit_candidate(frame, "churn", name="churn", version=1, data_uri=data_path.as_uri(), git_sha="demo")
    m = result.manifest.metrics
    _say(f"2/5 trained {result.manifest.hyperparameters['estimator']}: holdout ({result.split.how})")
    _say(f"    roc_auc={m.roc_auc:.3f} log_loss={m.log_loss:.3f} lift={m.lift:.2f} on {m.holdout_rows} rows")

    model = workdir / "model.zip"
    write_atomically(model, result.data)
    _say(f"3/5 packaged -> {model} ({len(result.data) // 1024} KiB, files {sorted(result.manifest.files)})")

    _say(f"4/5 {verify_package(model).summary()}")

    sample = frame.drop(columns=["churn", "acquisition_date"]).head(3)
    records = [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in sample.to_dict("records")
    ]
    if not _app_available():
        _say("5/5 app/ is not present yet: skipping the serving step")
        ok = True
    else:
        ok = serve_and_query(model, workdir, records)
        _say(f"5/5 served and queried: {'ok' if ok else 'FAILED'}")
    _say(f"done in {time.monotonic() - started:.1f}s; files in {workdir}")
    return ExitCode.OK if ok else ExitCode.UNEXPECTED


if __name__ == "__main__":
    sys.exit(main())
