"""Run workloads from their images exactly as the plan declares them: ECS services and Batch jobs on podman.

ECS (a service's task definition, with the image ``imagedefinitions.json`` names, as the ECS deploy
action substitutes it): environment, secrets (from moto), user, ``readonlyRootFilesystem``
(``--read-only`` WITHOUT podman's default tmpfs mounts, which Fargate does not add), mount points as
bind mounts of host directories created root-owned 0755 as Fargate creates them, except that for a path
the image declares with ``VOLUME`` the image's content and ownership at that path are copied into the
empty volume first. That is the documented ECS behaviour ("Use bind mounts with Amazon ECS",
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/bind-mounts.html: "the Amazon ECS data plane
looks for a VOLUME directive. If the absolute path that's specified in the VOLUME directive is the same
as the containerPath that's specified in the task definition, the data in the VOLUME directive path is
copied to the data volume"; "By default, the volume permissions are set to 0755 and the owner as root.
You can customize these permissions in the Dockerfile"). Port mappings (``--network host``: the
container reaches moto on 127.0.0.1; services run one at a time on the plan's containerPort; the
service's load-balancer containerPort must be one of the container's port mappings, as ECS requires),
``stopTimeout``, memory, the container ``healthCheck`` (``podman exec`` at its interval/retries/
startPeriod) and the target group's HTTP health check in place of the ALB's.

Batch: the job definition's command (``Ref::`` parameters substituted), environment, secrets,
resourceRequirements (memory, vCPU), readonly root / user / mounts when declared, and the attempt timeout.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from twin.plan import Plan
from twin.system import podman

ECR_HOST = re.compile(r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com$")
# Fargate's own defaults when a healthCheck omits them (ECS API HealthCheck: interval 30, timeout 5,
# retries 3, startPeriod off).
HEALTH_DEFAULTS = {"interval": 30, "timeout": 5, "retries": 3, "startPeriod": 0}
PORT_WAIT_SECONDS = 60


class WorkloadError(RuntimeError):
    """A workload could not start, became unhealthy or failed; the message carries the container's logs."""


@dataclass(frozen=True)
class AwsEndpoint:
    """Where workloads send AWS calls (moto) and with which (dummy) credentials."""

    endpoint_url: str
    region: str

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": self.region,
        }

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


def local_image(uri: str, registry: str | None) -> str:
    """The local reference of ``uri``: ECR URIs are pulled from the twin's registry (by tag or digest)."""
    host, _, rest = uri.partition("/")
    if not ECR_HOST.match(host):
        return uri
    if registry is None:
        raise WorkloadError(f"{uri} is an ECR image but the twin has no registry running")
    local = f"{registry}/{rest}"
    podman("pull", "--quiet", "--tls-verify=false", local, timeout=600)
    return local


def image_volumes(image: str) -> list[str]:
    done = podman("image", "inspect", "--format", "{{range $k, $v := .Config.Volumes}}{{$k}}\n{{end}}", image)
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]


def _copy_image_path(image: str, path: str, dest: Path) -> None:
    """Copy the image's content at ``path`` (with ownership and modes) into the empty directory ``dest``."""
    mount = podman("image", "mount", image).stdout.strip()
    try:
        source = Path(mount) / path.lstrip("/")
        if source.is_dir():
            subprocess.run(["cp", "-a", f"{source}/.", str(dest)], check=True)
            stat = source.stat()
            os.chown(dest, stat.st_uid, stat.st_gid)
            dest.chmod(stat.st_mode & 0o7777)
    finally:
        podman("image", "unmount", image, check=False)


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _wait_port_free(port: int, timeout: float) -> bool:
    """A readiness wait: a service just stopped (or another process on this machine) may hold the port
    for a moment; services run one at a time on the plan's port."""
    deadline = time.monotonic() + timeout
    while not _port_free(port):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def _resolve_secrets(secrets: list[dict[str, str]], aws: AwsEndpoint) -> dict[str, str]:
    """ECS/Batch ``secrets``: valueFrom is a Secrets Manager or SSM parameter ARN/name, read from moto."""
    values: dict[str, str] = {}
    for secret in secrets:
        source = secret["valueFrom"]
        if ":secretsmanager:" in source:
            values[secret["name"]] = aws.client("secretsmanager").get_secret_value(SecretId=source)["SecretString"]
        else:
            name = source.split(":parameter", 1)[1] if ":parameter" in source else source
            reply = aws.client("ssm").get_parameter(Name=name, WithDecryption=True)
            values[secret["name"]] = reply["Parameter"]["Value"]
    return values


def _env_args(container: dict[str, Any], aws: AwsEndpoint) -> list[str]:
    env = {e["name"]: e["value"] for e in container.get("environment", [])}
    env.update(_resolve_secrets(container.get("secrets", []), aws))
    env.update(aws.env())
    args: list[str] = []
    for name, value in env.items():
        args += ["--env", f"{name}={value}"]
    return args


@dataclass
class Volumes:
    """The task's (or job's) bind-mount volumes: host directories, root-owned 0755, one per volume name."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="twin-volumes-")))
    made: dict[str, Path] = field(default_factory=dict)

    def args(self, declared: list[dict[str, Any]], mount_points: list[dict[str, Any]], image: str) -> list[str]:
        by_name = {v["name"]: v for v in declared}
        declared_in_image = set(image_volumes(image))
        args: list[str] = []
        for mount in mount_points:
            name = mount["sourceVolume"]
            if name not in by_name:
                raise WorkloadError(
                    f"mount point {mount['containerPath']} names volume {name!r}, not declared in volumes"
                )
            volume = by_name[name]
            if set(volume) - {"name", "host"} or (volume.get("host") or {}).get("sourcePath"):
                raise WorkloadError(
                    f"volume {name!r} is not a Fargate bind mount; the twin emulates only those: {volume}"
                )
            host_dir = self.made.get(name)
            if host_dir is None:
                host_dir = self.root / name
                host_dir.mkdir()
                os.chown(host_dir, 0, 0)
                host_dir.chmod(0o755)
                self.made[name] = host_dir
            if mount["containerPath"] in declared_in_image and not any(host_dir.iterdir()):
                _copy_image_path(image, mount["containerPath"], host_dir)
            suffix = ":ro" if mount.get("readOnly") else ""
            args += ["--volume", f"{host_dir}:{mount['containerPath']}{suffix}"]
        return args

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _container_args(container: dict[str, Any]) -> list[str]:
    # Only the task's own volumes are mounted: podman would otherwise add an anonymous writable volume for
    # every image VOLUME, hiding a missing mount point; a VOLUME path counts only where a mount point
    # names it (see Volumes.args). Stricter than Docker's anonymous volumes, on purpose (docs/twin.md).
    args: list[str] = ["--image-volume", "ignore"]
    if container.get("readonlyRootFilesystem"):
        # podman adds tmpfs on /tmp, /var/tmp, /run with --read-only unless told not to; Fargate does not.
        args += ["--read-only", "--read-only-tmpfs=false"]
    if container.get("user"):
        args += ["--user", str(container["user"])]
    if container.get("workingDirectory"):
        args += ["--workdir", container["workingDirectory"]]
    if container.get("entryPoint"):
        args += ["--entrypoint", " ".join(container["entryPoint"])]
    return args


def logs(name: str) -> str:
    done = podman("logs", name, check=False)
    return ((done.stdout or "") + (done.stderr or ""))[-6000:]


def _state(name: str) -> tuple[str, int]:
    done = podman("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", name, check=False)
    if done.returncode != 0:
        return "missing", -1
    status, code = done.stdout.split()
    return status, int(code)


@dataclass
class RunningTask:
    """One ECS task of a service on podman."""

    name: str
    container: dict[str, Any]
    port: int
    volumes: Volumes
    checks: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logs(self) -> str:
        return logs(self.name)

    def stop(self) -> None:
        timeout = int(self.container.get("stopTimeout", 30))
        podman("stop", "--time", str(timeout), self.name, check=False, timeout=timeout + 30)
        podman("rm", "--force", self.name, check=False)
        _wait_port_free(self.port, PORT_WAIT_SECONDS)
        self.volumes.cleanup()


def _exec_health(name: str, health: dict[str, Any]) -> bool:
    command = list(health["command"])
    if command and command[0] == "CMD-SHELL":
        argv = ["/bin/sh", "-c", " ".join(command[1:])]
    elif command and command[0] == "CMD":
        argv = command[1:]
    else:
        argv = command
    timeout = int(health.get("timeout", HEALTH_DEFAULTS["timeout"]))
    try:
        return podman("exec", name, *argv, check=False, timeout=timeout).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _wait_container_health(task: RunningTask, health: dict[str, Any]) -> None:
    """The task definition's healthCheck: healthy on the first success; unhealthy after ``retries`` failures
    that count only once ``startPeriod`` is over."""
    settings = {**HEALTH_DEFAULTS, **health}
    started = time.monotonic()
    failures = 0
    while True:
        status, code = _state(task.name)
        if status != "running":
            raise WorkloadError(f"{task.name} exited ({code}) before its health check passed:\n{task.logs()}")
        if _exec_health(task.name, settings):
            task.checks.append(f"container healthCheck {settings['command']} passed")
            return
        if time.monotonic() - started >= settings["startPeriod"]:
            failures += 1
            if failures >= settings["retries"]:
                raise WorkloadError(f"{task.name} UNHEALTHY after {failures} failed health checks:\n{task.logs()}")
        time.sleep(settings["interval"])


def _wait_target_health(task: RunningTask, target_group: dict[str, Any], grace: float, probe_every: float) -> None:
    """The target group's HTTP check on the container port, in place of the ALB: ``healthyThreshold``
    consecutive matcher answers within the service's grace period plus ``unhealthyThreshold`` intervals."""
    check = target_group.get("healthCheck", {})
    path = check.get("path", "/")
    matcher = {int(code) for code in str(check.get("matcher", "200")).split(",")}
    needed = int(check.get("healthyThreshold", 5))
    deadline = time.monotonic() + grace + int(check.get("interval", 30)) * int(check.get("unhealthyThreshold", 2))
    ok = 0
    last = "no answer"
    while time.monotonic() < deadline:
        status, code = _state(task.name)
        if status != "running":
            raise WorkloadError(f"{task.name} exited ({code}) before the target group saw it healthy:\n{task.logs()}")
        try:
            with urllib.request.urlopen(f"{task.url}{path}", timeout=int(check.get("timeout", 5))) as reply:
                last = str(reply.status)
                ok = ok + 1 if reply.status in matcher else 0
        except urllib.error.HTTPError as exc:
            last, ok = str(exc.code), 0
        except (urllib.error.URLError, OSError) as exc:
            last, ok = str(exc), 0
        if ok >= needed:
            task.checks.append(f"target group GET :{task.port}{path} -> {last} x{needed}")
            return
        time.sleep(probe_every)
    raise WorkloadError(
        f"{task.name}: target group check GET :{task.port}{path} never healthy (last: {last}):\n{task.logs()}"
    )


def run_service(
    plan: Plan,
    cluster: str,
    service: str,
    image_definitions: list[dict[str, str]],
    *,
    aws: AwsEndpoint,
    registry: str | None,
    probe_every: float = 1.0,
    resolve: Callable[[Any], Any] | None = None,
) -> RunningTask:
    """Deploy ``service`` as the ECS deploy action would: its task definition with the new image, until healthy."""
    svc = plan.service(cluster, service)
    task_def = plan.task_definition(svc["taskDefinition"])
    if resolve is not None:
        # Values moto generated differently from the plan's mocks (queue URLs, key ids): twin.aws.TwinAws.resolve.
        task_def = resolve(task_def)
    containers = task_def["containerDefinitions"]
    names = {c["name"] for c in containers}
    for definition in image_definitions:
        if definition["name"] not in names:
            # What the ECS deploy action reports when imagedefinitions.json names no container of the task.
            raise WorkloadError(
                f"imagedefinitions.json names container {definition['name']!r}; the task has {sorted(names)}"
            )
    if len(containers) != 1:
        raise WorkloadError(f"the twin runs single-container tasks; {task_def['family']} has {len(containers)}")
    container = dict(containers[0])
    for definition in image_definitions:
        if definition["name"] == container["name"]:
            container["image"] = definition["imageUri"]
    balancer = svc["loadBalancers"][0]
    if balancer["containerName"] != container["name"]:
        raise WorkloadError(
            f"service {service} balances container {balancer['containerName']!r}, task has {container['name']!r}"
        )
    mapped = [int(p["containerPort"]) for p in container.get("portMappings", [])]
    port = int(balancer["containerPort"])
    if port not in mapped:
        # ECS rejects the service: the load balancer's container port must be a port mapping of the container.
        raise WorkloadError(
            f"service {service}: load balancer containerPort {port} is not in "
            f"{container['name']}'s portMappings {mapped}"
        )
    if not _wait_port_free(port, PORT_WAIT_SECONDS):
        raise WorkloadError(
            f"127.0.0.1:{port} is in use; the twin runs services with --network host on the plan's port"
        )
    image = local_image(container["image"], registry)
    name = f"twin-{service}-{uuid.uuid4().hex[:6]}"
    volumes = Volumes()
    memory = container.get("memory") or task_def.get("memory")
    args = [
        "run", "--detach", "--name", name, "--network", "host",
        "--stop-timeout", str(int(container.get("stopTimeout", 30))),
        *(["--memory", f"{int(memory)}m"] if memory else []),
        *_container_args(container),
        *_env_args(container, aws),
        *volumes.args(task_def.get("volumes", []), container.get("mountPoints", []), image),
        image,
        *container.get("command", []),
    ]  # fmt: skip
    try:
        podman(*args)
    except BaseException:
        podman("rm", "--force", name, check=False)
        volumes.cleanup()
        raise
    task = RunningTask(name=name, container=container, port=port, volumes=volumes)
    mounts = [m["containerPath"] for m in container.get("mountPoints", [])]
    task.checks.append(
        f"{task_def['family']}: image {container['image']}, port {port}, "
        f"user {container.get('user', 'image default')}, "
        f"readonlyRoot {bool(container.get('readonlyRootFilesystem'))}, mounts {mounts}"
    )
    try:
        if container.get("healthCheck"):
            _wait_container_health(task, container["healthCheck"])
        _wait_target_health(
            task,
            plan.target_group(balancer["targetGroupArn"]),
            float(svc.get("healthCheckGracePeriodSeconds", 0)),
            probe_every,
        )
    except BaseException:
        task.stop()
        raise
    return task


@dataclass(frozen=True)
class JobResult:
    name: str
    exit_code: int
    logs: str
    seconds: float


def _substitute_refs(command: list[str], parameters: dict[str, str]) -> list[str]:
    """Batch replaces ``Ref::name`` placeholders with the job's parameters (definition defaults + submit)."""
    return [parameters.get(part[5:], part) if part.startswith("Ref::") else part for part in command]


def run_job(
    container_properties: dict[str, Any],
    aws: AwsEndpoint,
    registry: str | None,
    *,
    label: str,
    parameters: dict[str, str] | None = None,
    timeout_seconds: float | None = None,
    image: str | None = None,
    log: Callable[[str], None] = print,
) -> JobResult:
    """Run one Batch job attempt from its job definition's container properties; wait for it to exit."""
    props = dict(container_properties)
    if image:
        props["image"] = image
    local = local_image(props["image"], registry)
    resources = {r["type"]: r["value"] for r in props.get("resourceRequirements", [])}
    name = f"twin-job-{label}-{uuid.uuid4().hex[:6]}"
    volumes = Volumes()
    args = [
        "run", "--name", name, "--network", "host",
        *(["--memory", f"{int(resources['MEMORY'])}m"] if "MEMORY" in resources else []),
        *(["--cpus", str(resources["VCPU"])] if "VCPU" in resources else []),
        *_container_args(props),
        *_env_args(props, aws),
        *volumes.args(props.get("volumes", []), props.get("mountPoints", []), local),
        local,
        *_substitute_refs(list(props.get("command", [])), parameters or {}),
    ]  # fmt: skip
    started = time.monotonic()
    try:
        done = podman(*args, check=False, timeout=timeout_seconds)
        code = done.returncode
    except subprocess.TimeoutExpired:
        podman("stop", "--time", "5", name, check=False)
        code = -1
    output = logs(name)
    podman("rm", "--force", name, check=False)
    volumes.cleanup()
    return JobResult(name=label, exit_code=code, logs=output, seconds=time.monotonic() - started)
