"""The stack's customer-managed KMS key for data at rest (buckets, alerts topic).

Why a customer-managed key rather than SSE-S3: captured payloads may hold personal data, and a key
policy plus per-role ``kms:Decrypt`` grants give a second, auditable gate (every decrypt is in CloudTrail)
that can be closed at once by disabling the key. S3 Bucket Keys keep the KMS request cost negligible.
The SNS topic needs a customer-managed key anyway: CloudWatch alarms and EventBridge cannot publish to a
topic encrypted with the AWS-managed ``alias/aws/sns`` key (SNS Developer Guide, "Enable compatibility
between event sources from AWS services and encrypted topics").
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.foundation.hardening import key_policy_service_statements
from infra.lib import iam

# Explicit list instead of the default key policy's "kms:*" (no wildcard actions anywhere).
KEY_ADMIN_ACTIONS = (
    "kms:CancelKeyDeletion", "kms:CreateAlias", "kms:CreateGrant", "kms:Decrypt", "kms:DeleteAlias",
    "kms:DescribeKey", "kms:DisableKey", "kms:DisableKeyRotation", "kms:EnableKey", "kms:EnableKeyRotation",
    "kms:Encrypt", "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus", "kms:ListAliases", "kms:ListGrants", "kms:ListKeyPolicies",
    "kms:ListResourceTags", "kms:PutKeyPolicy", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:RetireGrant",
    "kms:RevokeGrant", "kms:ScheduleKeyDeletion", "kms:TagResource", "kms:UntagResource", "kms:UpdateAlias",
    "kms:UpdateKeyDescription",
)  # fmt: skip
# What a role needs to read and write SSE-KMS objects (S3 User Guide, "Using SSE-KMS").
DATA_ACTIONS = ("kms:Decrypt", "kms:GenerateDataKey")


@dataclass(frozen=True)
class DataKeyArgs:
    account_id: pulumi.Input[str]
    partition: pulumi.Input[str]
    deletion_window_days: int
    region: pulumi.Input[str]  # the key policy names logs.<region>.amazonaws.com


class DataKey(pulumi.ComponentResource):
    """One key per stack; roles get ``DATA_ACTIONS`` on it through IAM (the key policy delegates to IAM)."""

    def __init__(self, name: str, args: DataKeyArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ml-delivery:security:DataKey", name, None, opts)
        root = pulumi.Output.concat("arn:", args.partition, ":iam::", args.account_id, ":root")
        # In a key policy "Resource": "*" means "this key" (KMS Developer Guide, "Key policies in AWS KMS").
        policy = iam.document(
            [
                {"Sid": "AccountAdministersKeyAndDelegatesToIam", "Effect": "Allow", "Principal": {"AWS": root},
                 "Action": list(KEY_ADMIN_ACTIONS), "Resource": "*"},
                {"Sid": "AlarmsPublishToEncryptedTopic", "Effect": "Allow",
                 "Principal": {"Service": "cloudwatch.amazonaws.com"},
                 "Action": list(DATA_ACTIONS), "Resource": "*",
                 "Condition": {"StringEquals": {"aws:SourceAccount": args.account_id}}},
                # SNS Developer Guide, "Key management" (enable compatibility between event sources and
                # encrypted topics): EventBridge needs kms:Decrypt and kms:GenerateDataKey* WITHOUT an
                # aws:SourceAccount/aws:SourceArn condition, which EventBridge-to-topic delivery does not
                # satisfy: with it every pipeline/approval/Batch event was dropped (issue #12, defect 3).
                # "kms:GenerateDataKey*" is named as the one action SNS calls (no wildcard actions).
                {"Sid": "EventsPublishToEncryptedTopic", "Effect": "Allow",
                 "Principal": {"Service": "events.amazonaws.com"},
                 "Action": list(DATA_ACTIONS), "Resource": "*"},
                # Services that encrypt with their own principal (log groups): infra/foundation/hardening.py.
                *key_policy_service_statements(args.region, args.account_id, args.partition),
            ]
        )  # fmt: skip
        self.key = aws.kms.Key(
            f"{name}-key",
            aws.kms.KeyArgs(
                description=f"ml-delivery {pulumi.get_stack()}: data at rest (models, payloads, artifacts, alerts)",
                enable_key_rotation=True,
                deletion_window_in_days=args.deletion_window_days,
                policy=policy,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.alias = aws.kms.Alias(
            f"{name}-alias",
            aws.kms.AliasArgs(name=f"alias/ml-delivery-{pulumi.get_stack()}", target_key_id=self.key.key_id),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.arn = self.key.arn
        self.register_outputs({"arn": self.key.arn})

    def grant(self) -> iam.Statement:
        """The statement a role needs to use SSE-KMS objects and the encrypted topic."""
        return iam.allow(DATA_ACTIONS, [self.key.arn], sid="UseStackDataKey")
