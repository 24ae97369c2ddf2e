"""Values passed between components: the account facts and the platform every component builds on."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi_aws as aws

from infra.foundation.encryption import DataKey
from infra.foundation.hardening import AccessLogs, EventDelivery
from infra.foundation.network import Network
from infra.foundation.storage import Buckets
from infra.observability.alerts import Alerts
from infra.pipeline.registry import Registry
from infra.settings import StackSettings


@dataclass(frozen=True)
class Account:
    """Facts about the target account, from the provider's invokes (mocked offline)."""

    account_id: str
    region: str
    partition: str
    availability_zones: list[str]

    @classmethod
    def lookup(cls) -> Account:
        return cls(
            account_id=aws.get_caller_identity().account_id,
            region=aws.get_region().region,
            partition=aws.get_partition().partition,
            # Only the Region's own Availability Zones: an opted-in Local or Wavelength Zone must never be
            # picked for a subnet (EC2 DescribeAvailabilityZones filters "opt-in-status", "zone-type").
            availability_zones=list(
                aws.get_availability_zones(
                    state="available",
                    filters=[
                        aws.GetAvailabilityZonesFilterArgs(name="opt-in-status", values=["opt-in-not-required"]),
                        aws.GetAvailabilityZonesFilterArgs(name="zone-type", values=["availability-zone"]),
                    ],
                ).names
            ),
        )


@dataclass(frozen=True)
class Platform:
    """What every later component builds on; passed around instead of a dozen loose values."""

    settings: StackSettings
    account: Account
    data_key: DataKey
    network: Network
    buckets: Buckets
    registry: Registry
    alerts: Alerts
    sentry_secret: aws.secretsmanager.Secret | None
    capture_key_secret: aws.secretsmanager.Secret | None  # capture privacy HMAC key (None: no hash policy)
    access_logs: AccessLogs
    event_delivery: EventDelivery
