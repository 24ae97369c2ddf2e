"""Run the Pulumi program without a cloud account: Pulumi's mock runtime plus a monitor that records
every registration (type, parent, inputs, dependencies), for the offline plan and the tests.

Each run happens on a fresh thread with a fresh event loop, so its contextvars (Pulumi settings, the
root stack, config) start empty: two stacks built one after the other cannot leak into each other.
Config comes from the real ``Pulumi.<stack>.yaml``. Only the invokes the program uses are answered;
any other raises, so a new data source cannot slip in untested.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime.config import set_all_config
from pulumi.runtime.stack import run_pulumi_func

PROJECT = "ml-delivery"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
ACCOUNT_ID = "123456789012"
SECRET = "[secret]"  # noqa: S105 - the mask shown in place of secret values
_SECRET_SIG = rpc._special_secret_sig
_SIG_KEY = rpc._special_sig_key


class UnknownInvokeError(RuntimeError):
    """The program called a data source the offline runtime does not know; add it deliberately."""


@dataclass
class RegisteredResource:
    urn: str
    type: str
    name: str
    parent: str | None
    custom: bool
    inputs: dict[str, Any]
    dependencies: list[str]
    protect: bool = False
    ignore_changes: list[str] = field(default_factory=list)
    property_dependencies: dict[str, list[str]] = field(default_factory=dict)

    def as_plan_entry(self) -> dict[str, Any]:
        return {
            "urn": self.urn,
            "type": self.type,
            "name": self.name,
            "parent": self.parent,
            "custom": self.custom,
            "inputs": self.inputs,
            "dependencies": self.dependencies,
        }


@dataclass
class OfflineRun:
    project: str
    stack: str
    resources: list[RegisteredResource]
    outputs: dict[str, Any]
    warnings: list[str]

    def of_type(self, type_token: str) -> list[RegisteredResource]:
        return [r for r in self.resources if r.type == type_token]

    def one(self, type_token: str, name: str) -> RegisteredResource:
        matches = [r for r in self.resources if r.type == type_token and r.name == name]
        if len(matches) != 1:
            raise LookupError(f"expected one {type_token} named {name!r}, found {len(matches)}")
        return matches[0]

    def by_urn(self, urn: str) -> RegisteredResource:
        return next(r for r in self.resources if r.urn == urn)

    def children(self, parent: RegisteredResource) -> list[RegisteredResource]:
        return [r for r in self.resources if r.parent == parent.urn]

    def as_plan(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "stack": self.stack,
            "resources": [r.as_plan_entry() for r in self.resources],
            "outputs": self.outputs,
        }


def _mask_secrets(value: Any, reveal: bool = False) -> Any:
    """Secret values become ``[secret]``; with ``reveal`` (the offline twin only: a local run of the plan's
    own settings, never printed by default) their plain value is kept."""
    if isinstance(value, dict):
        if value.get(_SIG_KEY) == _SECRET_SIG:
            return _mask_secrets(value.get("value"), reveal) if reveal else SECRET
        return {k: _mask_secrets(v, reveal) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_secrets(v, reveal) for v in value]
    if isinstance(value, pulumi.Resource):  # resource references (e.g. providers)
        return "<resource>"
    if isinstance(value, float) and value.is_integer():
        return int(value)  # the wire carries every number as a double
    return value


def _engine_urn(urn: str) -> str:
    """The mock monitor prefixes the root stack's type to top-level types; the engine does not."""
    return urn.replace("::pulumi:pulumi:Stack$", "::")


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """The SDK's mock monitor, also keeping what ``pulumi preview`` would show for each resource."""

    def __init__(self, mocks: pulumi_mocks.Mocks, reveal_secrets: bool = False) -> None:
        super().__init__(mocks)
        self.reveal_secrets = reveal_secrets
        self.registered: list[RegisteredResource] = []
        self._lock = threading.Lock()

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        # pulumi's MockMonitor.RegisterResource has no annotations.
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        inputs = _mask_secrets(rpc.deserialize_properties(request.object, keep_unknowns=True), self.reveal_secrets)
        dependencies = {_engine_urn(request.parent)} if request.parent else set()
        dependencies.update(_engine_urn(u) for u in request.dependencies)
        property_dependencies = {
            key: sorted(_engine_urn(u) for u in deps.urns) for key, deps in request.propertyDependencies.items()
        }
        for urns in property_dependencies.values():
            dependencies.update(urns)
        with self._lock:
            self.registered.append(
                RegisteredResource(
                    urn=_engine_urn(response.urn),
                    type=request.type,
                    name=request.name,
                    parent=_engine_urn(request.parent) if request.parent else None,
                    custom=bool(request.custom),
                    inputs=inputs,
                    dependencies=sorted(dependencies),
                    protect=bool(request.protect),
                    ignore_changes=list(request.ignoreChanges),
                    property_dependencies=property_dependencies,
                )
            )
        return response


def _service_of(type_token: str) -> str:
    module = type_token.split(":")[1].split("/", maxsplit=1)[0]
    return {"cloudwatch": "logs", "lb": "elasticloadbalancing", "appautoscaling": "application-autoscaling",
            "scheduler": "scheduler", "cloudwatchEventRule": "events"}.get(module, module)  # fmt: skip


class AwsMocks(pulumi_mocks.Mocks):
    """Plausible outputs for every resource; answers for exactly the invokes the program uses."""

    def __init__(self, region: str, ssm_parameters: Mapping[str, str] | None = None) -> None:
        self.region = region
        # SSM parameters as the account holds them: values written outside Pulumi (``ssm_parameters``, e.g.
        # the image the pipeline deployed) win over the value a Parameter resource was created with.
        self._outside = dict(ssm_parameters or {})
        self._created: dict[str, Any] = {}

    def call(self, args: pulumi_mocks.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        account, region = ACCOUNT_ID, self.region
        answers: dict[str, Callable[[], dict[str, Any]]] = {
            "aws:index/getCallerIdentity:getCallerIdentity": lambda: {
                "accountId": account, "arn": f"arn:aws:iam::{account}:user/offline", "userId": "AIDAOFFLINE",
                "id": account},
            "aws:index/getRegion:getRegion": lambda: {
                "region": region, "name": region, "id": region, "description": region,
                "endpoint": f"ec2.{region}.amazonaws.com"},
            "aws:index/getPartition:getPartition": lambda: {
                "partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws", "reverseDnsPrefix": "com.amazonaws"},
            "aws:index/getAvailabilityZones:getAvailabilityZones": lambda: _zones(region, args.args),
            "aws:ssm/getParameter:getParameter": lambda: self._parameter(args.args),
            # The Region's Elastic Load Balancing account (ELB User Guide, "Attach a policy to your S3 bucket").
            "aws:elb/getServiceAccount:getServiceAccount": lambda: {
                "arn": f"arn:aws:iam::{ELB_ACCOUNTS[region]}:root", "id": ELB_ACCOUNTS[region], "region": region},
        }  # fmt: skip
        if args.token not in answers:
            raise UnknownInvokeError(
                f"offline runtime: unknown invoke {args.token!r}; known: {sorted(answers)} (tools/plan/offline.py)"
            )
        return answers[args.token](), []

    def _parameter(self, invoke_args: Mapping[str, Any]) -> dict[str, Any]:
        """getParameter: the value written outside Pulumi, else the created one; a missing one fails as AWS does."""
        name = invoke_args["name"]
        if name in self._outside:
            value = self._outside[name]
        elif name in self._created:
            value = self._created[name]
        else:
            raise UnknownInvokeError(f"offline runtime: ParameterNotFound: SSM parameter {name!r} does not exist")
        arn = f"arn:aws:ssm:{self.region}:{ACCOUNT_ID}:parameter{name}"
        return {"name": name, "value": value, "insecureValue": value, "type": "String", "arn": arn, "id": name,
                "version": 1, "withDecryption": True}  # fmt: skip

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        inputs = dict(args.inputs)
        if args.typ == "aws:ssm/parameter:Parameter":
            value = inputs.get("value")  # the provider marks every Parameter value secret
            if isinstance(value, dict) and value.get(_SIG_KEY) == _SECRET_SIG:
                value = value.get("value")
            if isinstance(value, str):
                self._created[str(inputs.get("name"))] = value
        physical = inputs.get("name") or f"{args.name}-0a1b2c3"
        if args.typ == "aws:s3/bucket:Bucket":
            bucket = inputs.get("bucket") or physical
            state = {**inputs, "bucket": bucket, "arn": f"arn:aws:s3:::{bucket}", "id": bucket,
                     "bucketRegionalDomainName": f"{bucket}.s3.{self.region}.amazonaws.com"}  # fmt: skip
            return bucket, state
        arn = f"arn:aws:{_service_of(args.typ)}:{self.region}:{ACCOUNT_ID}:{args.typ.split(':')[-1].lower()}/{physical}"
        state = {**inputs, "arn": arn, "name": physical}
        extra = _STATE.get(args.typ)
        if extra is not None:
            state.update(extra(_Names(self.region, ACCOUNT_ID, physical, inputs)))
        return f"{args.name}-id", state


# Elastic Load Balancing account per Region (ELB User Guide, "Attach a policy to your S3 bucket").
ELB_ACCOUNTS = {"us-east-1": "127311923021", "us-east-2": "033677994240", "us-west-2": "797873946194",
                "eu-west-1": "156460612806", "eu-central-1": "054676820928"}  # fmt: skip


# The Region's zones plus an opted-in Local Zone listed first, as DescribeAvailabilityZones can return it
# with AllAvailabilityZones; the "zone-type" / "opt-in-status" filters drop it (EC2 API Reference).
def _zone_table(region: str) -> list[dict[str, str]]:
    local = {
        "name": f"{region}-bos-1a",
        "zoneId": "use1-bos1-az1",
        "zoneType": "local-zone",
        "optInStatus": "opted-in",
        "groupName": f"{region}-bos-1",
    }
    regular = [
        {
            "name": f"{region}{z}",
            "zoneId": f"use1-az{i}",
            "zoneType": "availability-zone",
            "optInStatus": "opt-in-not-required",
            "groupName": region,
        }
        for i, z in enumerate("abcdef", 1)
    ]
    return [local, *regular]  # fmt: skip


_ZONE_FILTER_FIELDS = {"zone-type": "zoneType", "opt-in-status": "optInStatus", "group-name": "groupName",
                       "zone-name": "name", "zone-id": "zoneId"}  # fmt: skip


def _zones(region: str, invoke_args: Mapping[str, Any]) -> dict[str, Any]:
    """getAvailabilityZones honouring ``filters``; an unknown filter name raises (add it deliberately)."""
    zones = _zone_table(region)
    for zone_filter in invoke_args.get("filters") or []:
        field_name = _ZONE_FILTER_FIELDS.get(zone_filter["name"])
        if field_name is None:
            raise UnknownInvokeError(f"offline runtime: getAvailabilityZones filter {zone_filter['name']!r} unknown")
        zones = [z for z in zones if z[field_name] in zone_filter["values"]]
    return {"names": [z["name"] for z in zones], "zoneIds": [z["zoneId"] for z in zones], "id": region,
            "groupNames": sorted({z["groupName"] for z in zones})}  # fmt: skip


@dataclass(frozen=True)
class _Names:
    region: str
    account: str
    physical: str
    inputs: dict[str, Any]

    def arn(self, service: str, resource: str) -> str:
        return f"arn:aws:{service}:{self.region}:{self.account}:{resource}"


_LB_ID, _TG_ID, _KEY_ID = "50dc6c495c0c9188", "73e2d6bc24d8a067", "1234abcd-12ab-34cd-56ef-1234567890ab"
_LISTENER_ID, _RULE_ID = "f2f7dc8efc522ab2", "9683b2d02a6cabee"
_ZONE_ID = "Z0A1B2C3D4E5F6G7H8I9J"
# Output properties a real create would return, for the types whose outputs the program reads.
_STATE: dict[str, Callable[[_Names], dict[str, Any]]] = {
    "aws:iam/role:Role": lambda n: {"arn": f"arn:aws:iam::{n.account}:role/{n.physical}"},
    "aws:ecr/repository:Repository": lambda n: {
        "repositoryUrl": f"{n.account}.dkr.ecr.{n.region}.amazonaws.com/{n.physical}",
        "registryId": n.account, "arn": n.arn("ecr", f"repository/{n.physical}")},
    "aws:cloudwatch/logGroup:LogGroup": lambda n: {"arn": n.arn("logs", f"log-group:{n.physical}")},
    "aws:lb/loadBalancer:LoadBalancer": lambda n: {
        # An internal load balancer's DNS name starts with "internal-" (ELB User Guide, "Application Load
        # Balancers": DNS name); its hosted zone is the Region's ELB zone (us-east-1's here).
        "dnsName": f"{'internal-' if n.inputs.get('internal') else ''}{n.physical}-123456.{n.region}.elb.amazonaws.com",
        "zoneId": "Z35SXDOTRQ7X7K",
        "arnSuffix": f"app/{n.physical}/{_LB_ID}",
        "arn": n.arn("elasticloadbalancing", f"loadbalancer/app/{n.physical}/{_LB_ID}")},
    "aws:route53/zone:Zone": lambda n: {"zoneId": _ZONE_ID, "arn": f"arn:aws:route53:::hostedzone/{_ZONE_ID}"},
    "aws:lb/targetGroup:TargetGroup": lambda n: {
        "arnSuffix": f"targetgroup/{n.physical}/{_TG_ID}",
        "arn": n.arn("elasticloadbalancing", f"targetgroup/{n.physical}/{_TG_ID}")},
    "aws:kms/key:Key": lambda n: {"keyId": _KEY_ID, "arn": n.arn("kms", f"key/{_KEY_ID}")},
    "aws:sns/topic:Topic": lambda n: {"arn": n.arn("sns", n.physical)},
    "aws:ssm/parameter:Parameter": lambda n: {"arn": n.arn("ssm", f"parameter{n.inputs.get('name', '/x')}")},
    "aws:lb/listener:Listener": lambda n: {
        "arn": n.arn("elasticloadbalancing", f"listener/app/{n.physical}/{_LB_ID}/{_LISTENER_ID}")},
    "aws:lb/listenerRule:ListenerRule": lambda n: {
        "arn": n.arn("elasticloadbalancing", f"listener-rule/app/{n.physical}/{_LB_ID}/{_LISTENER_ID}/{_RULE_ID}")},
    "aws:ecs/cluster:Cluster": lambda n: {"arn": n.arn("ecs", f"cluster/{n.physical}")},
    "aws:ecs/taskDefinition:TaskDefinition": lambda n: {
        "arn": n.arn("ecs", f"task-definition/{n.inputs.get('family')}:1"), "revision": 1},
    "aws:secretsmanager/secret:Secret": lambda n: {"arn": n.arn("secretsmanager", f"secret:{n.physical}-AbCdEf")},
    "aws:codecommit/repository:Repository": lambda n: {
        "cloneUrlHttp": f"https://git-codecommit.{n.region}.amazonaws.com/v1/repos/{n.inputs.get('repositoryName')}",
        "arn": n.arn("codecommit", str(n.inputs.get("repositoryName")))},
    "aws:codepipeline/pipeline:Pipeline": lambda n: {"arn": n.arn("codepipeline", n.physical)},
    "aws:codebuild/project:Project": lambda n: {"arn": n.arn("codebuild", f"project/{n.physical}")},
    "aws:batch/jobQueue:JobQueue": lambda n: {"arn": n.arn("batch", f"job-queue/{n.physical}")},
    "aws:batch/jobDefinition:JobDefinition": lambda n: {
        "arn": n.arn("batch", f"job-definition/{n.physical}:1"),
        "arnPrefix": n.arn("batch", f"job-definition/{n.physical}"), "revision": 1},
    "aws:batch/computeEnvironment:ComputeEnvironment": lambda n: {
        "arn": n.arn("batch", f"compute-environment/{n.physical}")},
    "aws:cloudwatch/eventRule:EventRule": lambda n: {"arn": n.arn("events", f"rule/{n.physical}")},
    "aws:glue/catalogDatabase:CatalogDatabase": lambda n: {"arn": n.arn("glue", f"database/{n.physical}")},
    "aws:athena/workgroup:Workgroup": lambda n: {"arn": n.arn("athena", f"workgroup/{n.physical}")},
    "aws:scheduler/scheduleGroup:ScheduleGroup": lambda n: {"arn": n.arn("scheduler", f"schedule-group/{n.physical}")},
    "aws:scheduler/schedule:Schedule": lambda n: {
        "arn": n.arn("scheduler", f"schedule/{n.inputs.get('groupName', 'default')}/{n.physical}")},
    "aws:sqs/queue:Queue": lambda n: {
        "arn": n.arn("sqs", n.physical), "url": f"https://sqs.{n.region}.amazonaws.com/{n.account}/{n.physical}"},
    "aws:glue/catalogTable:CatalogTable": lambda n: {
        "arn": n.arn("glue", f"table/{n.inputs.get('databaseName')}/{n.physical}")},
}  # fmt: skip


def stack_config_path(stack: str) -> Path:
    return PROJECT_ROOT / f"Pulumi.{stack}.yaml"


def load_stack_config(stack: str) -> tuple[dict[str, str], list[str]]:
    """The stack file's config as the Pulumi engine hands it to the program: every value a string
    (structured values as JSON); ``secure:`` values are masked and marked secret (no key to decrypt)."""
    path = stack_config_path(stack)
    if not path.exists():
        raise FileNotFoundError(
            f"no stack file {path.name}; stacks are the Pulumi.<stack>.yaml files in {PROJECT_ROOT}"
        )
    document = yaml.safe_load(path.read_text()) or {}
    config, secret_keys = {}, []
    for key, value in (document.get("config") or {}).items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            config[key] = "offline-secret-value"
            secret_keys.append(key)
        elif isinstance(value, str):
            config[key] = value
        else:
            config[key] = json.dumps(value)
    return config, secret_keys


def run_offline(
    stack: str,
    program: Callable[[], None] | None = None,
    overrides: Mapping[str, Any] | None = None,
    secret_overrides: Mapping[str, str] | None = None,
    *,
    reveal_secrets: bool = False,
    ssm_parameters: Mapping[str, str] | None = None,
) -> OfflineRun:
    """Build a stack under mocks and return everything it registered.

    ``reveal_secrets`` keeps secret input values in the plain (for the offline twin, which must run the
    plan's own settings); by default they are shown as ``[secret]``.

    ``overrides`` replace config keys (``"ml-delivery:azCount": 3``); ``None`` removes a key.
    ``ssm_parameters`` are SSM parameter values already in the account, written outside Pulumi (the
    deployed image the pipeline wrote: ``release.contracts.deployed_image_parameter``).
    """
    config, secret_keys = load_stack_config(stack)
    for key, value in (overrides or {}).items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value if isinstance(value, str) else json.dumps(value)
    for key, value in (secret_overrides or {}).items():
        config[key] = value
        secret_keys.append(key)
    region = config.get("aws:region", "us-east-1")
    if program is None:
        from infra.stack import build_stack

        program = build_stack

    result: dict[str, Any] = {}

    def worker() -> None:
        warnings: list[str] = []

        class _Collect(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if record.levelno >= logging.WARNING:
                    warnings.append(record.getMessage())

        logger = logging.getLogger(f"ml-delivery.offline.{stack}.{id(warnings)}")
        logger.propagate = False
        logger.addHandler(_Collect())
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            mocks = AwsMocks(region, ssm_parameters)
            monitor = RecordingMonitor(mocks, reveal_secrets)
            pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, logger=logger, monitor=monitor)
            set_all_config(config, secret_keys)
            loop.run_until_complete(run_pulumi_func(program))
            root = pulumi.runtime.settings.get_root_resource()
            outputs = loop.run_until_complete(_resolve_outputs(getattr(root, "outputs", {})))
            registered = sorted(monitor.registered, key=lambda r: r.urn)
            result["run"] = OfflineRun(PROJECT, stack, registered, outputs, warnings)
        except BaseException as exc:
            result["error"] = exc
        finally:
            loop.close()

    thread = threading.Thread(target=worker, name=f"offline-{stack}")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    run: OfflineRun = result["run"]
    return run


async def _resolve_outputs(outputs: Mapping[str, Any]) -> dict[str, Any]:
    resolved: dict[str, Any] = {}
    for key, value in outputs.items():
        output = pulumi.Output.from_input(value)
        is_secret = await output.is_secret()
        resolved[key] = SECRET if is_secret else _mask_secrets(await output.future())
    return resolved
