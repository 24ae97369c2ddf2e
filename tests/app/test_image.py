"""The serving image: hadolint clean, slim, non-root, health-checked, and free of training libraries."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.app.conftest import REPO, TrainedPackage

DOCKERFILE = REPO / "docker" / "app.Dockerfile"


def test_hadolint_is_clean() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run([str(hadolint), str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_shape() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=public\.ecr\.aws/docker/library/python:3\.11\.\d+-slim", text, re.M)
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*\n.*/health", text, re.M)
    assert "requirements/serving.txt" in text and "dev.lock" not in text and "jobs.txt" not in text
    assert "COPY ${MODEL_SRC}/ /opt/model/" in text and 'CMD ["python", "-m", "app"]' in text


def test_serving_requirements_have_no_training_libraries() -> None:
    names = {
        re.split(r"[=<>\[ ]", line, maxsplit=1)[0].lower()
        for line in (REPO / "requirements" / "serving.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {"fastapi", "uvicorn", "onnxruntime", "uvloop", "httptools"} <= names
    assert not names & {"scikit-learn", "pandas", "skops", "joblib", "scipy"}


def test_app_serves_with_scikit_learn_and_pandas_unimportable(trained: TrainedPackage, tmp_path: Path) -> None:
    """The image has neither: block their import and run model load + /predict in a fresh interpreter."""
    script = REPO / "tests" / "app" / "no_training_libs.py"
    argv = [sys.executable, str(script), str(trained.path), str(tmp_path / "spool"), json.dumps(trained.records[0])]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "200 7"
