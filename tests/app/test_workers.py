"""Two worker processes, as in the image: metrics add up across workers and capture shares one table."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import sqlalchemy as sa

from tests.app.conftest import REPO, TrainedPackage, post_json
from tests.support.servers import wait_until


def _uids(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            if not sa.inspect(connection).has_table("prediction_capture"):
                return []
            return [r[0] for r in connection.execute(sa.text("select uid from prediction_capture"))]
    finally:
        engine.dispose()


def test_two_workers_share_metrics_and_capture(trained: TrainedPackage, app_process, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'capture.db'}"
    app = app_process(trained.path, env={"CAPTURE_DB_URL": db, "CAPTURE_FLUSH_SECONDS": "0.2"}, workers=2)

    async def load() -> list[str]:
        async with httpx.AsyncClient(base_url=app.url, limits=httpx.Limits(max_connections=16)) as client:
            responses = await asyncio.gather(*(client.post("/predict", json=trained.records[i]) for i in range(200)))
        assert all(r.status_code == 200 for r in responses)
        return [r.json()["predictions"][0]["uid"] for r in responses]

    sent = asyncio.run(load())
    assert app.metric("app_requests_total", '{status="200"}') == 200  # summed over both processes
    wait_until(lambda: sorted(_uids(db)) == sorted(sent), 30, "capture from both workers")
    slots = sorted(p.name for p in (Path(app.env["SPOOL_DIR"])).glob("slot-*"))
    assert slots == ["slot-0", "slot-1"]
    assert app.terminate()


def test_capture_switched_off_by_runtime_setting(trained: TrainedPackage, app_process, tmp_path: Path) -> None:
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"capture_enabled": False}))
    db = f"sqlite:///{tmp_path / 'off.db'}"
    app = app_process(
        trained.path,
        env={"CAPTURE_DB_URL": db, "SETTINGS_SOURCE": f"file:{settings}", "SETTINGS_REFRESH_SECONDS": "0.1"},
    )
    assert post_json(app.url, trained.records[:3])[0] == 200
    settings.write_text(json.dumps({"capture_enabled": True}))
    wait_until(lambda: httpx.get(f"{app.url}/model").json()["settings"]["capture_enabled"], 30, "capture on")
    _, _, body = post_json(app.url, trained.records[3])
    assert app.terminate()
    assert _uids(db) == [body["predictions"][0]["uid"]]  # only the request made while capture was on


_FORKED_COUNTS = """
import os, sys
from app import metrics
metrics.PREDICTIONS.inc(3)
child = os.fork()
if child == 0:
    metrics.PREDICTIONS.inc(4)  # the child must write its own file, not the parent's
    os._exit(0)
os.waitpid(child, 0)
metrics.PREDICTIONS.inc(5)
print(metrics.render()[0].decode())
"""


def test_metrics_of_a_forked_process_count_separately(tmp_path: Path) -> None:
    """The pid that names each process's metrics file is cached; a fork must still get its own file."""
    import os
    import subprocess
    import sys

    directory = tmp_path / "prometheus"
    directory.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory), "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", _FORKED_COUNTS],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=60,
    )
    assert "app_predictions_total 12.0" in result.stdout, result.stdout
    assert len(list(directory.glob("counter_*.db"))) == 2
