"""A local OCI registry (Debian's ``docker-registry``) on 127.0.0.1 standing in for ECR.

moto's ECR keeps image metadata but stores no layers, so pushes and pulls go to this registry and the
``docker`` shim registers each pushed manifest in moto's ECR (``PutImage`` with the registry's digest):
``python -m release image-digest`` (ECR ``DescribeImages``) then returns the digest that was pushed.

The plan's ECR URIs (``<acct>.dkr.ecr.<region>.amazonaws.com/<repo>``) are mapped to this registry in a
registries.conf the twin points ``CONTAINERS_REGISTRIES_CONF`` at; podman applies that mapping on pull only
(a push still dials the ECR host), so the ``docker`` shim pushes to ``address`` itself and workloads pull
from it explicitly (``twin.containers.local_image``).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

CONFIG_TEMPLATE = """\
# Written by twin/registry.py: the twin's stand-in for ECR (no auth, loopback only, throwaway storage).
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
"""


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LocalRegistry:
    """``docker-registry serve`` in a subprocess, with storage in a temp dir."""

    ecr_registries: list[str]
    port: int = field(default_factory=_free_port)
    # Made by start(): a LocalRegistry built only to read manifests (the docker shim) leaves nothing behind.
    workdir: Path = field(default_factory=lambda: Path("/nonexistent-twin-registry"))
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def registries_conf(self) -> Path:
        return self.workdir / "registries.conf"

    def start(self) -> LocalRegistry:
        self.workdir = Path(tempfile.mkdtemp(prefix="twin-registry-"))
        (self.workdir / "storage").mkdir(parents=True, exist_ok=True)
        config = self.workdir / "config.yml"
        config.write_text(CONFIG_TEMPLATE.format(root=self.workdir / "storage", port=self.port))
        lines = ['unqualified-search-registries = ["docker.io"]', ""]
        for registry in self.ecr_registries:
            lines += ["[[registry]]", f'prefix = "{registry}"', f'location = "{self.address}"', "insecure = true", ""]
        lines += ["[[registry]]", f'location = "{self.address}"', "insecure = true", ""]
        self.registries_conf.write_text("\n".join(lines))
        log = (self.workdir / "registry.log").open("wb")
        self.process = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {(self.workdir / 'registry.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://{self.address}/v2/", timeout=1) as reply:
                    if reply.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        raise RuntimeError(f"docker-registry not answering on {self.address} after 30s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None

    def manifest(self, repository: str, reference: str) -> tuple[str, str, str]:
        """(manifest text, media type, digest) of ``repository:reference`` as the registry serves it."""
        accept = ", ".join(
            (
                "application/vnd.oci.image.manifest.v1+json",
                "application/vnd.docker.distribution.manifest.v2+json",
                "application/vnd.oci.image.index.v1+json",
                "application/vnd.docker.distribution.manifest.list.v2+json",
            )
        )
        request = urllib.request.Request(
            f"http://{self.address}/v2/{repository}/manifests/{reference}", headers={"Accept": accept}
        )
        with urllib.request.urlopen(request, timeout=10) as reply:
            body = reply.read().decode()
            media_type = reply.headers.get("Content-Type", "") or json.loads(body).get("mediaType", "")
            digest = reply.headers["Docker-Content-Digest"]
        return body, media_type, digest
