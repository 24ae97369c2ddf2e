"""The three buckets: pipeline artifacts, models (the pipeline's S3 source), captured payloads.

Every bucket gets the same baseline from :class:`SecureBucket`, so a new bucket cannot forget one:
SSE-KMS with the stack key and an S3 Bucket Key, all public access blocked, bucket-owner-enforced
ownership (ACLs off), and a policy that denies any request not made over TLS.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from contracts.bucket_layout import CAPTURE_ROOT
from infra.lib import iam


@dataclass(frozen=True)
class SecureBucketArgs:
    kms_key_arn: pulumi.Input[str]
    versioned: bool = False
    eventbridge: bool = False
    purpose: str = "data"
    lifecycle_rules: list[aws.s3.BucketLifecycleConfigurationRuleArgs] = field(default_factory=list)
    protect: bool = False
    # Refuse uploads that ask for another encryption or another key (issue #17, the capture bucket).
    kms_only_uploads: bool = False


def kms_only_statements(bucket_arn: pulumi.Input[str], kms_key_arn: pulumi.Input[str]) -> list[iam.Statement]:
    """Deny PutObject that names an encryption other than SSE-KMS, or a KMS key other than the stack's.

    S3 User Guide, "Requiring server-side encryption" (bucket policy with s3:x-amz-server-side-encryption
    and s3:x-amz-server-side-encryption-aws-kms-key-id). The ``Null: false`` guard applies each Deny only
    when the header is sent: uploads without it get the bucket's default SSE-KMS with the stack key.
    """
    objects = pulumi.Output.concat(bucket_arn, "/*")
    header, key_header = "s3:x-amz-server-side-encryption", "s3:x-amz-server-side-encryption-aws-kms-key-id"
    return [
        {"Sid": "DenyNonKmsEncryption", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
         "Resource": objects, "Condition": {"StringNotEquals": {header: "aws:kms"}, "Null": {header: "false"}}},
        {"Sid": "DenyOtherKmsKey", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
         "Resource": objects,
         "Condition": {"StringNotEquals": {key_header: kms_key_arn}, "Null": {key_header: "false"}}},
    ]  # fmt: skip


class SecureBucket(pulumi.ComponentResource):
    def __init__(self, name: str, args: SecureBucketArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ml-delivery:storage:SecureBucket", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.bucket = aws.s3.Bucket(
            name,
            # The purpose tag lets policies find a bucket's role (e.g. the model bucket must be versioned).
            aws.s3.BucketArgs(force_destroy=not args.protect, tags={"purpose": args.purpose}),
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-sse",
            aws.s3.BucketServerSideEncryptionConfigurationInitArgs(
                bucket=self.bucket.id,
                rules=[
                    aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                        apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                            sse_algorithm="aws:kms", kms_master_key_id=args.kms_key_arn
                        ),
                        bucket_key_enabled=True,
                    )
                ],
            ),
            opts=child,
        )
        access_block = block_public_access(name, self.bucket.id, child)
        # S3 User Guide, "Security best practices": deny requests where aws:SecureTransport is false.
        # A Deny on every S3 action is the documented form; it grants nothing.
        aws.s3.BucketPolicy(
            f"{name}-tls-only",
            aws.s3.BucketPolicyArgs(
                bucket=self.bucket.id,
                policy=iam.document(
                    [
                        {
                            "Sid": "DenyInsecureTransport",
                            "Effect": "Deny",
                            "Principal": "*",
                            "Action": "s3:*",
                            "Resource": [self.bucket.arn, self.bucket.arn.apply(lambda arn: f"{arn}/*")],
                            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                        },
                        *(kms_only_statements(self.bucket.arn, args.kms_key_arn) if args.kms_only_uploads else []),
                    ]
                ),
            ),
            # The public access block must exist first or S3 may judge the policy public.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[access_block]),
        )
        if args.versioned:
            aws.s3.BucketVersioning(
                f"{name}-versioning",
                aws.s3.BucketVersioningInitArgs(
                    bucket=self.bucket.id,
                    versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"),
                ),
                opts=child,
            )
        if args.eventbridge:
            # S3 User Guide, "Using EventBridge": one switch sends every object event to the default bus,
            # where the pipeline's rule picks out the model key.
            aws.s3.BucketNotification(
                f"{name}-eventbridge",
                aws.s3.BucketNotificationArgs(bucket=self.bucket.id, eventbridge=True),
                opts=child,
            )
        if args.lifecycle_rules:
            aws.s3.BucketLifecycleConfiguration(
                f"{name}-lifecycle",
                aws.s3.BucketLifecycleConfigurationArgs(bucket=self.bucket.id, rules=args.lifecycle_rules),
                opts=child,
            )
        self.name = self.bucket.bucket
        self.arn = self.bucket.arn
        self.register_outputs({"name": self.bucket.bucket, "arn": self.bucket.arn})


def _expire(rule_id: str, days: int, prefix: str = "") -> aws.s3.BucketLifecycleConfigurationRuleArgs:
    return aws.s3.BucketLifecycleConfigurationRuleArgs(
        id=rule_id,
        status="Enabled",
        filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=prefix),
        expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(days=days),
        abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
            days_after_initiation=7
        ),
    )


@dataclass(frozen=True)
class BucketsArgs:
    kms_key_arn: pulumi.Input[str]
    capture_retention_days: int
    artifact_retention_days: int
    protect: bool


class Buckets(pulumi.ComponentResource):
    def __init__(self, name: str, args: BucketsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ml-delivery:storage:Buckets", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.artifacts = SecureBucket(
            f"{name}-artifacts",
            SecureBucketArgs(
                kms_key_arn=args.kms_key_arn,
                purpose="artifacts",
                lifecycle_rules=[_expire("expire-pipeline-artifacts", args.artifact_retention_days)],
            ),
            opts=child,
        )
        # Versioning is required by the CodePipeline S3 source action (CodePipeline User Guide, "Amazon S3
        # source action") and keeps every model ever uploaded; old versions expire after a year.
        self.models = SecureBucket(
            f"{name}-models",
            SecureBucketArgs(
                kms_key_arn=args.kms_key_arn,
                purpose="models",
                versioned=True,
                eventbridge=True,
                protect=args.protect,
                lifecycle_rules=[
                    aws.s3.BucketLifecycleConfigurationRuleArgs(
                        id="expire-old-model-versions",
                        status="Enabled",
                        filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                        noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                            noncurrent_days=365, newer_noncurrent_versions=10
                        ),
                        abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                            days_after_initiation=7
                        ),
                    )
                ],
            ),
            opts=child,
        )
        self.capture = SecureBucket(
            f"{name}-capture",
            SecureBucketArgs(
                kms_key_arn=args.kms_key_arn,
                purpose="capture",
                protect=args.protect,
                kms_only_uploads=True,
                lifecycle_rules=[
                    aws.s3.BucketLifecycleConfigurationRuleArgs(
                        id="capture-to-infrequent-access-then-expire",
                        status="Enabled",
                        filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=CAPTURE_ROOT),
                        transitions=[
                            aws.s3.BucketLifecycleConfigurationRuleTransitionArgs(days=30, storage_class="STANDARD_IA")
                        ]
                        if args.capture_retention_days > 60
                        else [],
                        expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(
                            days=args.capture_retention_days
                        ),
                        abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                            days_after_initiation=7
                        ),
                    ),
                    _expire("expire-athena-results", 30, prefix="athena-results/"),
                    # Uploads outside the two prefixes (operators' own) must not leave parts behind either.
                    aws.s3.BucketLifecycleConfigurationRuleArgs(
                        id="abort-incomplete-multipart-uploads",
                        status="Enabled",
                        filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                        abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                            days_after_initiation=7
                        ),
                    ),
                ],
            ),
            opts=child,
        )
        self.register_outputs(
            {"artifacts": self.artifacts.name, "models": self.models.name, "capture": self.capture.name}
        )


def block_public_access(
    name: str, bucket_id: pulumi.Input[str], opts: pulumi.ResourceOptions
) -> aws.s3.BucketPublicAccessBlock:
    """Every bucket of the stack: all four public-access blocks and ACLs disabled (BucketOwnerEnforced).

    Returns the access block, which a bucket policy should depend on (S3 refuses a public-looking policy
    while the block is being applied). Shared by the data buckets and the access-log bucket.
    """
    access_block = aws.s3.BucketPublicAccessBlock(
        f"{name}-public-access-block",
        aws.s3.BucketPublicAccessBlockArgs(
            bucket=bucket_id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
        ),
        opts=opts,
    )
    aws.s3.BucketOwnershipControls(
        f"{name}-ownership",
        aws.s3.BucketOwnershipControlsArgs(
            bucket=bucket_id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
        ),
        opts=opts,
    )
    return access_block
