"""Both buildspecs parse, validate against the repo's buildspec 0.2 schema, and agree with the infra."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "schemas" / "buildspec-0.2.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
BUILDSPECS = {
    "build": ROOT / "buildspec.yml",
    "release": ROOT / "release" / "buildspec.yml",
    "evaluate": ROOT / "evaluation" / "buildspec.yml",
}


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load(BUILDSPECS[name].read_text())


def errors(spec: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in VALIDATOR.iter_errors(spec)]


def all_commands(spec: dict[str, Any]) -> list[str]:
    return [c for phase in spec["phases"].values() for key in ("commands", "finally") for c in phase.get(key, [])]


def test_schema_is_draft_2020_12_and_cites_the_reference() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert "https://docs.aws.amazon.com/codebuild/latest/userguide/build-spec-ref.html" in SCHEMA["description"]


@pytest.mark.parametrize("name", sorted(BUILDSPECS))
def test_buildspec_validates(name: str) -> None:
    assert errors(load(name)) == []


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(spec: dict[str, Any]) -> None:
        *parents, leaf = path.split("/")
        node = spec
        for key in parents:
            node = node[key]
        node[leaf] = value

    return mutate


def _rename_phase(spec: dict[str, Any]) -> None:
    spec["phases"]["prebuild"] = spec["phases"].pop("pre_build")


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(spec: dict[str, Any]) -> None:
        *parents, leaf = path.split("/")
        node = spec
        for key in parents:
            node = node[key]
        del node[leaf]

    return mutate


BROKEN = {
    "misspelt phase": _rename_phase,
    "commands is a string": _set("phases/build/commands", "make test"),
    "a command YAML read as a mapping": _set("phases/build/commands", [{"echo result": "done"}]),
    "empty command list": _set("phases/build/commands", []),
    "phase without commands": _drop("phases/build/commands"),
    "unknown phase key": _set("phases/build/command", ["make"]),
    "bad on-failure": _set("phases/build/on-failure", "IGNORE"),
    "runtime-versions outside install": _set("phases/build/runtime-versions", {"python": "3.11"}),
    "no version": _drop("version"),
    "version 0.1": _set("version", 0.1),
    "no phases": _drop("phases"),
    "unknown top-level key": _set("artifact", {"files": ["x"]}),
    "unknown env key": _set("env/exported_variables", ["GIT_SHA"]),
    "exported AWS_ variable": _set("env/exported-variables", ["AWS_REGION"]),
    "reserved CODEBUILD_ variable": _set("env/variables/CODEBUILD_X", "1"),
    "bad shell": _set("env/shell", "zsh"),
    "artifacts without files": _drop("artifacts/files"),
    "secondary artifact without files": _drop("artifacts/secondary-artifacts/BuildRecord/files"),
    "secondary artifact files not a list": _set("artifacts/secondary-artifacts/BuildRecord/files", "build-record.json"),
    "unknown secondary artifact key": _set("artifacts/secondary-artifacts/BuildRecord/discard_paths", True),
    "bad discard-paths": _set("artifacts/secondary-artifacts/ImageDefinitions/discard-paths", "maybe"),
    "nested secondary artifacts": _set("artifacts/secondary-artifacts/BuildRecord/secondary-artifacts", {}),
    "cache without paths": _drop("cache/paths"),
}


@pytest.mark.parametrize("mutation", sorted(BROKEN))
def test_broken_variants_fail(mutation: str) -> None:
    spec = copy.deepcopy(load("build"))
    BROKEN[mutation](spec)
    assert errors(spec), f"the schema accepted a buildspec with {mutation}"


def test_unquoted_colon_command_is_caught_from_yaml_text() -> None:
    # The reference's warning: ': ' in a command must be quoted, or YAML makes it a mapping.
    text = "version: 0.2\nphases:\n  build:\n    commands:\n      - echo step: done\n"
    assert errors(yaml.safe_load(text))


def test_buildspec_names_the_same_container_as_the_infra() -> None:
    spec = load("build")
    for stack in ("dev", "prod"):
        candidates = [ROOT / f"Pulumi.{stack}.yaml", ROOT / "infra" / f"Pulumi.{stack}.yaml"]
        path = next((p for p in candidates if p.exists()), None)
        assert path is not None, f"Pulumi.{stack}.yaml not found in {[str(c) for c in candidates]}"
        config = yaml.safe_load(path.read_text())["config"]
        assert spec["env"]["variables"]["CONTAINER_NAME"] == config["ml-delivery:containerName"], path


def test_build_contract() -> None:
    spec = load("build")
    assert spec["env"]["shell"] == "bash"
    assert spec["env"]["exported-variables"] == [
        "GIT_SHA",
        "MODEL_VERSION",
        "MODEL_SHA256",
        "APP_IMAGE_URI",
        "JOBS_IMAGE_URI",
    ]
    assert list(spec["phases"]) == ["install", "pre_build", "build", "post_build"]
    assert spec["phases"]["install"]["runtime-versions"] == {"python": "3.11"}
    secondary = spec["artifacts"]["secondary-artifacts"]
    assert secondary["ImageDefinitions"] == {"files": ["imagedefinitions.json"], "discard-paths": True}
    assert secondary["BuildRecord"]["files"] == ["build-record.json"]
    pre_build = spec["phases"]["pre_build"]["commands"]
    # The suite runs (or is skipped for an already-tested sha: release/test_record.py) in one command.
    tests = next(c for c in pre_build if "make test" in c)
    assert "python -m release test-record check" in tests and "python -m release test-record write" in tests
    assert 'python -m retrain verify "$CODEBUILD_SRC_DIR_ModelSource"' in pre_build
    # Tests and model verification come before the registry login (and so before any build or push).
    login = next(i for i, c in enumerate(pre_build) if "docker login" in c)
    assert pre_build.index(tests) < pre_build.index('python -m retrain verify "$CODEBUILD_SRC_DIR_ModelSource"') < login
    for phase in ("install", "pre_build", "build"):
        assert spec["phases"][phase]["on-failure"] == "ABORT", "a failed phase must not fall through to the push"
    text = " ".join(all_commands(spec))
    assert ":latest" not in text
    # BuildKit (issue #16 item 8) loads into the local daemon; pushing stays in post_build, after the checks.
    builds = [c for c in all_commands(spec) if "buildx build" in c]
    assert len(builds) == 2 and all("--load" in c and "--push" not in c for c in builds)
    assert "--build-arg MODEL_SRC=" in text
    assert "--file docker/app.Dockerfile" in text
    assert "--file docker/jobs.Dockerfile" in text


def test_release_contract() -> None:
    spec = load("release")
    commands = all_commands(spec)
    assert any("pip install" in c and "-r release/requirements.txt" in c for c in commands)
    assert 'python -m release record --build-record "$CODEBUILD_SRC_DIR_BuildRecord/build-record.json"' in commands
    assert "artifacts" not in spec, "the release produces no artifact; it writes to the model bucket"


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
@pytest.mark.parametrize("name", sorted(BUILDSPECS))
def test_every_command_is_valid_bash(name: str) -> None:
    for command in all_commands(load(name)):
        result = subprocess.run(["bash", "-n", "-c", command], capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"{command!r}: {result.stderr}"


def _final_stage(dockerfile: Path) -> list[str]:
    """Instructions of the last stage, continuation lines joined."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    starts = [i for i, line in enumerate(lines) if line.upper().startswith("FROM ")]
    return lines[starts[-1] :] if starts else lines


def test_app_dockerfile_consumes_the_model_src_build_arg() -> None:
    """The build hands the unpacked model to the image build as MODEL_SRC (a path in the build context);
    MODEL_DIR is the container's runtime setting (/opt/model), a different thing with a different name."""
    dockerfile = ROOT / "docker" / "app.Dockerfile"
    assert "--build-arg MODEL_SRC=" in " ".join(all_commands(load("build")))
    stage = _final_stage(dockerfile)
    arg = next((i for i, line in enumerate(stage) if re.fullmatch(r"ARG MODEL_SRC(=\S*)?", line)), None)
    assert arg is not None, "the final stage must declare ARG MODEL_SRC"
    copy = next((i for i, line in enumerate(stage) if line.startswith("COPY") and "${MODEL_SRC}/" in line), None)
    assert copy is not None and copy > arg, "a COPY after the ARG must use ${MODEL_SRC}"
    assert stage[copy].split()[-1].rstrip("/") == "/opt/model"
    assert any(re.search(r"\bMODEL_DIR=/opt/model\b", line) for line in stage if line.startswith("ENV"))
