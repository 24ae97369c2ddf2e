"""ECR repositories for the app image and the jobs image (each also holds its BuildKit cache), and the
base-image source.

Lifecycle that never expires what runs (issue #16 item 7). ECR lifecycle rules cannot see which image a
service, a job definition or a release uses, so the references are written as tags, and rules keyed on
tag prefixes protect them (ECR User Guide, "Lifecycle policy evaluation rules": an image that matches the
tagging requirements of a higher-priority rule cannot be expired by a lower-priority rule):

* ``keep-stage``, ``keep-prod``, ``keep-batch`` (:func:`keep_tag`): moved by the pipeline / release step to
  the image each consumer runs now. Tags are immutable except ``keep-*`` (``IMMUTABLE_WITH_EXCLUSION``, ECR
  User Guide, "Preventing image tags from being overwritten": exclusion filters), so these can move while
  every build tag still names one image forever. Rule 1 never expires them.
* ``release-<UTC timestamp>`` (:data:`RELEASE_TAG_PREFIX`): added once to every promoted image; rule 2 keeps
  the newest ``releaseKeepCount`` (what a rollback can go back to).
* ``buildcache`` (:data:`CACHE_TAG`): the BuildKit registry cache manifest the build rewrites every time
  (buildspec.yml ``--cache-to type=registry,ref=<repository>:buildcache,image-manifest=true``); also excluded
  from immutability. A superseded cache manifest loses the tag and goes with the untagged after 7 days.
* everything else (build tags ``<sha>-m<version>``, ``<sha>``): untagged after 7 days, tagged beyond the newest
  ``imageRetentionCount``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

import pulumi
import pulumi_aws as aws

from infra.lib import iam
from infra.lib.images import (
    BUILDKIT_IMAGE,
    PULL_THROUGH_PREFIX,
    PULL_THROUGH_UPSTREAM,
    PYTHON_BASE_IMAGE,
    pull_through_reference,
)
from release.contracts import KEEP_TAG_PREFIX, RELEASE_TAG_PREFIX

# ECR countNumber for "never": the rule only exists to claim the images it matches (see module docstring).
NEVER = 9999
# The BuildKit registry cache (buildspec.yml: --cache-to/--cache-from type=registry,ref=<repo>:<tag>).
CACHE_TAG = "buildcache"
# Tags that may move (ECR "imageTagMutabilityExclusionFilters", WILDCARD); policy/policies.py allows exactly these.
MUTABLE_TAG_FILTERS = (f"{KEEP_TAG_PREFIX}*", CACHE_TAG)


@dataclass(frozen=True)
class RegistryArgs:
    image_retention_count: int
    force_delete: bool
    release_keep_count: int = 10
    base_image_source: Literal["ecr-public", "pull-through-cache"] = "ecr-public"
    account_id: pulumi.Input[str] = ""
    region: str = ""


def lifecycle_policy(keep: int, releases: int = 10) -> str:
    """Rules in priority order (module docstring). ``keep`` counts build images; ``releases`` release tags."""
    return json.dumps(
        {
            "rules": [
                {
                    "rulePriority": 1,
                    "description": "Never expire an image a service or a job runs (keep-* tags)",
                    "selection": {"tagStatus": "tagged", "tagPrefixList": [KEEP_TAG_PREFIX],
                                  "countType": "imageCountMoreThan", "countNumber": NEVER},
                    "action": {"type": "expire"},
                },
                {
                    "rulePriority": 2,
                    "description": f"Keep the newest {releases} released images (release-* tags)",
                    "selection": {"tagStatus": "tagged", "tagPrefixList": [RELEASE_TAG_PREFIX],
                                  "countType": "imageCountMoreThan", "countNumber": releases},
                    "action": {"type": "expire"},
                },
                {
                    "rulePriority": 3,
                    "description": "Expire untagged images after 7 days",
                    "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed",
                                  "countUnit": "days", "countNumber": 7},
                    "action": {"type": "expire"},
                },
                {
                    "rulePriority": 4,
                    "description": f"Of the images nothing references, keep the newest {keep}",
                    "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": keep},
                    "action": {"type": "expire"},
                },
            ]
        },
        sort_keys=True,
    )  # fmt: skip


class Registry(pulumi.ComponentResource):
    """Immutable tags (but ``keep-*``): a build tag names one image forever, so a deploy or a rollback is
    exactly reproducible. Encryption at rest: declared AES-256 here, switched to the stack's KMS key for every
    repository by ``infra.foundation.hardening.register_encryption_at_rest`` (issue #17; ECR sets it at
    creation only)."""

    def __init__(self, name: str, args: RegistryArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ml-delivery:registry:Registry", name, None, opts)
        self.app = self._repository(f"{name}-app", args)
        self.jobs = self._repository(f"{name}-jobs", args)
        self.pull_through_rule: aws.ecr.PullThroughCacheRule | None = None
        self.base_image: pulumi.Output[str] = pulumi.Output.from_input(PYTHON_BASE_IMAGE)
        if args.base_image_source == "pull-through-cache":
            # ECR User Guide, "Sync an upstream registry with an Amazon ECR private registry": ECR Public needs
            # no credentials; the first pull creates <prefix>/docker/library/python in this registry.
            self.pull_through_rule = aws.ecr.PullThroughCacheRule(
                f"{name}-ecr-public",
                aws.ecr.PullThroughCacheRuleArgs(
                    ecr_repository_prefix=PULL_THROUGH_PREFIX, upstream_registry_url=PULL_THROUGH_UPSTREAM
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.base_image = pulumi.Output.from_input(args.account_id).apply(
                lambda account: pull_through_reference(PYTHON_BASE_IMAGE, account, args.region)
            )
        self._args = args
        self.register_outputs({"app": self.app.repository_url, "jobs": self.jobs.repository_url})

    def build_environment(self) -> dict[str, pulumi.Input[str]]:
        """What the build project needs from the registry (buildspec.yml reads these)."""
        return {"BUILD_CACHE_TAG": CACHE_TAG, "PYTHON_IMAGE": self.base_image, "BUILDKIT_IMAGE": BUILDKIT_IMAGE}

    def build_statements(self) -> list[iam.Statement]:
        """The build's extra ECR rights: pull (and import) the base image through the cache rule (ECR User
        Guide, "IAM permissions required to sync an upstream registry"); none with ECR Public directly."""
        if self.pull_through_rule is None:
            return []
        cached = pulumi.Output.concat(
            "arn:aws:ecr:", self._args.region, ":", self._args.account_id, f":repository/{PULL_THROUGH_PREFIX}/*"
        )
        return [
            iam.allow(["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
                       "ecr:BatchImportUpstreamImage", "ecr:CreateRepository"], [cached], sid="PullThroughCache")
        ]  # fmt: skip

    def _repository(self, name: str, args: RegistryArgs) -> aws.ecr.Repository:
        repository = aws.ecr.Repository(
            name,
            aws.ecr.RepositoryArgs(
                image_tag_mutability="IMMUTABLE_WITH_EXCLUSION",
                image_tag_mutability_exclusion_filters=[
                    aws.ecr.RepositoryImageTagMutabilityExclusionFilterArgs(filter=pattern, filter_type="WILDCARD")
                    for pattern in MUTABLE_TAG_FILTERS
                ],
                image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(scan_on_push=True),
                encryption_configurations=[aws.ecr.RepositoryEncryptionConfigurationArgs(encryption_type="AES256")],
                force_delete=args.force_delete,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.ecr.LifecyclePolicy(
            f"{name}-lifecycle",
            aws.ecr.LifecyclePolicyArgs(
                repository=repository.name,
                policy=lifecycle_policy(args.image_retention_count, args.release_keep_count),
            ),
            opts=pulumi.ResourceOptions(parent=repository),
        )
        return repository
