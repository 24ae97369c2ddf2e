"""Shared pieces of the twin tests (``make e2e``; not part of ``make test``).

One twin per session (moto provisioned from the dev plan, the local registry, the stand-in base images).
Every container setting comes from the plan; these fixtures only make data and a model.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from twin.plan import compute_plan
from twin.session import Twin, clean_copy

REPO = Path(__file__).resolve().parents[2]
STACK = os.environ.get("TWIN_STACK", "dev")


def say(text: str) -> None:
    """Stage lines the loop prints (``make e2e`` runs pytest with ``-s``)."""
    print(f"[twin {time.strftime('%H:%M:%S')}] {text}", flush=True)


@pytest.fixture(scope="session")
def plan_doc() -> dict:
    return compute_plan(REPO, STACK)


@pytest.fixture(scope="session")
def twin(plan_doc: dict) -> Iterator[Twin]:
    started = time.monotonic()
    running = Twin.start(REPO, plan_doc, log=say)
    say(f"twin up in {time.monotonic() - started:.0f}s")
    yield running
    running.stop()


def churn_frame(rows: int, seed: int, **shift: float):
    """Synthetic churn data; ``shift`` (e.g. ``monthly_spend=40.0``) simulates covariate drift."""
    from retrain.synthetic import generate_churn

    return generate_churn(rows, seed=seed, **shift)


def records_of(frame, count: int) -> list[dict]:
    """JSON-ready request records: features only (no target, no time column)."""
    sample = frame.drop(columns=["churn", "acquisition_date"]).head(count)
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in sample.to_dict("records")
    ]


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean copy of the checkout to build images from (the build context, as CodeBuild gets it)."""
    return clean_copy(REPO, tmp_path_factory.mktemp("workspace") / "repo")


@pytest.fixture(scope="session")
def model_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real package trained on synthetic churn data (the same path ``make demo`` takes)."""
    from model_package.archive import write_atomically
    from retrain.training import fit_candidate

    out = tmp_path_factory.mktemp("model")
    frame = churn_frame(3000, seed=0)
    result = fit_candidate(frame, "churn", name="churn", version=1, data_uri="file:///synthetic", git_sha="twin")
    write_atomically(out / "model.zip", result.data)
    return out / "model.zip"


def unzip(archive: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(dest)
    return dest


def shell(twin: Twin, command: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    """A command with the twin's shims on PATH (as a CodeBuild container of the twin would run it)."""
    done = subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=twin.shell_env(env), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise AssertionError(f"`{command}` failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout


PYTHON = sys.executable


@pytest.fixture(scope="session")
def app_image(twin: Twin, workspace: Path, model_zip: Path) -> str:
    """The app image built from docker/app.Dockerfile with the model baked in, pushed through the
    ``docker`` shim to the twin's ECR; returns ``<repository uri>@<digest>`` as imagedefinitions.json has it."""
    unzip(model_zip, workspace / "build" / "model-fixture")
    repository = twin.plan.outputs["appRepositoryUrl"]
    uri = f"{repository}:fixture-{int(time.time())}"
    started = time.monotonic()
    shell(
        twin,
        f"docker build -q --file docker/app.Dockerfile --build-arg MODEL_SRC=build/model-fixture --tag {uri} .",
        workspace,
    )
    shell(twin, f"docker push {uri}", workspace)
    digest = shell(twin, f"{PYTHON} -m release image-digest {uri}", workspace).strip()
    say(f"app image built and pushed in {time.monotonic() - started:.0f}s: {uri} ({digest[:19]})")
    return f"{repository}@{digest}"
