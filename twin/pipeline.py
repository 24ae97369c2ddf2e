"""A small runner that walks the plan's CodePipeline stages in order with the real artifacts.

Read from the plan's ``aws:codepipeline/pipeline:Pipeline`` resource, each action is played by the twin:

- Source/CodeCommit: a clean copy of the checkout (``CommitId`` = its git HEAD).
- Source/S3: the object in moto, unzipped as CodePipeline unzips an S3 source (``VersionId`` from moto).
- Build/CodeBuild: the project's buildspec (from the plan's project) run with bash in a fresh copy of the
  primary input, with the project's environment variables, the action's (``#{Ns.Var}`` resolved),
  ``CODEBUILD_SRC_DIR[_<input>]`` and the ``docker``/``aws`` shims first on PATH. All commands share one
  shell as CodeBuild version 0.2 does; a failing command fails its phase; ``post_build`` runs after a
  failed ``build`` (with ``CODEBUILD_BUILD_SUCCEEDING=0``) as CodeBuild does; ``on-failure: ABORT`` of
  install/pre_build stops the build. Secondary artifacts and exported variables are collected.
- Deploy/ECS: the service's task definition with the image of ``imagedefinitions.json``, until healthy
  (twin.containers.run_service). Services run one at a time (host network, the plan's port). A later
  CodeBuild action that names the service's load balancer by URL (``http(s)://<lb name>-….elb.amazonaws.com``,
  AWS's ALB DNS form; e.g. the Evaluate action's ``STAGE_URL``) reaches the running task instead.
- Approval/Manual: its ``CustomData`` and ``ExternalEntityLink`` resolved (every ``#{Ns.Var}`` must come from
  an earlier action, as in CodePipeline), then approved.

Not emulated (docs/twin.md): CodePipeline itself (triggers, retries, superseding), CodeBuild's image
(commands run on this host), runtime-versions, caching, ALB routing, Fargate scheduling, rollbacks.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from twin.containers import RunningTask, run_service
from twin.session import Twin, clean_copy, git_sha

PHASES = ("install", "pre_build", "build", "post_build")
# The app flushes its capture every 5 s (CAPTURE_FLUSH_SECONDS default); this leaves room for retries.
SMOKE_CAPTURE_SECONDS = 30
_VARIABLE = re.compile(r"#\{([A-Za-z0-9_]+)\.([A-Za-z0-9_]+)\}")


class StageFailedError(RuntimeError):
    """A pipeline action failed; the message names the stage, action and what went wrong."""


@dataclass
class StageResult:
    stage: str
    action: str
    seconds: float
    checked: list[str]


@dataclass
class PipelineRun:
    """State of one execution: artifacts (name -> dir), namespaces (name -> variables), running services."""

    twin: Twin
    workdir: Path
    log: Callable[[str], None] = print
    # A buildspec command to replace (exact text -> replacement), e.g. `make test` when CI ran it already.
    command_overrides: dict[str, str] = field(default_factory=dict)
    # CodeBuild environment variables to set over the project's and the action's (name -> value), for what
    # the twin cannot emulate, e.g. PIPELINE_NAME="" where a step would ask CodePipeline's execution history.
    environment_overrides: dict[str, str] = field(default_factory=dict)
    execution_id: str = field(default_factory=lambda: f"twin-{int(time.time())}")
    artifacts: dict[str, Path] = field(default_factory=dict)
    namespaces: dict[str, dict[str, str]] = field(default_factory=dict)
    services: dict[str, RunningTask] = field(default_factory=dict)
    # Load balancer name -> (service name, the running task's URL): the plan's listener -> target group -> service.
    routes: dict[str, tuple[str, str]] = field(default_factory=dict)
    results: list[StageResult] = field(default_factory=list)

    def resolve(self, text: str) -> str:
        """``#{Namespace.Variable}`` as CodePipeline substitutes it; an unknown one fails as it would."""

        def one(match: re.Match[str]) -> str:
            namespace = "codepipeline" if match.group(1) == "codepipeline" else match.group(1)
            if namespace == "codepipeline" and match.group(2) == "PipelineExecutionId":
                return self.execution_id
            try:
                return self.namespaces[namespace][match.group(2)]
            except KeyError:
                raise StageFailedError(
                    f"variable #{{{match.group(1)}.{match.group(2)}}} is not produced by any earlier action"
                ) from None

        return _VARIABLE.sub(one, text)

    # -- actions ---------------------------------------------------------------------------------
    def _source_codecommit(self, action: dict[str, Any]) -> list[str]:
        out = self.workdir / f"artifact-{action['outputArtifacts'][0]}"
        clean_copy(self.twin.repo, out)
        sha = git_sha(self.twin.repo)
        self.artifacts[action["outputArtifacts"][0]] = out
        self.namespaces[action.get("namespace", action["name"])] = {
            "CommitId": sha,
            "BranchName": action["configuration"]["BranchName"],
        }
        return [f"repository copy at {sha[:12]} (tracked + new files)"]

    def _source_s3(self, action: dict[str, Any]) -> list[str]:
        config = action["configuration"]
        s3 = self.twin.aws.client("s3")
        reply = s3.get_object(Bucket=config["S3Bucket"], Key=config["S3ObjectKey"])
        out = self.workdir / f"artifact-{action['outputArtifacts'][0]}"
        out.mkdir()
        archive = self.workdir / "source.zip"
        archive.write_bytes(reply["Body"].read())
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(out)
        archive.unlink()
        version = reply.get("VersionId") or ""
        if not version or version == "null":
            raise StageFailedError(
                f"s3://{config['S3Bucket']}/{config['S3ObjectKey']} has no version id; "
                "the S3 source needs a versioned bucket"
            )
        self.artifacts[action["outputArtifacts"][0]] = out
        self.namespaces[action.get("namespace", action["name"])] = {
            "VersionId": version,
            "ETag": reply["ETag"].strip('"'),
        }
        return [
            f"s3://{config['S3Bucket']}/{config['S3ObjectKey']} version {version} "
            f"unzipped ({len(list(out.rglob('*')))} files)"
        ]

    def _codebuild(self, action: dict[str, Any]) -> list[str]:
        config = action["configuration"]
        project = self.twin.plan.codebuild_project(config["ProjectName"])
        inputs = action.get("inputArtifacts", [])
        primary = config.get("PrimarySource", inputs[0])
        src = self.workdir / f"codebuild-{action['name']}"
        shutil.copytree(self.artifacts[primary], src, symlinks=True)
        env: dict[str, str] = {}
        for var in project["environment"].get("environmentVariables", []):
            if var.get("type", "PLAINTEXT") != "PLAINTEXT":
                raise StageFailedError(
                    f"project {config['ProjectName']}: {var['name']} is {var['type']}; the twin resolves PLAINTEXT only"
                )
            env[var["name"]] = var["value"]
        for var in json.loads(config.get("EnvironmentVariables", "[]")):
            env[var["name"]] = self.resolve(var["value"])
        env = {name: self._route(value) for name, value in {**env, **self.environment_overrides}.items()}
        env["CODEBUILD_SRC_DIR"] = str(src)
        for name in inputs:
            if name != primary:
                env[f"CODEBUILD_SRC_DIR_{name}"] = str(self.artifacts[name])
        env["CODEBUILD_RESOLVED_SOURCE_VERSION"] = self.namespaces.get("CodeSource", {}).get("CommitId", "")
        env["CODEBUILD_BUILD_ID"] = f"{config['ProjectName']}:{self.execution_id}"
        buildspec_path = project["source"].get("buildspec") or "buildspec.yml"
        spec = yaml.safe_load((src / buildspec_path).read_text())
        exported, checked = self._run_buildspec(spec, src, env, action["name"])
        if action.get("namespace"):
            self.namespaces[action["namespace"]] = exported
        for artifact_name in action.get("outputArtifacts", []):
            secondary = (spec.get("artifacts", {}).get("secondary-artifacts") or {}).get(artifact_name)
            if secondary is None:
                raise StageFailedError(f"{action['name']}: buildspec has no secondary artifact {artifact_name!r}")
            out = self.workdir / f"artifact-{artifact_name}"
            out.mkdir()
            for pattern in secondary["files"]:
                matches = list(src.glob(pattern))
                if not matches:
                    raise StageFailedError(
                        f"{action['name']}: artifact {artifact_name} file {pattern!r} was not produced"
                    )
                for match in matches:
                    target = out / (
                        match.name if secondary.get("discard-paths") in (True, "yes") else match.relative_to(src)
                    )
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(match, target)
            self.artifacts[artifact_name] = out
            checked.append(f"artifact {artifact_name}: {sorted(p.name for p in out.iterdir())}")
        return checked

    def _run_buildspec(
        self, spec: dict[str, Any], src: Path, env: dict[str, str], label: str
    ) -> tuple[dict[str, str], list[str]]:
        """One bash session for all phases, as CodeBuild runs them; returns exported variables."""
        for name, value in (spec.get("env", {}).get("variables") or {}).items():
            env.setdefault(name, str(value))
        exported_names = spec.get("env", {}).get("exported-variables") or []
        # CodeBuild's phase transitions: a failed install/pre_build ends the build; a failed build still
        # runs post_build (CODEBUILD_BUILD_SUCCEEDING=0); a failed command skips the rest of its phase.
        lines = ["export CODEBUILD_BUILD_SUCCEEDING=1", "twin_failed=''", "twin_phase_failed=''"]
        for phase in PHASES:
            body = (spec.get("phases") or {}).get(phase)
            if not body:
                continue
            lines.append("twin_phase_failed=''")
            skip_if = (
                '[ "$twin_failed" = install ] || [ "$twin_failed" = pre_build ]'
                if phase == "post_build"
                else '[ -n "$twin_failed" ]'
            )
            lines.append(f"if ! {{ {skip_if}; }}; then echo '[twin {label}] phase {phase}'; fi")
            for index, original in enumerate(body.get("commands", [])):
                command = self.command_overrides.get(original.strip(), original)
                first = command.strip().splitlines()[0][:150]
                lines += [
                    f'if ! {{ {skip_if}; }} && [ -z "$twin_phase_failed" ]; then',
                    f"echo {shlex.quote(f'[twin {label}] + {first}')}",
                    f"{{\n{command}\n}}",
                    "twin_rc=$?",
                    "if [ $twin_rc -ne 0 ]; then",
                    f'  echo "[twin {label}] phase {phase} command {index + 1} failed ($twin_rc)" >&2',
                    f"  twin_phase_failed={phase}; twin_failed=${{twin_failed:-{phase}}}",
                    "  export CODEBUILD_BUILD_SUCCEEDING=0",
                    "fi",
                    "fi",
                ]
        lines.append('if [ -n "$twin_failed" ]; then exit 91; fi')
        lines.append(
            f'for v in {" ".join(exported_names)}; do printf \'%s=%s\\0\' "$v" "${{!v}}" >> "$TWIN_EXPORTS"; done'
        )
        script = self.workdir / f"{label}.sh"
        script.write_text("\n".join(line for line in lines if line) + "\n")
        exports = self.workdir / f"{label}.exports"
        exports.touch()
        run_env = self.twin.shell_env({**env, "TWIN_EXPORTS": str(exports)})
        started = time.monotonic()
        log_path = self.workdir / f"{label}.log"
        tail: list[str] = []
        with log_path.open("w") as log_file:
            process = subprocess.Popen(
                ["bash", str(script)], cwd=src, env=run_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
            assert process.stdout is not None
            for line in process.stdout:
                log_file.write(line)
                tail = [*tail[-80:], line.rstrip()]
                if line.startswith(f"[twin {label}]"):
                    self.log(f"    {line.rstrip()[:200]}")
            returncode = process.wait()
        if returncode != 0:
            raise StageFailedError(f"{label}: buildspec failed ({returncode}); log {log_path}:\n" + "\n".join(tail))
        exported = dict(item.split("=", 1) for item in exports.read_text().split("\0") if item)
        checked = [f"buildspec phases ran in {time.monotonic() - started:.0f}s (log {log_path.name})"]
        checked += [f"exported {k}={v}" for k, v in exported.items()]
        return exported, checked

    def _deploy_ecs(self, action: dict[str, Any]) -> list[str]:
        config = action["configuration"]
        definitions = json.loads((self.artifacts[action["inputArtifacts"][0]] / config["FileName"]).read_text())
        for name, running in list(self.services.items()):
            # One service at a time: both use the plan's port on the host network.
            running.stop()
            del self.services[name]
        task = run_service(
            self.twin.plan,
            config["ClusterName"],
            config["ServiceName"],
            definitions,
            aws=self.twin.aws,
            registry=self.twin.registry.address,
            resolve=self.twin.resources.resolve,
        )
        self.services[config["ServiceName"]] = task
        try:
            smoke = self._smoke(task)
        except BaseException:
            task.stop()
            del self.services[config["ServiceName"]]
            raise
        self.routes = {lb: route for lb, route in self.routes.items() if route[0] in self.services}
        for lb in self._load_balancers(config["ClusterName"], config["ServiceName"]):
            self.routes[lb] = (config["ServiceName"], task.url)
        routed = [f"load balancer {lb} routes to {task.url}" for lb, (svc, _) in self.routes.items()
                  if svc == config["ServiceName"]]  # fmt: skip
        return [*task.checks, f"image from {config['FileName']}: {definitions[0]['imageUri']}", *smoke, *routed]

    def _load_balancers(self, cluster: str, service: str) -> list[str]:
        """Names of the plan's load balancers whose listeners forward to this service's target groups."""
        groups = {lb["targetGroupArn"] for lb in self.twin.plan.service(cluster, service).get("loadBalancers") or []}
        names = []
        for listener in self.twin.plan.of_type("aws:lb/listener:Listener"):
            inputs = listener["inputs"]
            forwards = {a.get("targetGroupArn") for a in inputs.get("defaultActions") or []}
            if forwards & groups and inputs.get("loadBalancerArn"):
                # arn:...:loadbalancer/app/<name>/<id>
                names.append(str(inputs["loadBalancerArn"]).split(":loadbalancer/", 1)[1].split("/")[1])
        return sorted(set(names))

    def _route(self, value: str) -> str:
        """A URL of a running service's load balancer (an ALB's DNS name starts with its name) -> the task."""
        for lb, (_service, url) in self.routes.items():
            # An internal ALB's DNS name is internal-<name>-… (ELB User Guide, "Application Load Balancers").
            pattern = rf"https?://(?:internal-)?{re.escape(lb)}-[A-Za-z0-9-]+\.[a-z0-9-]+\.elb\.amazonaws\.com/?"
            value = re.sub(pattern, url, value)
        return value

    def _smoke(self, task: RunningTask) -> list[str]:
        """What an operator checks on stage before approving (the approval's CustomData): a few predictions,
        and that the service captures them to the plan's capture bucket, which monitoring reads. Rows are
        the model package's own reference.csv (the ModelSource artifact), target column dropped."""
        manifests = [p for p in self.artifacts.values() if (p / "manifest.json").is_file()]
        if not manifests:
            raise StageFailedError("no artifact holds a model package (manifest.json) to take smoke rows from")
        package = manifests[0]
        target = json.loads((package / "manifest.json").read_text())["target"]
        lines = (package / "reference.csv").read_text().splitlines()
        header = lines[0].split(",")
        keep = [i for i, column in enumerate(header) if column != target]
        rows = [",".join(cells[i] for i in keep) for cells in (line.split(",") for line in [lines[0], *lines[1:6]])]
        bucket = self.twin.plan.outputs["captureBucket"]
        s3 = self.twin.aws.client("s3")
        before = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}
        request = urllib.request.Request(
            f"{task.url}/predict", data="\n".join(rows).encode(), headers={"Content-Type": "text/csv"}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                answered = len(json.loads(reply.read())["predictions"])
        except (urllib.error.URLError, OSError, ValueError, KeyError) as exc:
            raise StageFailedError(f"POST /predict on {task.name} failed: {exc}\n{task.logs()}") from exc
        deadline = time.monotonic() + SMOKE_CAPTURE_SECONDS
        while time.monotonic() < deadline:
            new = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])} - before
            if new:
                return [f"POST /predict: {answered} predictions", f"captured to s3://{bucket}/{sorted(new)[0]}"]
            time.sleep(1)
        raise StageFailedError(
            f"{task.name} answered {answered} predictions but captured nothing to s3://{bucket}/ within "
            f"{SMOKE_CAPTURE_SECONDS}s (monitoring would see no traffic):\n{task.logs()}"
        )

    def _emit(self, detail_type: str, detail: dict[str, Any]) -> list[str]:
        """Put the event CodePipeline would emit on the default bus; name every plan rule whose SQS probe
        got it (moto matches the plan's own patterns). The runner is not CodePipeline: only the events the
        plan's rules listen for at these points are emitted (approval waiting, execution finished)."""
        pipeline = self.twin.plan.pipeline()["name"]
        event = {"pipeline": pipeline, "execution-id": self.execution_id, **detail}
        self.twin.aws.client("events").put_events(
            Entries=[{"Source": "aws.codepipeline", "DetailType": detail_type, "Detail": json.dumps(event)}]
        )
        matched = []
        for probe in self.twin.resources.rules.values():
            if probe.pattern and detail_type in probe.pattern.get("detail-type", []):
                try:
                    self.twin.resources.wait_for(
                        probe.queue_url, lambda m: m.get("detail", {}).get("execution-id") == self.execution_id, 10
                    )
                except TimeoutError:
                    continue
                matched.append(probe.rule_name)
        return matched

    def _approval(self, action: dict[str, Any]) -> list[str]:
        stage = next(s["name"] for s in self.twin.plan.pipeline()["stages"] if action in s["actions"])
        shown = [
            f"{key}: {self.resolve(str(value))[:300]}"
            for key, value in sorted((action.get("configuration") or {}).items())
            if key in ("CustomData", "ExternalEntityLink")
        ]
        detail = {
            "stage": stage,
            "action": action["name"],
            "state": "STARTED",
            "type": {"owner": "AWS", "provider": "Manual", "category": "Approval", "version": "1"},
        }
        matched = self._emit("CodePipeline Action Execution State Change", detail)
        if not matched:
            raise StageFailedError(f"{stage}/{action['name']}: no rule of the plan matched the approval-waiting event")
        checked = [f"approval-waiting event matched rule(s) {matched}"]
        for target in self.twin.plan.of_type("aws:cloudwatch/eventTarget:EventTarget"):
            probe = self.twin.resources.target_probes.get(target["name"])
            if probe and target["inputs"].get("rule") in matched:
                # The message the target delivers (its input transformer applied), as on-call would read it.
                message = self.twin.resources.wait_for(probe, lambda m: self.execution_id in json.dumps(m), 10)
                checked.append(f"target {target['name']} delivers: {json.dumps(message.get('body', message))[:160]}")
        return [*shown, *checked, "approved"]

    # -- the walk ----------------------------------------------------------------------------------
    def run_stage(self, name: str) -> list[StageResult]:
        """Only the actions of stage ``name`` (the artifacts it reads must be in ``self.artifacts``)."""
        return self.run(only=name)

    def run(self, stop_after: str | None = None, only: str | None = None) -> list[StageResult]:
        """Every stage of the plan's pipeline in order (``stop_after``: a stage name to end after)."""
        handlers = {
            ("Source", "CodeCommit"): self._source_codecommit,
            ("Source", "CodeStarSourceConnection"): self._source_codecommit,
            ("Source", "S3"): self._source_s3,
            ("Build", "CodeBuild"): self._codebuild,
            ("Deploy", "ECS"): self._deploy_ecs,
            ("Approval", "Manual"): self._approval,
        }
        for stage in self.twin.plan.pipeline()["stages"]:
            if only is not None and stage["name"] != only:
                continue
            for action in sorted(stage["actions"], key=lambda a: int(a.get("runOrder", 1))):
                key = (action["category"], action["provider"])
                if key not in handlers:
                    raise StageFailedError(f"{stage['name']}/{action['name']}: the twin cannot play a {key} action")
                started = time.monotonic()
                try:
                    checked = handlers[key](action)
                except StageFailedError:
                    raise
                except Exception as exc:
                    raise StageFailedError(f"{stage['name']}/{action['name']} failed: {exc}") from exc
                result = StageResult(stage["name"], action["name"], time.monotonic() - started, checked)
                self.results.append(result)
                self.log(f"[stage {stage['name']}/{action['name']}] {result.seconds:.1f}s")
                for line in checked:
                    self.log(f"    checked: {line}")
            if stage["name"] == stop_after:
                break
        if only is None and stop_after is None:
            matched = self._emit("CodePipeline Pipeline Execution State Change", {"state": "SUCCEEDED"})
            self.log(f"[execution finished] SUCCEEDED event matched rule(s) {matched}")
            self.results.append(StageResult("(execution)", "SUCCEEDED", 0.0, [f"matched {matched}"]))
        return self.results

    def stop(self) -> None:
        """Stop the services; the work dir (build logs, artifacts) stays only with TWIN_KEEP=1."""
        for running in self.services.values():
            running.stop()
        self.services.clear()
        if os.environ.get("TWIN_KEEP") != "1":
            shutil.rmtree(self.workdir, ignore_errors=True)


def new_run(twin: Twin, log: Callable[[str], None] = print, **kwargs: Any) -> PipelineRun:
    workdir = Path(tempfile.mkdtemp(prefix="twin-pipeline-", dir=os.environ.get("TWIN_WORK_DIR")))
    return PipelineRun(twin=twin, workdir=workdir, log=log, **kwargs)
