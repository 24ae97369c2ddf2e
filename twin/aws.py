"""The plan's AWS side on a moto server, created from the offline plan's own inputs (issue #12, item 2).

``provision(plan, endpoint_url)`` walks the JSON of ``python -m tools.plan --stack <s> --format json`` and
creates, on a moto server, every resource moto can hold with the inputs the plan gives it: the KMS key and
its key policy, IAM roles with their inline/attached policies, the VPC pieces Batch needs, the buckets
(versioning, SSE-KMS, public access block, ownership, policy, lifecycle, EventBridge notification), SQS
queues, SNS topics and subscriptions, SSM parameters, Secrets Manager secrets, log groups, ECR
repositories, the Batch compute environment, job queue and job definitions (container properties
verbatim), EventBridge rules (patterns verbatim) and targets, and the EventBridge Scheduler schedules.
Nothing is hand-copied: change the plan and the twin changes.

How the plan's mocked values are resolved. The plan comes from Pulumi's mock runtime (``tools/plan/offline.py``),
so every output another resource reads (an id, ARN, URL) is a value ``AwsMocks`` made up. The twin runs
that same ``AwsMocks.new_resource`` on each plan resource to learn what the plan *believes* its outputs are,
creates the resource in moto under the physical name the mock gave it (``buckets-models-0a1b2c3``,
``alerts-topic-0a1b2c3``, the plan's own ``name`` where it sets one), and records ``mocked -> real`` for
every output that differs: ids such as ``jobs-execution-role-id`` (replaced only where a whole value equals
them) and ARNs/URLs/key ids moto generates itself (the KMS key id, SQS queue URLs; replaced wherever they
occur, e.g. inside a policy document or a job definition's environment). Later resources get their inputs
through that mapping, and ``TwinAws.resolve`` gives callers the same translation. moto's default account is
the plan's ``123456789012``, so ARNs built from names agree; the region is the stack's ``aws:region``.
Values the plan masks as ``[secret]`` (an SSM value, a Secrets Manager secret string) are stored as that
mask (listed in ``TwinAws.masked``): the real value is never in the plan.

Observing what AWS would deliver. moto's ``TestEventPattern`` returns no result, but ``PutEvents`` and S3's
EventBridge notifications are matched against rules and delivered to SQS targets. So every plan rule gets
an SQS *probe* target (the raw event, ``TwinAws.rules``). moto delivers only to SQS, CloudWatch Logs and
event-bus targets and fails the whole ``PutEvents`` on any other (SNS, CodePipeline), so a plan target of
another kind is not installed; instead a *target probe* queue gets that target's own ``Input`` /
``InputPath`` / ``InputTransformer``, so it receives exactly the message the target would
(``TwinAws.target_probes``); ``TwinAws.relay`` hands an SNS target's messages on to its topic. Each SNS
topic gets an unfiltered SQS probe subscription (raw delivery off, so the SNS envelope is what arrives,
``TwinAws.topics``) and, for every plan subscription (e-mail, SMS, ...), a probe subscription with that
subscription's filter policy and scope (``TwinAws.subscription_probes``): what reaches it is what that
endpoint would get. moto notifies a multipart upload twice (same object version; S3 once) and its
``detail.reason`` is always ``ObjectCreated``: count objects, not events.

Not emulated here (listed per type in ``TwinAws.not_modelled``): networking beyond VPC/subnets/security
groups, ECS, load balancers, CodePipeline/CodeBuild/CodeCommit, alarms, Glue/Athena, and bucket policies
with conditions (moto would apply the TLS-only Deny to every request; see ``_s3_policy``). Batch jobs are
never submitted (moto's Batch would try to run docker); the queue and definitions exist so the release
step can register and describe revisions. moto does not encrypt with KMS nor check key or topic policies.

Why there is no ``credentials_for_role(name)`` (workloads under their own role with the plan's policies
enforced). Investigated against moto 5.2.5 and not feasible cleanly:

1. IAM enforcement is server-wide: ``INITIAL_NO_AUTH_ACTION_COUNT`` is read from the server process's
   environment at start (``moto/settings.py``); after that many requests *every* request must be signed by
   an IAM identity moto knows, the harness's included, so the server (``tests/support/servers.py``) would
   need a start option and the harness an admin user whose policy allows ``*``.
2. ``sts:AssumeRole`` on the plan's roles crashes moto: their trust policies name a service principal
   (``ecs-tasks.amazonaws.com``), and moto's principal check does ``principal in None``
   (``moto/iam/access_control.py`` ``_check_principal``: ``TypeError``, HTTP 500). Credentials "of the
   role" would need a rewritten trust policy or an IAM user carrying copies of the role's policies.
3. Only S3, SQS, IAM and STS authorize against the request's resource; SNS and SSM authorize every call
   against resource ``*`` (``moto/core/responses.py`` ``call_action`` without ``_determine_resource``).
   Checked: a user whose policy allows ``sns:Publish`` on the topic's ARN and ``ssm:GetParameter`` on the
   parameter's ARN (the plan's least-privilege form) gets ``AccessDenied`` for both, while S3 allows
   ``PutObject`` under the granted prefix and denies it elsewhere, as AWS would.

So enforcement would be faithful for S3 only and would wrongly deny the plan's correct SNS/SSM grants;
the plan's IAM policies are instead created verbatim (readable with ``get_role_policy``) and checked by the
policy tests under ``tests/infra``.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import boto3
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import ClientError
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime.rpc import UNKNOWN

from tools.plan.offline import SECRET, AwsMocks, load_stack_config

# moto accepts any credentials unless IAM enforcement is switched on; these are the test suite's.
TWIN_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
PROBE_PREFIX = "twin-probe-"
# EventBridge targets moto delivers to (moto/events/models.py ``Rule.send_to_targets``); any other raises.
MOTO_DELIVERABLE_TARGETS = frozenset({"sqs", "logs", "events"})
# SNS protocols the twin subscribes for real: moto records these without calling out.
SUBSCRIBABLE_PROTOCOLS = frozenset({"sqs", "email", "email-json", "sms"})


class PlanError(ValueError):
    """The plan JSON is not what ``python -m tools.plan --format json`` prints."""


class TwinProvisionError(RuntimeError):
    """moto refused a plan resource; names the resource and what moto said."""


class _Resolver:
    """``mocked -> real`` for the plan's made-up outputs: whole-value ids and in-string ARNs/URLs."""

    def __init__(self) -> None:
        self.whole: dict[str, str] = {}
        self.within: dict[str, str] = {}

    def add_whole(self, mocked: str | None, real: str) -> None:
        if mocked and mocked != real:
            self.whole[mocked] = real

    def add_within(self, mocked: str | None, real: str) -> None:
        if mocked and mocked != real:
            self.within[mocked] = real

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            if value in self.whole:
                return self.whole[value]
            for mocked in sorted(self.within, key=len, reverse=True):
                value = value.replace(mocked, self.within[mocked])
            return value
        if isinstance(value, dict):
            return {k: self(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self(v) for v in value]
        return value


class TopicProbe(NamedTuple):
    topic_arn: str
    queue_url: str  # SQS queue subscribed to the topic without a filter; raw delivery off


class RuleProbe(NamedTuple):
    rule_name: str
    event_bus: str
    pattern: dict[str, Any] | None  # the plan's event pattern, parsed; None for a schedule-only rule
    queue_url: str  # SQS queue that is a target of the rule and receives the matched event as is


@dataclass
class TwinAws:
    """What ``provision`` created, keyed by the plan's names, plus helpers to observe it."""

    endpoint_url: str
    region: str
    account_id: str
    buckets: dict[str, str] = field(default_factory=dict)  # bucket purpose ("models") -> bucket name
    topics: dict[str, TopicProbe] = field(default_factory=dict)  # plan topic resource name -> probe
    rules: dict[str, RuleProbe] = field(default_factory=dict)  # plan rule resource name -> probe
    parameters: dict[str, str] = field(default_factory=dict)  # SSM name -> value
    job_queue: str | None = None  # the job queue's ARN
    job_definitions: dict[str, str] = field(default_factory=dict)  # job definition name -> ARN
    repositories: dict[str, str] = field(default_factory=dict)  # ECR repository name -> URI
    roles: dict[str, str] = field(default_factory=dict)  # plan role resource name -> role ARN
    queues: dict[str, str] = field(default_factory=dict)  # plan SQS queue resource name -> URL
    schedules: dict[str, str] = field(default_factory=dict)  # plan schedule resource name -> "group/name"
    subscription_probes: dict[str, str] = field(default_factory=dict)  # plan subscription name -> probe URL
    target_probes: dict[str, str] = field(default_factory=dict)  # plan event target name -> probe URL
    target_arns: dict[str, str] = field(default_factory=dict)  # plan event target name -> its (resolved) ARN
    masked: list[str] = field(default_factory=list)  # plan resources whose value was "[secret]"
    not_modelled: dict[str, list[str]] = field(default_factory=dict)  # type -> plan resource names
    _substitutions: _Resolver = field(default_factory=_Resolver, repr=False)
    _session: boto3.session.Session | None = field(default=None, repr=False)
    _clients: dict[str, BaseClient] = field(default_factory=dict, repr=False)
    _inbox: dict[str, list[dict[str, Any]]] = field(default_factory=dict, repr=False)

    def client(self, service: str) -> BaseClient:
        """A boto3 client for ``service`` pointed at the twin's endpoint (cached per service)."""
        if service not in self._clients:
            if self._session is None:  # one session: its loader caches service models across clients
                self._session = boto3.session.Session(region_name=self.region, **TWIN_CREDENTIALS)
            self._clients[service] = self._session.client(
                service,
                endpoint_url=self.endpoint_url,
                config=Config(retries={"max_attempts": 2, "mode": "standard"}),
            )
        return self._clients[service]

    def resolve(self, value: Any) -> Any:
        """The plan's mocked ids/ARNs/URLs in ``value`` replaced by the twin's real ones (deep)."""
        return self._substitutions(value)

    def wait_for(self, queue_url: str, predicate: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
        """The first message on ``queue_url`` for which ``predicate`` is true; others stay buffered.

        Messages are decoded JSON bodies (an EventBridge event, an SNS envelope); a body that is not a
        JSON object (e.g. an input transformer's string) arrives as ``{"body": <decoded value>}``. A
        predicate raising ``KeyError``/``TypeError``/``IndexError`` counts as "no match", so it can index
        into the shape it expects. Raises ``TimeoutError`` naming what did arrive.
        """
        deadline = time.monotonic() + timeout
        inbox = self._inbox.setdefault(queue_url, [])
        received = False
        while True:
            for index, message in enumerate(inbox):
                if _matches(predicate, message):
                    return inbox.pop(index)
            remaining = deadline - time.monotonic()
            if remaining <= 0 and received:
                seen = [json.dumps(m, default=str)[:300] for m in inbox]
                raise TimeoutError(
                    f"no message matching the predicate on {queue_url} within {timeout}s; "
                    f"{len(inbox)} other message(s) received: {seen}"
                )
            self._receive(queue_url, wait_seconds=1 if remaining >= 1 else 0)
            received = True

    def drain(self, queue_url: str) -> list[dict[str, Any]]:
        """Every message on ``queue_url`` now (buffered ones included), removing them.

        moto delivers events and notifications while handling the request that caused them, so after
        that request returned, ``drain`` sees everything it delivered: use it to assert that something
        did *not* arrive, after a matching event that did (a barrier, not a sleep).
        """
        messages = self._inbox.pop(queue_url, [])
        while self._receive_into(messages, queue_url, wait_seconds=0):
            pass
        return messages

    def register_image(self, repository: str, tag: str, manifest: str) -> str:
        """Record in moto's ECR that ``<repository>:<tag>`` was pushed with ``manifest``; returns its digest.

        The images themselves live in the local registry standing in for ECR; this makes ECR's answers
        (``DescribeImages``, which the release step uses to pin images by digest) agree with it. The
        digest is the sha256 of the manifest's exact bytes, as a registry computes it (OCI image spec,
        "Descriptors": digests). ``repository`` is a plan repository's name or URI. The plan's tag
        immutability holds: a second manifest under the same tag raises moto's ``ClientError``.
        """
        name = repository.split("/", 1)[1] if "/" in repository else repository
        if name not in self.repositories:
            raise KeyError(f"ECR repository {name!r} is not in the plan; the plan's: {sorted(self.repositories)}")
        digest = "sha256:" + hashlib.sha256(manifest.encode()).hexdigest()
        self.client("ecr").put_image(repositoryName=name, imageManifest=manifest, imageTag=tag, imageDigest=digest)
        return digest

    def relay(self, target: str) -> int:
        """Hand what the plan's SNS event target ``target`` received on its probe to its topic, as
        EventBridge would; returns how many messages were published.

        moto cannot deliver EventBridge events to SNS, so the target probe stands in; this is the last
        hop, done on request. Each probe body (the event, or the target's transformed input, byte for
        byte) becomes the SNS message, without message attributes, as EventBridge publishes
        (so a subscription filter on attributes sees none). Messages already buffered by ``wait_for``
        are re-encoded as JSON.
        """
        if target not in self.target_probes:
            raise KeyError(f"{target!r} is not a probed event target; probed: {sorted(self.target_probes)}")
        arn = self.target_arns[target]
        if arn.split(":")[2] != "sns":
            raise ValueError(f"event target {target!r} delivers to {arn}; relay supports SNS topic targets only")
        queue_url = self.target_probes[target]
        bodies = [json.dumps(m["body"] if set(m) == {"body"} else m) for m in self._inbox.pop(queue_url, [])]
        sqs = self.client("sqs")
        while True:
            messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                break
            bodies.extend(m["Body"] for m in messages)
            sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )
        for body in bodies:
            self.client("sns").publish(TopicArn=arn, Message=body)
        return len(bodies)

    def _receive(self, queue_url: str, wait_seconds: int) -> None:
        self._receive_into(self._inbox.setdefault(queue_url, []), queue_url, wait_seconds)

    def _receive_into(self, sink: list[dict[str, Any]], queue_url: str, wait_seconds: int) -> int:
        sqs = self.client("sqs")
        response = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds)
        messages = response.get("Messages", [])
        for message in messages:
            sink.append(_decode(message["Body"]))
        if messages:
            sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )
        return len(messages)


def _matches(predicate: Callable[[dict[str, Any]], bool], message: dict[str, Any]) -> bool:
    try:
        return bool(predicate(message))
    except (KeyError, TypeError, IndexError):
        return False


def _decode(body: str) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError:
        return {"body": body}
    return value if isinstance(value, dict) else {"body": value}


def _probe_name(kind: str, name: str) -> str:
    """An SQS queue name (<= 80 of [A-Za-z0-9_-]) unique per probe kind and plan resource."""
    clean = re.sub(r"[^A-Za-z0-9_-]", "-", name)
    full = f"{PROBE_PREFIX}{kind}-{clean}"
    if len(full) <= 80:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    return f"{full[:71]}-{digest}"


def _tags_kv(tags: dict[str, str] | None, key: str = "Key", value: str = "Value") -> list[dict[str, str]]:
    return [{key: k, value: str(v)} for k, v in (tags or {}).items()]


def _pascal(value: Any) -> Any:
    """Pulumi's camelCase input shapes as the AWS API's PascalCase ones (``id`` -> ``ID``); ``None`` dropped."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if item is None:
                continue
            api_key = "ID" if key == "id" else key[:1].upper() + key[1:]
            out[api_key] = _pascal(item)
        return out
    if isinstance(value, list):
        return [_pascal(v) for v in value]
    return value


def _drop_none(mapping: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if v is not None and v not in ([], {})}


def _plan_region(plan: dict[str, Any]) -> str:
    """The stack's ``aws:region`` (the plan's ARNs were built with it); the plan JSON does not carry it."""
    config, _ = load_stack_config(str(plan["stack"]))
    return str(config.get("aws:region", "us-east-1"))


def _validated(plan: Any) -> list[dict[str, Any]]:
    if not isinstance(plan, dict) or not isinstance(plan.get("resources"), list) or "stack" not in plan:
        raise PlanError(
            "expected the plan JSON of `python -m tools.plan --stack <stack> --format json`: an object with "
            f"'stack' and a 'resources' list; got {type(plan).__name__} with keys "
            f"{sorted(plan) if isinstance(plan, dict) else '-'}"
        )
    required = ("urn", "type", "name", "inputs")
    for index, resource in enumerate(plan["resources"]):
        missing = [k for k in required if not isinstance(resource, dict) or k not in resource]
        if missing:
            raise PlanError(f"plan resource #{index} lacks {missing}; every resource has {list(required)}")
        if any(UNKNOWN in text for text in _strings(resource["inputs"])):
            raise PlanError(
                f"plan resource {resource['name']!r} ({resource['type']}) has an unknown (apply-time) input; the "
                "twin needs the offline plan, where tools/plan/offline.py's mocks give every output a value"
            )
    resources: list[dict[str, Any]] = plan["resources"]
    return resources


Handler = Callable[["_Builder", dict[str, Any], dict[str, Any], "_Mocked"], None]


@dataclass(frozen=True)
class _Mocked:
    """What the plan's mock runtime said this resource's outputs are."""

    id: str
    state: dict[str, Any]

    @property
    def physical(self) -> str:
        return str(self.state.get("bucket") or self.state.get("name"))


class _Builder:
    def __init__(self, twin: TwinAws, resources: list[dict[str, Any]]) -> None:
        self.twin = twin
        self.resources = resources
        self.mocks = AwsMocks(twin.region)
        self.resolve = twin._substitutions
        self.rule_keys: dict[tuple[str, str], str] = {}  # (bus, rule name) -> plan rule resource name
        self.batch_service_role: str | None = None

    def c(self, service: str) -> BaseClient:
        return self.twin.client(service)

    def run(self) -> None:
        by_type: dict[str, list[dict[str, Any]]] = {}
        for resource in self.resources:
            by_type.setdefault(resource["type"], []).append(resource)
        for type_token, handler in HANDLERS.items():
            for resource in by_type.pop(type_token, []):
                mocked = self._mocked(resource)
                inputs = self.resolve(resource["inputs"])
                try:
                    handler(self, resource, inputs, mocked)
                except ClientError as exc:
                    raise TwinProvisionError(
                        f"moto refused {resource['type']} {resource['name']!r} (physical {mocked.physical!r}): {exc}"
                    ) from exc
                except KeyError as exc:
                    raise PlanError(
                        f"plan resource {resource['name']!r} ({resource['type']}) lacks input {exc}, which the twin "
                        "needs to create it"
                    ) from exc
        for type_token, rest in sorted(by_type.items()):
            custom = [r["name"] for r in rest if r.get("custom", True)]  # components create nothing themselves
            if custom:
                self.twin.not_modelled[type_token] = custom

    def _mocked(self, resource: dict[str, Any]) -> _Mocked:
        args = pulumi_mocks.MockResourceArgs(resource["type"], resource["name"], dict(resource["inputs"]))
        resource_id, state = self.mocks.new_resource(args)
        return _Mocked(str(resource_id), state)

    def probe_queue(self, kind: str, name: str) -> tuple[str, str]:
        sqs = self.c("sqs")
        url = sqs.create_queue(QueueName=_probe_name(kind, name))["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return url, arn

    def note(self, type_token: str, name: str) -> None:
        self.twin.not_modelled.setdefault(type_token, []).append(name)


# --- KMS, IAM, VPC ---------------------------------------------------------------------------------


def _kms_key(b: _Builder, r: dict[str, Any], i: dict[str, Any], m: _Mocked) -> None:
    kms = b.c("kms")
    key = kms.create_key(
        **_drop_none(
            {
                "Description": i.get("description"),
                "KeyUsage": i.get("keyUsage"),
                "KeySpec": i.get("customerMasterKeySpec") or i.get("keySpec"),
                "Policy": i.get("policy"),
                "Tags": _tags_kv(i.get("tags"), "TagKey", "TagValue"),
            }
        )
    )["KeyMetadata"]
    if i.get("enableKeyRotation"):
        kms.enable_key_rotation(KeyId=key["KeyId"])
    b.resolve.add_within(m.state.get("arn"), key["Arn"])
    b.resolve.add_within(m.state.get("keyId"), key["KeyId"])
    b.resolve.add_whole(m.id, key["KeyId"])


def _kms_alias(b: _Builder, r: dict[str, Any], i: dict[str, Any], m: _Mocked) -> None:
    b.c("kms").create_alias(AliasName=i["name"], TargetKeyId=i["targetKeyId"])


def _iam_role(b: _Builder, r: dict[str, Any], i: dict[str, Any], m: _Mocked) -> None:
    role = b.c("iam").create_role(
        **_drop_none(
            {
                "RoleName": m.physical,
                "Path": i.get("path"),
                "AssumeRolePolicyDocument": i["assumeRolePolicy"],
                "Description": i.get("description"),
                "MaxSessionDuration": i.get("maxSessionDuration"),
                "PermissionsBoundary": i.get("permissionsBoundary"),
                "Tags": _tags_kv(i.get("tags")),
            }
        )
    )["Role"]
    b.twin.roles[r["name"]] = role["Arn"]
    b.resolve.add_whole(m.id, role["RoleName"])  # a Pulumi Role's id is its name
    b.resolve.add_within(m.state.get("arn"), role["Arn"])


def _iam_policy(b: _Builder, r: dict[str, Any], i: dict[str, Any], m: _Mocked) -> None:
    policy = b.c("iam").create_policy(
        **_drop_none(
            {"PolicyName": m.physical, "Path": i.get("path"), "PolicyDocument": i["policy"],
             "Description": i.get("description")}
        )
    )["Policy"]  # fmt: skip
    b.resolve.add_whole(m.id, policy["Arn"])  # a Pulumi Policy's id is its ARN
    b.resolve.add_within(m.state.get("arn"), policy["Arn"])


def _iam_role_policy(b: _Builder, r: dict[str, Any], i: dict[str, Any], m: _Mocked) -> None:
    b.c("iam").put_role_policy(RoleName=i["role"], PolicyName=m.physical, PolicyDocument=i["policy"])


def _iam_role_policy_attachment(b: _Builder, r: dict[str, Any], i: dict[str, Any], m: _Mocked) -> None:
    try:
        b.c("iam").attach_role_policy(RoleName=i["role"], PolicyArn=i["policyArn"])
    except ClientError as exc:
        # moto loads AWS-managed policies only with MOTO_IAM_LOAD_MANAGED_POLICIES; such an attachment
        # is recorded as not modelled rather than failing the twin.
        if exc.response["Error"]["Code"] == "NoSuchEntity" and ":iam::aws:policy/" in i["policyArn"]:
            b.note(r["type"], r["name"])
            return
        raise


def _ec2_vpc(b: _Builder, r: dict[str, Any], i: dict[str, Any], m: _Mocked) -> None:
    vpc = b.c("ec2").create_vpc(CidrBlock=i["cidrBlock"])["Vpc"]
    b.resolve.add_whole(m.id, vpc["VpcId"])


def _ec2_subnet(b: _Builder, r: dict[str, Any], i: dict[str, Any], m: _Mocked) -> None:
    subnet = b.c("ec2").create_subnet(
        **_drop_none({"VpcId": i["vpcId"], "CidrBlock": i["cidrBlock"], "AvailabilityZone": i.get("availabilityZone")})
    )["Subnet"]
    b.resolve.add_whole(m.id, subnet["SubnetId"])


def _ec2_security_group(b: _Builder, r: dict[str, Any], i: dict[str, Any], m: _Mocked) -> None:
    group = b.c("ec2").create_security_group(
        GroupName=m.physical, Description=i.get("description") or "Managed by Pulumi", VpcId=i["vpcId"]
    )
    b.resolve.add_whole(m.id, group["GroupId"])


# --- S3 -------------------------------------------------------------------------------------------------


def _s3_bucket(b: _Builder, r: dict[str, Any], i: dict[str, Any], m: _Mocked) -> None:
    s3 = b.c("s3")
    name = m.physical
    if b.twin.region == "us-east-1":
        s3.create_bucket(Bucket=name)
    else:
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": b.twin.region})
    if i.get("tags"):
        s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": _tags_kv(i["tags"])})
    key = (i.get("tags") or {}).get("purpose") or r["name"]
    if key in b.twin.buckets:
        raise PlanError(f"two buckets share the key {key!r} (purpose tag or name): {b.twin.buckets[key]}, {name}")
    b.twin.buckets[key] = name


def _s3_versioning(b: _Builder, r: dict[str, Any], i: dict[str, Any], m: _Mocked) -> None:
    config = i["versioningConfiguration"]
    b.c("s3").put_bucket_versioning(
        Bucket=i["bucket"],
        VersioningConfiguration=_drop_none({"Status": config["status"], "MFADelete": config.get("mfaDelete")}),
    )


def _s3_encryption(b: _Builder, r: dict[str, Any], i: dict[str, Any], m: _Mocked) -> None:
    rules = []
    for rule in i["rules"]:
        default = rule.get("applyServerSideEncryptionByDefault") or {}
        rules.append(
            _drop_none(
                {
                    "ApplyServerSideEncryptionByDefault": _drop_none(
                        {"SSEAlgorithm": default.get("sseAlgorithm"), "KMSMasterKeyID": default.get("kmsMasterKeyId")}
                    ),
                    "BucketKeyEnabled": rule.get("bucketKeyEnabled"),
                }
            )
        )
    b.c("s3").put_bucket_encryption(Bucket=i["bucket"], ServerSideEncryptionConfiguration={"Rules": rules})


def _s3_public_access_block(b: _Builder, r: dict[str, Any], i: dict[str, Any], m: _Mocked) -> None:
    b.c("s3").put_public_access_block(
        Bucket=i["bucket"],
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": bool(i.get("blockPublicAcls")),
            "IgnorePublicAcls": bool(i.get("ignorePublicAcls")),
            "BlockPublicPolicy": bool(i.get("blockPublicPolicy")),
            "RestrictPublicBuckets": bool(i.get("restrictPublicBuckets")),
        },
    )


def _s3_ownership(b: _Builder, r: dict[str, Any], i: dict[str, Any], m: _Mocked) -> None:
    b.c("s3").put_bucket_ownership_controls(
        Bucket=i["bucket"], OwnershipControls={"Rules": [{"ObjectOwnership": i["rule"]["objectOwnership"]}]}
    )


def _s3_policy(b: _Builder, r: dict[str, Any], i: dict[str, Any], m: _Mocked) -> None:
    """Applied only when no statement has a ``Condition``: moto's S3 checks a bucket policy on object
    requests without any request context (``moto/iam/access_control.py``, ``_check_conditions``), so a
    conditioned statement counts as matching every request. The plan's TLS-only Deny
    (``aws:SecureTransport`` false) would then deny every PutObject/GetObject, TLS or not."""
    statements = json.loads(i["policy"]).get("Statement", [])
    if any("Condition" in s for s in (statements if isinstance(statements, list) else [statements])):
        b.note(r["type"], r["name"])
        return
    b.c("s3").put_bucket_policy(Bucket=i["bucket"], Policy=i["policy"])


def _s3_lifecycle(b: _Builder, r: dict[str, Any], i: dict[str, Any], m: _Mocked) -> None:
    b.c("s3").put_bucket_lifecycle_configuration(
        Bucket=i["bucket"], LifecycleConfiguration={"Rules": [_drop_none(_pascal(rule)) for rule in i["rules"]]}
    )


def _s3_notification(b: _Builder, r: dict[str, Any], i: dict[str, Any], m: _Mocked) -> None:
    config: dict[str, Any] = {}
    if i.get("eventbridge"):
        config["EventBridgeConfiguration"] = {}

    def filters(item: dict[str, Any]) -> dict[str, Any]:
        rules = [{"Name": n, "Value": item[k]} for n, k in (("prefix", "filterPrefix"), ("suffix", "filterSuffix"))
                 if item.get(k)]  # fmt: skip
        return {"Filter": {"Key": {"FilterRules": rules}}} if rules else {}

    for plural, api, arn_key, api_arn in (("topics", "TopicConfigurations", "topicArn", "TopicArn"),
                                          ("queues", "QueueConfigurations", "queueArn", "QueueArn")):  # fmt: skip
        items = i.get(plural) or []
        if items:
            config[api] = [
                _drop_none({"Id": item.get("id"), api_arn: item[arn_key], "Events": item["events"], **filters(item)})
                for item in items
            ]
    if i.get("lambdaFunctions"):
        b.note(r["type"], f"{r['name']} (lambdaFunctions)")
    b.c("s3").put_bucket_notification_configuration(Bucket=i["bucket"], NotificationConfiguration=config)


# --- SQS, SNS, SSM, logs, ECR ---------------------------------------------------------------------------

_SQS_ATTRIBUTES = {
    "delaySeconds": "DelaySeconds", "maxMessageSize": "MaximumMessageSize",
    "messageRetentionSeconds": "MessageRetentionPeriod", "receiveWaitTimeSeconds": "ReceiveMessageWaitTimeSeconds",
    "visibilityTimeoutSeconds": "VisibilityTimeout", "policy": "Policy", "redrivePolicy": "RedrivePolicy",
    "redriveAllowPolicy": "RedriveAllowPolicy", "fifoQueue": "FifoQueue",
    "contentBasedDeduplication": "ContentBasedDeduplication", "kmsMasterKeyId": "KmsMasterKeyId",
    "kmsDataKeyReusePeriodSeconds": "KmsDataKeyReusePeriodSeconds", "sqsManagedSseEnabled": "SqsManagedSseEnabled",
}  # fmt: skip


def _api_string(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _sqs_queue(b: _Builder, r: dict[str, Any], i: dict[str, Any], m: _Mocked) -> None:
    name = m.physical
    if i.get("fifoQueue") and not name.endswith(".fifo"):
        name += ".fifo"
    attributes = {api: _api_string(i[key]) for key, api in _SQS_ATTRIBUTES.items() if i.get(key) is not None}
    sqs = b.c("sqs")
    url = sqs.create_queue(QueueName=name, Attributes=attributes, tags=i.get("tags") or {})["QueueUrl"]
    b.twin.queues[r["name"]] = url
    b.resolve.add_whole(m.id, url)  # a Pulumi Queue's id is its URL
    b.resolve.add_within(m.state.get("url"), url)


def _sqs_queue_policy(b: _Builder, r: dict[str, Any], i: dict[str, Any], m: _Mocked) -> None:
    b.c("sqs").set_queue_attributes(QueueUrl=i["queueUrl"], Attributes={"Policy": i["policy"]})


_SNS_TOPIC_ATTRIBUTES = {
    "displayName": "DisplayName", "kmsMasterKeyId": "KmsMasterKeyId", "policy": "Policy",
    "deliveryPolicy": "DeliveryPolicy", "fifoTopic": "FifoTopic",
    "contentBasedDeduplication": "ContentBasedDeduplication", "signatureVersion": "SignatureVersion",
    "tracingConfig": "TracingConfig",
}  # fmt: skip


def _sns_topic(b: _Builder, r: dict[str, Any], i: dict[str, Any], m: _Mocked) -> None:
    sns = b.c("sns")
    name = m.physical
    if i.get("fifoTopic") and not name.endswith(".fifo"):
        name += ".fifo"
    attributes = {api: _api_string(i[key]) for key, api in _SNS_TOPIC_ATTRIBUTES.items() if i.get(key) is not None}
    arn = sns.create_topic(Name=name, Attributes=attributes, Tags=_tags_kv(i.get("tags")))["TopicArn"]
    b.resolve.add_whole(m.id, arn)  # a Pulumi Topic's id is its ARN
    b.resolve.add_within(m.state.get("arn"), arn)
    url, probe_arn = b.probe_queue("topic", r["name"])
    # Raw delivery stays off: the probe receives the SNS envelope (Message, Subject, MessageAttributes).
    sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=probe_arn)
    b.twin.topics[r["name"]] = TopicProbe(arn, url)


def _sns_topic_policy(b: _Builder, r: dict[str, Any], i: dict[str, Any], m: _Mocked) -> None:
    b.c("sns").set_topic_attributes(TopicArn=i["arn"], AttributeName="Policy", AttributeValue=i["policy"])


_SNS_SUBSCRIPTION_ATTRIBUTES = {
    "filterPolicy": "FilterPolicy", "filterPolicyScope": "FilterPolicyScope",
    "rawMessageDelivery": "RawMessageDelivery", "redrivePolicy": "RedrivePolicy",
    "deliveryPolicy": "DeliveryPolicy", "subscriptionRoleArn": "SubscriptionRoleArn",
}  # fmt: skip


def _sns_subscription(b: _Builder, r: dict[str, Any], i: dict[str, Any], m: _Mocked) -> None:
    sns = b.c("sns")
    attributes = {api: _api_string(i[k]) for k, api in _SNS_SUBSCRIPTION_ATTRIBUTES.items() if i.get(k) is not None}
    if i["protocol"] in SUBSCRIBABLE_PROTOCOLS:
        sns.subscribe(TopicArn=i["topic"], Protocol=i["protocol"], Endpoint=i["endpoint"], Attributes=attributes)
    else:  # http(s)/lambda/firehose/application: moto would call out; the probe below stands in
        b.note(r["type"], r["name"])
    # The probe stands for this endpoint: same filter policy and scope, envelope delivery.
    probe_attributes = {k: v for k, v in attributes.items() if k in ("FilterPolicy", "FilterPolicyScope")}
    url, probe_arn = b.probe_queue("sub", r["name"])
    sns.subscribe(TopicArn=i["topic"], Protocol="sqs", Endpoint=probe_arn, Attributes=probe_attributes)
    b.twin.subscription_probes[r["name"]] = url


def _ssm_parameter(b: _Builder, r: dict[str, Any], i: dict[str, Any], m: _Mocked) -> None:
    value = i.get("value") if i.get("value") is not None else i.get("insecureValue")
    if value is None:
        raise PlanError(f"plan resource {r['name']!r} ({r['type']}) has neither 'value' nor 'insecureValue'")
    if value == SECRET:
        b.twin.masked.append(r["name"])
    name = i.get("name") or m.physical
    b.c("ssm").put_parameter(
        **_drop_none(
            {
                "Name": name, "Value": str(value), "Type": i.get("type") or "String",
                "Description": i.get("description"), "Tier": i.get("tier"), "DataType": i.get("dataType"),
                "AllowedPattern": i.get("allowedPattern"), "KeyId": i.get("keyId"), "Tags": _tags_kv(i.get("tags")),
            }
        )
    )  # fmt: skip
    b.twin.parameters[name] = str(value)
    b.resolve.add_whole(m.id, name)


def _secret(b: _Builder, r: dict[str, Any], i: dict[str, Any], m: _Mocked) -> None:
    secret = b.c("secretsmanager").create_secret(
        **_drop_none(
            {"Name": m.physical, "Description": i.get("description"), "KmsKeyId": i.get("kmsKeyId"),
             "Tags": _tags_kv(i.get("tags"))}
        )
    )  # fmt: skip
    # moto picks its own 6-character ARN suffix; the plan's mocked ARN (used as ``valueFrom``) maps to it.
    b.resolve.add_whole(m.id, secret["ARN"])  # a Pulumi Secret's id is its ARN
    b.resolve.add_within(m.state.get("arn"), secret["ARN"])


def _secret_version(b: _Builder, r: dict[str, Any], i: dict[str, Any], m: _Mocked) -> None:
    value = i.get("secretString")
    if value is None:
        b.note(r["type"], f"{r['name']} (secretBinary)")
        return
    if value == SECRET:
        b.twin.masked.append(r["name"])
    b.c("secretsmanager").put_secret_value(SecretId=i["secretId"], SecretString=str(value))


def _log_group(b: _Builder, r: dict[str, Any], i: dict[str, Any], m: _Mocked) -> None:
    logs = b.c("logs")
    name = m.physical
    logs.create_log_group(**_drop_none({"logGroupName": name, "kmsKeyId": i.get("kmsKeyId"), "tags": i.get("tags")}))
    if i.get("retentionInDays"):
        logs.put_retention_policy(logGroupName=name, retentionInDays=int(i["retentionInDays"]))
    b.resolve.add_whole(m.id, name)


def _ecr_repository(b: _Builder, r: dict[str, Any], i: dict[str, Any], m: _Mocked) -> None:
    encryption = (i.get("encryptionConfigurations") or [{}])[0]
    repo = b.c("ecr").create_repository(
        **_drop_none(
            {
                "repositoryName": m.physical,
                "imageTagMutability": i.get("imageTagMutability"),
                "imageTagMutabilityExclusionFilters": [
                    {"filterType": f["filterType"], "filter": f["filter"]}
                    for f in i.get("imageTagMutabilityExclusionFilters") or []
                ]
                or None,
                "imageScanningConfiguration": _drop_none(
                    {"scanOnPush": (i.get("imageScanningConfiguration") or {}).get("scanOnPush")}
                ),
                "encryptionConfiguration": _drop_none(
                    {"encryptionType": encryption.get("encryptionType"), "kmsKey": encryption.get("kmsKey")}
                ),
                "tags": _tags_kv(i.get("tags")),
            }
        )
    )["repository"]
    b.twin.repositories[repo["repositoryName"]] = repo["repositoryUri"]
    b.resolve.add_whole(m.id, repo["repositoryName"])  # a Pulumi Repository's id is its name
    b.resolve.add_within(m.state.get("repositoryUrl"), repo["repositoryUri"])
    b.resolve.add_within(m.state.get("arn"), repo["repositoryArn"])


def _ecr_lifecycle(b: _Builder, r: dict[str, Any], i: dict[str, Any], m: _Mocked) -> None:
    b.c("ecr").put_lifecycle_policy(repositoryName=i["repository"], lifecyclePolicyText=i["policy"])


# --- Batch ----------------------------------------------------------------------------------------------

_BATCH_COMPUTE_KEYS = {"maxVcpus": "maxvCpus", "minVcpus": "minvCpus", "desiredVcpus": "desiredvCpus",
                       "ec2Configurations": "ec2Configuration"}  # fmt: skip


def _batch_service_role(b: _Builder) -> str:
    """The Batch service-linked role, which AWS uses when a compute environment names no service role
    (AWS Batch User Guide, "Using service-linked roles for AWS Batch"); moto insists on one being given."""
    if b.batch_service_role is None:
        iam = b.c("iam")
        try:
            b.batch_service_role = iam.create_service_linked_role(AWSServiceName="batch.amazonaws.com")["Role"]["Arn"]
        except ClientError:
            roles = iam.list_roles(PathPrefix="/aws-service-role/batch.amazonaws.com/")["Roles"]
            b.batch_service_role = roles[0]["Arn"]
    return b.batch_service_role


def _batch_compute_environment(b: _Builder, r: dict[str, Any], i: dict[str, Any], m: _Mocked) -> None:
    resources = i.get("computeResources")
    compute = {_BATCH_COMPUTE_KEYS.get(k, k): v for k, v in resources.items()} if resources else None
    env = b.c("batch").create_compute_environment(
        **_drop_none(
            {
                "computeEnvironmentName": m.physical, "type": i["type"], "state": i.get("state"),
                "computeResources": compute, "serviceRole": i.get("serviceRole") or _batch_service_role(b),
                "tags": i.get("tags"),
            }
        )
    )  # fmt: skip
    b.resolve.add_whole(m.id, env["computeEnvironmentName"])
    b.resolve.add_within(m.state.get("arn"), env["computeEnvironmentArn"])


def _batch_job_queue(b: _Builder, r: dict[str, Any], i: dict[str, Any], m: _Mocked) -> None:
    queue = b.c("batch").create_job_queue(
        **_drop_none(
            {
                "jobQueueName": m.physical, "state": i.get("state") or "ENABLED", "priority": int(i["priority"]),
                "computeEnvironmentOrder": [
                    {"order": int(o["order"]), "computeEnvironment": o["computeEnvironment"]}
                    for o in i.get("computeEnvironmentOrders") or []
                ],
                "schedulingPolicyArn": i.get("schedulingPolicyArn"), "tags": i.get("tags"),
            }
        )
    )  # fmt: skip
    b.twin.job_queue = queue["jobQueueArn"]
    b.resolve.add_whole(m.id, queue["jobQueueArn"])  # a Pulumi JobQueue's id is its ARN
    b.resolve.add_within(m.state.get("arn"), queue["jobQueueArn"])


def _batch_job_definition(b: _Builder, r: dict[str, Any], i: dict[str, Any], m: _Mocked) -> None:
    retry = i.get("retryStrategy")
    if retry:
        retry = _drop_none({"attempts": retry.get("attempts"), "evaluateOnExit": retry.get("evaluateOnExits")})
    container = i.get("containerProperties")
    definition = b.c("batch").register_job_definition(
        **_drop_none(
            {
                "jobDefinitionName": m.physical, "type": i["type"],
                "containerProperties": json.loads(container) if isinstance(container, str) else container,
                "parameters": i.get("parameters"), "retryStrategy": retry, "timeout": i.get("timeout"),
                "platformCapabilities": i.get("platformCapabilities"), "propagateTags": i.get("propagateTags"),
                "schedulingPriority": i.get("schedulingPriority"), "tags": i.get("tags"),
            }
        )
    )  # fmt: skip
    b.twin.job_definitions[definition["jobDefinitionName"]] = definition["jobDefinitionArn"]
    b.resolve.add_whole(m.id, definition["jobDefinitionArn"])  # a Pulumi JobDefinition's id is its ARN
    b.resolve.add_within(m.state.get("arn"), definition["jobDefinitionArn"])


# --- EventBridge and Scheduler --------------------------------------------------------------------------


def _event_bus(b: _Builder, r: dict[str, Any], i: dict[str, Any], m: _Mocked) -> None:
    bus = b.c("events").create_event_bus(Name=m.physical, Tags=_tags_kv(i.get("tags")))
    b.resolve.add_whole(m.id, m.physical)
    b.resolve.add_within(m.state.get("arn"), bus["EventBusArn"])


def _event_rule(b: _Builder, r: dict[str, Any], i: dict[str, Any], m: _Mocked) -> None:
    events = b.c("events")
    bus = i.get("eventBusName") or "default"
    state = i.get("state") or ("DISABLED" if i.get("isEnabled") is False else "ENABLED")
    rule = events.put_rule(
        **_drop_none(
            {
                "Name": m.physical, "EventBusName": bus, "EventPattern": i.get("eventPattern"),
                "ScheduleExpression": i.get("scheduleExpression"), "State": state,
                "Description": i.get("description"), "RoleArn": i.get("roleArn"), "Tags": _tags_kv(i.get("tags")),
            }
        )
    )  # fmt: skip
    b.resolve.add_whole(m.id, m.physical)
    b.resolve.add_within(m.state.get("arn"), rule["RuleArn"])
    url, probe_arn = b.probe_queue("rule", r["name"])
    events.put_targets(Rule=m.physical, EventBusName=bus, Targets=[{"Id": "twin-probe", "Arn": probe_arn}])
    pattern = json.loads(i["eventPattern"]) if i.get("eventPattern") else None
    b.twin.rules[r["name"]] = RuleProbe(m.physical, bus, pattern, url)
    b.rule_keys[(bus, m.physical)] = r["name"]


def _event_target_shape(i: dict[str, Any]) -> dict[str, Any]:
    transformer = i.get("inputTransformer")
    return _drop_none(
        {
            "Input": i.get("input"),
            "InputPath": i.get("inputPath"),
            "InputTransformer": _drop_none(
                {"InputPathsMap": transformer.get("inputPaths"), "InputTemplate": transformer["inputTemplate"]}
            )
            if transformer
            else None,
        }
    )


def _event_target(b: _Builder, r: dict[str, Any], i: dict[str, Any], m: _Mocked) -> None:
    events = b.c("events")
    bus = i.get("eventBusName") or "default"
    if (bus, i["rule"]) not in b.rule_keys:
        raise PlanError(f"event target {r['name']!r} names rule {i['rule']!r} on bus {bus!r}, not in the plan")
    target_id = i.get("targetId") or r["name"]
    service = i["arn"].split(":")[2] if i["arn"].startswith("arn:") else ""
    shape = _event_target_shape(i)
    if service in MOTO_DELIVERABLE_TARGETS:
        target = {
            "Id": target_id, "Arn": i["arn"], **shape,
            **_drop_none({"RoleArn": i.get("roleArn"), "RetryPolicy": _pascal(i.get("retryPolicy")),
                          "DeadLetterConfig": _pascal(i.get("deadLetterConfig")),
                          "SqsParameters": _pascal(i.get("sqsTarget"))}),
        }  # fmt: skip
        events.put_targets(Rule=i["rule"], EventBusName=bus, Targets=[target])
        return
    # moto cannot deliver to this target; a probe with the target's own input shape shows what it would get.
    url, probe_arn = b.probe_queue("target", r["name"])
    probe_id = f"twin-{target_id}"[:64]
    events.put_targets(Rule=i["rule"], EventBusName=bus, Targets=[{"Id": probe_id, "Arn": probe_arn, **shape}])
    b.twin.target_probes[r["name"]] = url
    b.twin.target_arns[r["name"]] = i["arn"]


def _schedule_group(b: _Builder, r: dict[str, Any], i: dict[str, Any], m: _Mocked) -> None:
    b.c("scheduler").create_schedule_group(Name=m.physical, Tags=_tags_kv(i.get("tags")))
    b.resolve.add_whole(m.id, m.physical)


def _schedule(b: _Builder, r: dict[str, Any], i: dict[str, Any], m: _Mocked) -> None:
    group = i.get("groupName") or "default"
    b.c("scheduler").create_schedule(
        **_drop_none(
            {
                "Name": m.physical, "GroupName": group, "ScheduleExpression": i["scheduleExpression"],
                "ScheduleExpressionTimezone": i.get("scheduleExpressionTimezone"), "State": i.get("state"),
                "Description": i.get("description"), "FlexibleTimeWindow": _pascal(i["flexibleTimeWindow"]),
                "Target": _pascal(i["target"]), "KmsKeyArn": i.get("kmsKeyArn"),
            }
        )
    )  # fmt: skip
    b.twin.schedules[r["name"]] = f"{group}/{m.physical}"


# Creation order: what a later resource references comes first.
HANDLERS: dict[str, Handler] = {
    "aws:kms/key:Key": _kms_key,
    "aws:kms/alias:Alias": _kms_alias,
    "aws:iam/role:Role": _iam_role,
    "aws:iam/policy:Policy": _iam_policy,
    "aws:iam/rolePolicy:RolePolicy": _iam_role_policy,
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": _iam_role_policy_attachment,
    "aws:ec2/vpc:Vpc": _ec2_vpc,
    "aws:ec2/subnet:Subnet": _ec2_subnet,
    "aws:ec2/securityGroup:SecurityGroup": _ec2_security_group,
    "aws:s3/bucket:Bucket": _s3_bucket,
    "aws:s3/bucketVersioning:BucketVersioning": _s3_versioning,
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": _s3_encryption,
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": _s3_public_access_block,
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": _s3_ownership,
    "aws:s3/bucketPolicy:BucketPolicy": _s3_policy,
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": _s3_lifecycle,
    "aws:sqs/queue:Queue": _sqs_queue,
    "aws:sqs/queuePolicy:QueuePolicy": _sqs_queue_policy,
    "aws:sns/topic:Topic": _sns_topic,
    "aws:sns/topicPolicy:TopicPolicy": _sns_topic_policy,
    "aws:sns/topicSubscription:TopicSubscription": _sns_subscription,
    "aws:ssm/parameter:Parameter": _ssm_parameter,
    "aws:secretsmanager/secret:Secret": _secret,
    "aws:secretsmanager/secretVersion:SecretVersion": _secret_version,
    "aws:cloudwatch/logGroup:LogGroup": _log_group,
    "aws:ecr/repository:Repository": _ecr_repository,
    "aws:ecr/lifecyclePolicy:LifecyclePolicy": _ecr_lifecycle,
    "aws:batch/computeEnvironment:ComputeEnvironment": _batch_compute_environment,
    "aws:batch/jobQueue:JobQueue": _batch_job_queue,
    "aws:batch/jobDefinition:JobDefinition": _batch_job_definition,
    "aws:cloudwatch/eventBus:EventBus": _event_bus,
    "aws:cloudwatch/eventRule:EventRule": _event_rule,
    "aws:cloudwatch/eventTarget:EventTarget": _event_target,
    "aws:s3/bucketNotification:BucketNotification": _s3_notification,
    "aws:scheduler/scheduleGroup:ScheduleGroup": _schedule_group,
    "aws:scheduler/schedule:Schedule": _schedule,
}


def provision(plan: dict[str, Any], endpoint_url: str) -> TwinAws:
    """Create the plan's AWS side on the moto server at ``endpoint_url`` and say where everything is.

    The server should be empty (a fresh one, or after ``POST /moto-api/reset``): names come from the
    plan, so provisioning the same plan twice on one server fails on the first existing resource.
    """
    resources = _validated(plan)
    region = _plan_region(plan)
    session = boto3.session.Session(region_name=region, **TWIN_CREDENTIALS)
    account = session.client("sts", endpoint_url=endpoint_url).get_caller_identity()["Account"]
    twin = TwinAws(endpoint_url=endpoint_url, region=region, account_id=account)
    plan_account = _plan_account(resources)
    if plan_account and plan_account != account:
        # ARNs the plan built from names carry the mock's account; the twin's differ only in that.
        twin._substitutions.add_within(f":{plan_account}:", f":{account}:")
        twin._substitutions.add_within(f"{plan_account}.dkr.ecr.", f"{account}.dkr.ecr.")
    _Builder(twin, resources).run()
    return twin


def _plan_account(resources: list[dict[str, Any]]) -> str | None:
    """The account id in the plan's ARNs (the mock runtime's), found in its inputs."""
    for text in _strings(resources):
        found = re.search(r"arn:aws:[a-z0-9-]+:[a-z0-9-]*:(\d{12}):", text)
        if found:
            return found.group(1)
    return None


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def summary(twin: TwinAws) -> dict[str, Any]:
    """What was created and how to observe it, as JSON-ready data (what ``python -m twin.aws`` prints)."""
    return {
        "endpoint_url": twin.endpoint_url, "region": twin.region, "account_id": twin.account_id,
        "buckets": twin.buckets, "topics": {k: v._asdict() for k, v in twin.topics.items()},
        "rules": {k: v._asdict() for k, v in twin.rules.items()}, "parameters": twin.parameters,
        "job_queue": twin.job_queue, "job_definitions": twin.job_definitions, "repositories": twin.repositories,
        "roles": twin.roles, "queues": twin.queues, "schedules": twin.schedules,
        "subscription_probes": twin.subscription_probes, "target_probes": twin.target_probes,
        "masked": twin.masked, "not_modelled": twin.not_modelled,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """``python -m twin.aws --stack dev --endpoint-url http://127.0.0.1:5000``: provision a running (empty)
    moto server from the stack's offline plan and print where everything is, for poking at it by hand."""
    import argparse

    from tools.plan.offline import run_offline
    from tools.plan.plan import render_json

    parser = argparse.ArgumentParser(prog="python -m twin.aws", description=(main.__doc__ or "").split("\n\n")[0])
    parser.add_argument("--stack", default="dev", help="stack whose plan to provision (default: dev)")
    parser.add_argument("--endpoint-url", required=True, help="the moto server, e.g. http://127.0.0.1:5000")
    args = parser.parse_args(argv)
    plan = json.loads(render_json(run_offline(args.stack)))
    try:
        twin = provision(plan, args.endpoint_url)
    except (PlanError, TwinProvisionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary(twin), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
