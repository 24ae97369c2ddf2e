"""The twin's docker shim turns the buildspec's `docker buildx build` into a podman build the stand-in serves."""

from __future__ import annotations

from pathlib import Path

from twin.base_images import base_references, stand_in_reference
from twin.shims import buildx_build_args

ROOT = Path(__file__).resolve().parents[2]


def test_buildx_build_drops_the_registry_cache_and_builder_and_uses_the_stand_in_tag() -> None:
    args = buildx_build_args(
        [
            "--load",
            "--builder",
            "ml-delivery",
            "--file",
            str(ROOT / "docker/app.Dockerfile"),
            "--cache-from",
            "type=registry,ref=r/app:buildcache",
            "--cache-to=type=registry,ref=r/app:buildcache,mode=max",
            "--build-arg",
            "MODEL_SRC=model",
            "-t",
            "r/app:abc",
            ".",
        ]
    )
    joined = " ".join(args)
    assert "--load" not in args and "--builder" not in args and "cache" not in joined
    assert args[-1] == "." and args[args.index("MODEL_SRC=model") - 1 :][:2] == ["--build-arg", "MODEL_SRC=model"]
    default = base_references(ROOT / "docker/app.Dockerfile")[0]
    assert "@sha256:" in default  # the Dockerfile pins the base by digest
    assert args[:2] == ["--build-arg", f"PYTHON_IMAGE={stand_in_reference(default)}"]
    assert "@" not in args[1]


def test_a_given_digest_pinned_python_image_is_built_from_its_tag() -> None:
    args = buildx_build_args(
        ["--file=docker/jobs.Dockerfile", "--build-arg", "PYTHON_IMAGE=example/python:3.11@sha256:" + "a" * 64, "."]
    )
    assert args == ["--build-arg", "PYTHON_IMAGE=example/python:3.11", "--file", "docker/jobs.Dockerfile", "."]
