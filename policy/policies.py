"""Mandatory guardrails over every resource the program declares.

Each policy is a plain ``pulumi_policy`` object, so the analyzer runs them on ``pulumi preview`` and the
test suite runs the very same objects offline over both stacks' mocked resources. A violation message says
what is wrong and what is expected, in the words a reviewer would use.
"""

from __future__ import annotations

import importlib
import inspect
import json
from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

from pulumi_policy import (
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

REQUIRED_TAGS = ("project", "stack", "environment", "managed-by")
ADMIN_POLICY_SUFFIXES = ("/AdministratorAccess", "/PowerUserAccess", "/IAMFullAccess")
# Inputs that hold a policy document, by resource type (IAM and resource policies alike).
POLICY_INPUTS: dict[str, tuple[str, ...]] = {
    "aws:iam/policy:Policy": ("policy",),
    "aws:iam/rolePolicy:RolePolicy": ("policy",),
    "aws:iam/userPolicy:UserPolicy": ("policy",),
    "aws:iam/groupPolicy:GroupPolicy": ("policy",),
    "aws:iam/role:Role": ("assumeRolePolicy",),
    "aws:s3/bucketPolicy:BucketPolicy": ("policy",),
    "aws:sns/topicPolicy:TopicPolicy": ("policy",),
    "aws:sqs/queuePolicy:QueuePolicy": ("policy",),
    "aws:ecr/repositoryPolicy:RepositoryPolicy": ("policy",),
}


def _document(value: Any) -> dict[str, Any] | None:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return None
    return value if isinstance(value, dict) and "Statement" in value else None


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _documents(args: ResourceValidationArgs) -> Iterator[dict[str, Any]]:
    for key in POLICY_INPUTS.get(args.resource_type, ()):
        if (document := _document(args.props.get(key))) is not None:
            yield document
    if args.resource_type == "aws:iam/role:Role":
        for inline in _as_list(args.props.get("inlinePolicies")):
            if isinstance(inline, Mapping) and (document := _document(inline.get("policy"))) is not None:
                yield document


def _no_wildcard_actions(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    for document in _documents(args):
        for statement in _as_list(document.get("Statement")):
            if statement.get("Effect") != "Allow":
                continue  # a Deny with a wildcard (e.g. TLS-only bucket policies) grants nothing
            if "NotAction" in statement:
                report_violation(f"{args.name}: an Allow with NotAction grants every other action; list actions")
            for action in _as_list(statement.get("Action")):
                if "*" in str(action):
                    report_violation(f"{args.name}: Allow grants wildcard action {action!r}; name each action")


def _no_admin_managed_policies(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    arns = _as_list(args.props.get("managedPolicyArns")) + _as_list(args.props.get("policyArn"))
    for arn in arns:
        text = str(arn)
        if "FullAccess" in text or text.endswith(ADMIN_POLICY_SUFFIXES):
            report_violation(f"{args.name}: managed policy {text} is admin or *FullAccess; write a scoped policy")


# The tags that may move in an otherwise immutable repository: what runs (keep-stage/prod/batch) and the
# BuildKit cache. Must equal infra.pipeline.registry.MUTABLE_TAG_FILTERS (the pack runs without the program;
# tests/infra/test_delivery_registry.py ties the two).
ALLOWED_MUTABLE_TAG_FILTERS = frozenset({"keep-*", "buildcache"})


def _ecr_immutable_scanned(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != "aws:ecr/repository:Repository":
        return
    mutability = args.props.get("imageTagMutability")
    filters = {f.get("filter") for f in args.props.get("imageTagMutabilityExclusionFilters") or []}
    if mutability == "IMMUTABLE_WITH_EXCLUSION" and filters and filters <= ALLOWED_MUTABLE_TAG_FILTERS:
        pass  # only the moving keep-* reference tags and the build cache tag (issue #16; infra/pipeline/registry.py)
    elif mutability != "IMMUTABLE":
        report_violation(
            f"{args.name}: image tags must be IMMUTABLE so a tag names one image forever (exclusions "
            f"only for {sorted(ALLOWED_MUTABLE_TAG_FILTERS)}); got {mutability} {sorted(filters)}"
        )
    if not (args.props.get("imageScanningConfiguration") or {}).get("scanOnPush"):
        report_violation(f"{args.name}: scan on push must be on")


def _ecs_private_with_rollback(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != "aws:ecs/service:Service":
        return
    network = args.props.get("networkConfiguration") or {}
    if network.get("assignPublicIp") is not False:
        report_violation(f"{args.name}: tasks must run without a public IP (assignPublicIp false)")
    breaker = args.props.get("deploymentCircuitBreaker") or {}
    if not (breaker.get("enable") and breaker.get("rollback")):
        report_violation(f"{args.name}: the deployment circuit breaker must be on with rollback")


def _codebuild_in_vpc(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != "aws:codebuild/project:Project":
        return
    vpc = args.props.get("vpcConfig") or {}
    if not (vpc.get("vpcId") and vpc.get("subnets") and vpc.get("securityGroupIds")):
        report_violation(f"{args.name}: CodeBuild must run inside the VPC (vpcConfig with subnets and security groups)")


def _log_retention(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != "aws:cloudwatch/logGroup:LogGroup":
        return
    if not args.props.get("retentionInDays"):
        report_violation(f"{args.name}: set retentionInDays; logs must not be kept (and billed) forever")


def _sns_encrypted(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type == "aws:sns/topic:Topic" and not args.props.get("kmsMasterKeyId"):
        report_violation(f"{args.name}: SNS topics must be encrypted with a KMS key (kmsMasterKeyId)")


@cache
def _taggable(resource_type: str) -> bool:
    """Whether the pulumi-aws resource class accepts ``tags`` (read from the provider SDK itself)."""
    try:
        _package, module_path, class_name = resource_type.split(":")
        module = importlib.import_module(f"pulumi_aws.{module_path.split('/')[0]}")
        init = getattr(getattr(module, class_name), "_internal_init", None)
    except (ValueError, ImportError, AttributeError):
        return False
    return init is not None and "tags" in inspect.signature(init).parameters


def _required_tags(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if not args.resource_type.startswith("aws:") or not _taggable(args.resource_type):
        return
    tags = args.props.get("tags") or {}
    missing = [key for key in REQUIRED_TAGS if not tags.get(key)]
    if missing:
        report_violation(f"{args.name}: missing required tags {missing}")


def _satellites(args: StackValidationArgs, resource_type: str) -> dict[str, Any]:
    """Bucket URN -> props of the ``resource_type`` resources that configure it (found through the
    ``bucket`` property dependency, which is known at preview when the bucket's name is not)."""
    found: dict[str, Any] = {}
    for resource in args.resources:
        if resource.resource_type == resource_type:
            for bucket in resource.property_dependencies.get("bucket", []):
                found[bucket.urn] = resource.props
    return found


def _buckets_secure(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    encryption = _satellites(
        args, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    )
    blocks = _satellites(args, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    ownership = _satellites(args, "aws:s3/bucketOwnershipControls:BucketOwnershipControls")
    policies = _satellites(args, "aws:s3/bucketPolicy:BucketPolicy")
    for bucket in args.resources:
        if bucket.resource_type != "aws:s3/bucket:Bucket":
            continue
        rules = (encryption.get(bucket.urn) or {}).get("rules") or []
        algorithms = {(r.get("applyServerSideEncryptionByDefault") or {}).get("sseAlgorithm") for r in rules}
        if not algorithms & {"aws:kms", "aws:kms:dsse", "AES256"}:
            report_violation(f"{bucket.name}: no default encryption (SSE-KMS or SSE-S3)", bucket.urn)
        block = blocks.get(bucket.urn) or {}
        flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
        if not all(block.get(flag) for flag in flags):
            report_violation(f"{bucket.name}: public access must be blocked ({', '.join(flags)})", bucket.urn)
        rule = (ownership.get(bucket.urn) or {}).get("rule") or {}
        if rule.get("objectOwnership") != "BucketOwnerEnforced":
            report_violation(f"{bucket.name}: object ownership must be BucketOwnerEnforced (ACLs off)", bucket.urn)
        document = _document((policies.get(bucket.urn) or {}).get("policy")) or {"Statement": []}
        tls_only = any(
            s.get("Effect") == "Deny"
            and (s.get("Condition") or {}).get("Bool", {}).get("aws:SecureTransport") == "false"
            for s in _as_list(document.get("Statement"))
        )
        if not tls_only:
            report_violation(f"{bucket.name}: the bucket policy must deny requests without TLS", bucket.urn)


def _model_bucket_versioned(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    versioning = _satellites(args, "aws:s3/bucketVersioning:BucketVersioning")
    for bucket in args.resources:
        if (
            bucket.resource_type == "aws:s3/bucket:Bucket"
            and (bucket.props.get("tags") or {}).get("purpose") == "models"
        ):
            status = ((versioning.get(bucket.urn) or {}).get("versioningConfiguration") or {}).get("status")
            if status != "Enabled":
                report_violation(
                    f"{bucket.name}: the model bucket must be versioned (the S3 source needs it)", bucket.urn
                )


# --- issue #17: HTTPS and WAF in prod, encrypted logs, no Docker Hub images, capture bucket SSE-KMS only ---
# ALB security policies that offer only TLS 1.2 and newer (ELB User Guide, "Security policies for your ALB").
TLS12_POLICY_PREFIXES = ("ELBSecurityPolicy-TLS13-1-2-", "ELBSecurityPolicy-TLS13-1-3-", "ELBSecurityPolicy-TLS-1-2-",
                         "ELBSecurityPolicy-FS-1-2-")  # fmt: skip
DOCKER_HUB_REGISTRIES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})


def _is_prod(props: Mapping[str, Any]) -> bool:
    return (props.get("tags") or {}).get("environment") == "prod"


def _https_in_prod(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != "aws:lb/listener:Listener":
        return
    protocol = args.props.get("protocol")
    if protocol == "HTTPS" and not str(args.props.get("sslPolicy") or "").startswith(TLS12_POLICY_PREFIXES):
        report_violation(f"{args.name}: HTTPS listener policy {args.props.get('sslPolicy')!r} allows TLS below 1.2; "
                         f"use one of {list(TLS12_POLICY_PREFIXES)}")  # fmt: skip
    if protocol == "HTTP" and _is_prod(args.props):
        actions = _as_list(args.props.get("defaultActions"))
        redirects = [a for a in actions if a.get("type") == "redirect"
                     and (a.get("redirect") or {}).get("protocol") == "HTTPS"]  # fmt: skip
        if len(redirects) != len(actions) or not actions:
            report_violation(f"{args.name}: in prod an HTTP listener may only redirect to HTTPS (serve on 443 with "
                             "certificateArn)")  # fmt: skip


def _waf_in_prod(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    protected = {
        dependency.urn
        for resource in args.resources
        if resource.resource_type == "aws:wafv2/webAclAssociation:WebAclAssociation"
        for dependency in resource.property_dependencies.get("resourceArn", [])
    }
    for alb in args.resources:
        if (alb.resource_type == "aws:lb/loadBalancer:LoadBalancer" and _is_prod(alb.props)
                and not alb.props.get("internal") and alb.urn not in protected):  # fmt: skip
            report_violation(f"{alb.name}: an internet-facing ALB in prod needs a WAF web ACL (wafEnabled)", alb.urn)


def _logs_encrypted(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type == "aws:cloudwatch/logGroup:LogGroup" and not args.props.get("kmsKeyId"):
        report_violation(f"{args.name}: log groups must be encrypted with the stack's KMS key (kmsKeyId)")


def is_docker_hub(image: str) -> bool:
    """Whether an image reference pulls from Docker Hub: an explicit docker.io host, or no registry host at
    all (``python:3.11``, ``library/python``), which Docker and containerd resolve to docker.io."""
    first, _, rest = image.partition("/")
    if not rest:
        return True
    if "." not in first and ":" not in first and first != "localhost":
        return True  # "owner/name": a Docker Hub namespace
    return first.lower() in DOCKER_HUB_REGISTRIES


def _images(args: ResourceValidationArgs) -> list[str]:
    if args.resource_type == "aws:ecs/taskDefinition:TaskDefinition":
        definitions = args.props.get("containerDefinitions")
        containers = json.loads(definitions) if isinstance(definitions, str) else _as_list(definitions)
        return [str(c.get("image", "")) for c in containers if isinstance(c, Mapping)]
    if args.resource_type == "aws:batch/jobDefinition:JobDefinition":
        images = []
        for key in ("containerProperties", "ecsProperties"):
            value = args.props.get(key)
            document = json.loads(value) if isinstance(value, str) else value
            if isinstance(document, Mapping):
                images.extend(_nested_images(document))
        return images
    return []


def _nested_images(document: Any) -> list[str]:
    if isinstance(document, Mapping):
        found = [str(document["image"])] if isinstance(document.get("image"), str) else []
        return found + [i for v in document.values() for i in _nested_images(v)]
    if isinstance(document, list):
        return [i for v in document for i in _nested_images(v)]
    return []


def _no_docker_hub_images(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    for image in _images(args):
        if is_docker_hub(image):
            report_violation(f"{args.name}: image {image!r} comes from Docker Hub (pull limits, no KMS, no scan); "
                             "use ECR or ECR Public (public.ecr.aws/docker/library/...)")  # fmt: skip


def _capture_bucket_policy(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    encryption = _satellites(
        args, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    )
    policies = _satellites(args, "aws:s3/bucketPolicy:BucketPolicy")
    for bucket in args.resources:
        if (
            bucket.resource_type != "aws:s3/bucket:Bucket"
            or (bucket.props.get("tags") or {}).get("purpose") != "capture"
        ):
            continue
        rules = (encryption.get(bucket.urn) or {}).get("rules") or []
        defaults = [r.get("applyServerSideEncryptionByDefault") or {} for r in rules]
        if not any(d.get("sseAlgorithm") == "aws:kms" and d.get("kmsMasterKeyId") for d in defaults):
            report_violation(f"{bucket.name}: captured payloads must default to SSE-KMS with the stack key", bucket.urn)
        statements = _as_list((_document((policies.get(bucket.urn) or {}).get("policy")) or {}).get("Statement"))
        denies = [s for s in statements if s.get("Effect") == "Deny"]
        if not any((s.get("Condition") or {}).get("Bool", {}).get("aws:SecureTransport") == "false" for s in denies):
            report_violation(f"{bucket.name}: the capture bucket policy must deny requests without TLS", bucket.urn)
        if not any("s3:x-amz-server-side-encryption" in (s.get("Condition") or {}).get("StringNotEquals", {})
                   for s in denies):  # fmt: skip
            report_violation(f"{bucket.name}: the capture bucket policy must deny uploads that ask for an encryption "
                             "other than aws:kms", bucket.urn)  # fmt: skip


def _resource_policy(name: str, description: str, validate: Any) -> ResourceValidationPolicy:
    return ResourceValidationPolicy(name=name, description=description, validate=validate)


POLICIES: list[ResourceValidationPolicy | StackValidationPolicy] = [
    _resource_policy("iam-no-wildcard-actions", "No Allow statement grants a wildcard action.", _no_wildcard_actions),
    _resource_policy("iam-no-admin-managed-policies", "No admin or *FullAccess managed policies.",
                     _no_admin_managed_policies),
    StackValidationPolicy(name="s3-buckets-encrypted-private-tls-only",
                          description="Every bucket is encrypted, blocks public access, enforces owner and TLS.",
                          validate=_buckets_secure),
    StackValidationPolicy(name="s3-model-bucket-versioned", description="The model bucket is versioned.",
                          validate=_model_bucket_versioned),
    _resource_policy("ecr-immutable-scan-on-push", "ECR tags immutable, scan on push.", _ecr_immutable_scanned),
    _resource_policy("ecs-private-tasks-with-rollback", "ECS tasks private, circuit breaker with rollback.",
                     _ecs_private_with_rollback),
    _resource_policy("codebuild-in-vpc", "CodeBuild projects run in the VPC.", _codebuild_in_vpc),
    _resource_policy("logs-retention-set", "Every log group has a retention.", _log_retention),
    _resource_policy("sns-topics-encrypted", "SNS topics are KMS-encrypted.", _sns_encrypted),
    _resource_policy("required-tags", f"Every taggable resource carries {list(REQUIRED_TAGS)}.", _required_tags),
    _resource_policy("alb-https-in-prod", "TLS 1.2+ on HTTPS listeners; in prod HTTP only redirects to HTTPS.",
                     _https_in_prod),
    StackValidationPolicy(name="waf-on-prod-albs", description="Internet-facing ALBs in prod have a WAF web ACL.",
                          validate=_waf_in_prod),
    _resource_policy("logs-encrypted", "Every log group is encrypted with a KMS key.", _logs_encrypted),
    _resource_policy("no-docker-hub-images", "Task and job definitions pull no image from Docker Hub.",
                     _no_docker_hub_images),
    StackValidationPolicy(name="capture-bucket-tls-and-sse-kms",
                          description="The capture bucket defaults to SSE-KMS, denies non-TLS and non-KMS uploads.",
                          validate=_capture_bucket_policy),
]  # fmt: skip
