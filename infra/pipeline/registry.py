"""ECR repositories for the app image and the jobs image."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws


@dataclass(frozen=True)
class RegistryArgs:
    image_retention_count: int
    force_delete: bool


def lifecycle_policy(keep: int) -> str:
    """Untagged layers go after a week; of tagged images only the newest ``keep`` stay (ECR User Guide,
    "Lifecycle policies"): enough to roll back well past any approval window."""
    return json.dumps(
        {
            "rules": [
                {
                    "rulePriority": 1,
                    "description": "Expire untagged images after 7 days",
                    "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed",
                                  "countUnit": "days", "countNumber": 7},
                    "action": {"type": "expire"},
                },
                {
                    "rulePriority": 2,
                    "description": f"Keep the newest {keep} images",
                    "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": keep},
                    "action": {"type": "expire"},
                },
            ]
        },
        sort_keys=True,
    )  # fmt: skip


class Registry(pulumi.ComponentResource):
    """Immutable tags: a tag names one image forever, so a deploy or a rollback is exactly reproducible.
    Encryption at rest: declared AES-256 here, switched to the stack's KMS key for every repository by
    ``infra.foundation.hardening.register_encryption_at_rest`` (issue #17; ECR sets it at creation only)."""

    def __init__(self, name: str, args: RegistryArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ml-delivery:registry:Registry", name, None, opts)
        self.app = self._repository(f"{name}-app", args)
        self.jobs = self._repository(f"{name}-jobs", args)
        self.register_outputs({"app": self.app.repository_url, "jobs": self.jobs.repository_url})

    def _repository(self, name: str, args: RegistryArgs) -> aws.ecr.Repository:
        repository = aws.ecr.Repository(
            name,
            aws.ecr.RepositoryArgs(
                image_tag_mutability="IMMUTABLE",
                image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(scan_on_push=True),
                encryption_configurations=[aws.ecr.RepositoryEncryptionConfigurationArgs(encryption_type="AES256")],
                force_delete=args.force_delete,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.ecr.LifecyclePolicy(
            f"{name}-lifecycle",
            aws.ecr.LifecyclePolicyArgs(
                repository=repository.name, policy=lifecycle_policy(args.image_retention_count)
            ),
            opts=pulumi.ResourceOptions(parent=repository),
        )
        return repository
