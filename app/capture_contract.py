"""Names shared by the app's capture health metrics and the infra alarms on them (defined once, here).

The app writes these as CloudWatch embedded metric format (EMF) log lines to stdout; the ECS awslogs
driver ships them to CloudWatch Logs, which extracts the metrics without any metric filter
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html).
Standard library only: infra imports this module.
"""

from __future__ import annotations

EMF_NAMESPACE = "MlDelivery/Capture"
DIMENSIONS = ("Service", "Sink")
BACKLOG = "BacklogRecords"  # records not yet confirmed by the sink (memory + spool)
OLDEST_UNSENT = "OldestUnsentSeconds"  # age of the oldest record not yet confirmed by the sink
QUARANTINED = "QuarantinedRecords"  # records set aside since the last line (delta)
DROPPED = "DroppedRecords"  # records lost since the last line (delta): spool overflow, memory cap
SPOOL_WRITE_ERRORS = "SpoolWriteErrors"  # failed spool writes since the last line (delta)
UNHEALTHY = "CaptureUnhealthy"  # 1 when this sink has been failing longer than CAPTURE_UNHEALTHY_SECONDS
SINKS = ("s3", "sql")
EMF_PERIOD_SECONDS = 60  # one line per sink and worker per minute: the alarms' period
