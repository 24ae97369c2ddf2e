"""The twin's engine pieces on their own: FROM parsing, the stand-in base image, the buildspec runner."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.twin.conftest import REPO
from twin.base_images import (
    HOST_CA_BUNDLE,
    BaseImageError,
    all_base_references,
    base_references,
    stand_in_reference,
)
from twin.pipeline import StageFailedError, new_run
from twin.session import Twin
from twin.system import podman


def test_from_references_resolve_arg_defaults_and_skip_stages(tmp_path: Path) -> None:
    dockerfile = tmp_path / "x.Dockerfile"
    dockerfile.write_text(
        "ARG BASE=python:3.11.9-slim-bookworm\nARG OTHER\n"
        "FROM ${BASE} AS deps\nRUN true\nFROM deps\nFROM --platform=linux/amd64 $BASE\nFROM scratch\n"
    )
    assert base_references(dockerfile) == ["python:3.11.9-slim-bookworm", "python:3.11.9-slim-bookworm"]
    dockerfile.write_text("FROM ${OTHER}\n")
    with pytest.raises(BaseImageError, match=r"\$OTHER, which has no ARG default"):
        base_references(dockerfile)
    refs = all_base_references(REPO / "docker")
    # ECR Public's copy of the official image, pinned by digest (no Docker Hub; issue #16 item 6).
    assert refs and all(ref.startswith("public.ecr.aws/docker/library/python:3.11") for ref in refs), refs
    assert all("@sha256:" in ref and "@" not in stand_in_reference(ref) for ref in refs), refs


def test_stand_in_behaves_like_the_official_image_where_the_dockerfiles_need_it(twin: Twin) -> None:
    """python/pip in /usr/local/bin, a working venv, groupadd/useradd, the host CA bundle trusted."""
    host_ca = hashlib.sha256(HOST_CA_BUNDLE.read_bytes()).hexdigest()
    for ref in all_base_references(REPO / "docker"):
        script = (
            "set -e; for c in python pip groupadd useradd; do command -v $c; done; "
            "python -m venv /tmp/v; /tmp/v/bin/pip --version >/dev/null; "
            "sha256sum /etc/ssl/certs/ca-certificates.crt; python -c 'import os; print(os.environ[\"PIP_CERT\"])'"
        )
        out = podman("run", "--rm", stand_in_reference(ref), "sh", "-c", script).stdout.split()
        assert out[:4] == ["/usr/local/bin/python", "/usr/local/bin/pip", "/usr/sbin/groupadd", "/usr/sbin/useradd"]
        assert out[4] == host_ca, f"{ref} does not trust the host's CA bundle"
        assert out[-1] == "/etc/ssl/certs/ca-certificates.crt"


def test_buildspec_phases_follow_codebuild(twin: Twin, tmp_path: Path) -> None:
    """One shell for all commands (exports persist); a failed build still runs post_build with
    CODEBUILD_BUILD_SUCCEEDING=0; a failed pre_build skips build and post_build; exported variables come back."""
    run = new_run(twin, log=lambda line: None)
    src = tmp_path / "src"
    src.mkdir()
    ok = {
        "env": {"variables": {"GREETING": "hi"}, "exported-variables": ["OUT"]},
        "phases": {
            "install": {"commands": ["export A=1"]},
            "build": {"commands": ['test "$A" = 1 && OUT="$GREETING-$A" && export OUT']},
        },
    }
    exported, _ = run._run_buildspec(ok, src, {}, "ok")
    assert exported == {"OUT": "hi-1"}

    failing_build = {
        "phases": {
            "build": {"commands": ["false", "touch should-not-exist"]},
            "post_build": {"commands": ['echo "$CODEBUILD_BUILD_SUCCEEDING" > post-ran']},
        }
    }
    with pytest.raises(StageFailedError, match="phase build command 1 failed"):
        run._run_buildspec(failing_build, src, {}, "failing-build")
    assert (src / "post-ran").read_text().strip() == "0"
    assert not (src / "should-not-exist").exists()

    failing_pre = {
        "phases": {
            "pre_build": {"on-failure": "ABORT", "commands": ['test -n "$UNSET_IN_THE_TWIN"']},
            "build": {"commands": ["touch built"]},
            "post_build": {"commands": ["touch posted"]},
        }
    }
    with pytest.raises(StageFailedError, match="phase pre_build command 1 failed"):
        run._run_buildspec(failing_pre, src, {}, "failing-pre")
    assert not (src / "built").exists() and not (src / "posted").exists()
    run.stop()


def test_a_codebuild_action_reaches_a_running_service_through_its_load_balancer_url(
    plan_doc: dict, tmp_path: Path
) -> None:
    """Issue #16's Evaluate action calls the stage service by the plan's stage URL (the ALB); in the twin the
    URL of the load balancer whose listener forwards to the deployed service routes to the running task."""
    from types import SimpleNamespace

    from twin.pipeline import PipelineRun
    from twin.plan import Plan

    plan = Plan(plan_doc)
    run = PipelineRun(twin=SimpleNamespace(plan=plan), workdir=tmp_path)  # type: ignore[arg-type]
    deploy = {s["name"]: s["actions"][0]["configuration"] for s in plan.pipeline()["stages"]}
    stage, prod = deploy["DeployStage"], deploy["DeployProd"]
    balancers = run._load_balancers(stage["ClusterName"], stage["ServiceName"])
    assert len(balancers) == 1 and balancers[0].startswith("stage-alb")
    run.routes = {balancers[0]: (stage["ServiceName"], "http://127.0.0.1:18080")}
    assert run._route(plan.outputs["stageUrl"]) == "http://127.0.0.1:18080"
    assert run._route(plan.outputs["prodUrl"]) == plan.outputs["prodUrl"]  # not running: left as it is
    assert run._load_balancers(prod["ClusterName"], prod["ServiceName"]) != balancers
