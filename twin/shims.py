"""The ``docker`` and ``aws`` command-line shims the buildspecs call inside the twin (twin/bin/*).

``docker``: ``inspect``, ``images``, ``tag`` go to podman unchanged; ``buildx create`` is a no-op;
``build`` and ``buildx build`` become ``podman build`` (:func:`buildx_build_args`: stand-in base tag);
``login`` accepts the password on stdin and checks nothing (the twin's registry has no auth); ``push <ecr uri>``
pushes to the twin's local registry (``TWIN_REGISTRY``) and registers the pushed manifest in moto's ECR with
``PutImage`` and the registry's digest, so ECR ``DescribeImages`` (``python -m release image-digest``)
returns what was pushed; ``pull <ecr uri>`` pulls from the local registry and tags it with the ECR URI.

``aws``: only ``ecr get-login-password`` (what buildspec.yml calls), answered from moto's
``GetAuthorizationToken``. Anything else exits 2 naming what is supported.
"""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path

from twin.base_images import base_references, stand_in_reference
from twin.containers import ECR_HOST, AwsEndpoint
from twin.system import podman

PASSTHROUGH = {"inspect", "images", "tag", "rmi", "image", "version", "info"}


def _aws() -> AwsEndpoint:
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")
    if not endpoint or not region:
        raise SystemExit("twin shim: AWS_ENDPOINT_URL and AWS_DEFAULT_REGION must point at the twin's moto")
    return AwsEndpoint(endpoint, region)


def _registry() -> str:
    registry = os.environ.get("TWIN_REGISTRY")
    if not registry:
        raise SystemExit("twin docker shim: TWIN_REGISTRY (the local registry host:port) is not set")
    return registry


def _split_ecr(uri: str) -> tuple[str, str, str]:
    """(ecr host, repository, tag) of ``<acct>.dkr.ecr.<region>.amazonaws.com/<repo>:<tag>``."""
    host, _, rest = uri.partition("/")
    if not ECR_HOST.match(host) or ":" not in rest:
        raise SystemExit(f"twin docker shim: {uri!r} is not an ECR image URI with a tag; only those are pushed/pulled")
    repository, _, tag = rest.rpartition(":")
    return host, repository, tag


def _push(uri: str) -> int:
    from twin.registry import LocalRegistry

    _, repository, tag = _split_ecr(uri)
    registry = _registry()
    local = f"{registry}/{repository}:{tag}"
    podman("push", "--tls-verify=false", "--quiet", uri, f"docker://{local}", capture=False)
    port = registry.rsplit(":", 1)[1]
    manifest, media_type, digest = LocalRegistry([], port=int(port)).manifest(repository, tag)
    _aws().client("ecr").put_image(
        repositoryName=repository,
        imageManifest=manifest,
        imageManifestMediaType=media_type,
        imageTag=tag,
        imageDigest=digest,
    )
    print(f"{tag}: digest: {digest}")
    return 0


def _pull(uri: str) -> int:
    _, repository, tag = _split_ecr(uri)
    podman("pull", "--tls-verify=false", "--quiet", f"{_registry()}/{repository}:{tag}", capture=False)
    podman("tag", f"{_registry()}/{repository}:{tag}", uri)
    return 0


# `docker buildx build` options the twin drops: the registry cache and the BuildKit builder are not emulated
# (podman builds with its own layer cache; docs/twin.md). Each takes a value.
BUILDX_DROPPED = ("--cache-from", "--cache-to", "--builder")


def buildx_build_args(args: list[str]) -> list[str]:
    """``docker buildx build`` arguments as ``podman build`` arguments.

    Drops ``--load`` (podman builds into its local store anyway) and :data:`BUILDX_DROPPED`, and makes
    ``PYTHON_IMAGE`` the stand-in's tag (the given or the Dockerfile's default reference without its digest,
    twin/base_images.py), because podman cannot tag the stand-in by digest.
    """
    out: list[str] = []
    python_image: str | None = None
    dockerfile: str | None = None
    items = iter(args)
    for arg in items:
        name, eq, value = arg.partition("=")
        if arg == "--load":
            continue
        if name in BUILDX_DROPPED:
            if not eq:
                next(items, None)
            continue
        if name in ("--file", "-f"):
            dockerfile = value if eq else next(items, "")
            out += ["--file", dockerfile]
            continue
        if name == "--build-arg":
            build_arg = value if eq else next(items, "")
            if build_arg.startswith("PYTHON_IMAGE="):
                python_image = build_arg.partition("=")[2]
                continue
            out += ["--build-arg", build_arg]
            continue
        out.append(arg)
    if python_image is None and dockerfile:
        python_image = next(iter(base_references(Path(dockerfile))), None)
    if python_image:
        out = ["--build-arg", f"PYTHON_IMAGE={stand_in_reference(python_image)}", *out]
    return out


def _buildx(args: list[str]) -> int:
    """``buildx create``: a no-op (podman builds locally); ``buildx build``: ``podman build``."""
    if args[0] == "create":
        print("twin docker shim: `docker buildx create` is a no-op (podman builds locally)")
        return 0
    return podman("build", *buildx_build_args(args[1:]), check=False, capture=False).returncode


def docker(argv: list[str]) -> int:
    if not argv:
        print("twin docker shim: build, push, pull, inspect, login, tag, images", file=sys.stderr)
        return 2
    command, args = argv[0], argv[1:]
    if command in PASSTHROUGH:
        return podman(command, *args, check=False, capture=False).returncode
    if command == "build" or (command == "buildx" and args[:1] in (["create"], ["build"])):
        return _buildx(["build", *args] if command == "build" else args)
    if command == "login":
        if "--password-stdin" in args:
            sys.stdin.read()
        print("Login Succeeded (twin: the local registry has no auth)")
        return 0
    if command in ("push", "pull") and len(args) == 1:
        return (_push if command == "push" else _pull)(args[0])
    print(f"twin docker shim: `docker {command}` with {args} is not supported", file=sys.stderr)
    return 2


def aws(argv: list[str]) -> int:
    positional = [a for a in argv if not a.startswith("--")]
    if positional[:2] == ["ecr", "get-login-password"]:
        token = _aws().client("ecr").get_authorization_token()["authorizationData"][0]["authorizationToken"]
        print(base64.b64decode(token).decode().split(":", 1)[1])
        return 0
    print(f"twin aws shim: only `aws ecr get-login-password` is supported, not `aws {' '.join(argv)}`", file=sys.stderr)
    return 2


def main() -> int:
    tool, argv = sys.argv[1], sys.argv[2:]
    return {"docker": docker, "aws": aws}[tool](argv)


if __name__ == "__main__":
    raise SystemExit(main())
