"""The one alert path: every job's alert goes through :class:`AlertPublisher` to the one SNS topic.

Service alarms and pipeline events reach the same topic from CloudWatch and EventBridge (infra);
CloudWatch only notifies on state changes, so those do not repeat. Jobs can fire every run, so the
publisher suppresses an alert whose fingerprint was already sent within the window.
"""

from alerting.publisher import Alert, AlertPublisher, DedupStore, LocalDedupStore, S3DedupStore, Severity

__all__ = ["Alert", "AlertPublisher", "DedupStore", "LocalDedupStore", "S3DedupStore", "Severity"]
