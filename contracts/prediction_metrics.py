"""The prediction-distribution metric the app publishes and the prod canary's rollback alarm reads.

The app writes CloudWatch embedded-metric-format (EMF) lines on stdout (awslogs driver -> CloudWatch Logs,
which extracts the metric; CloudWatch User Guide, "Specification: Embedded metric format"): once a minute
per worker, a record

    {"_aws": {"Timestamp": <ms>, "CloudWatchMetrics": [{"Namespace": NAMESPACE, "Dimensions": [[SERVICE_DIMENSION]],
     "Metrics": [{"Name": SCORE_SHIFT_METRIC}, {"Name": SCORED_METRIC, "Unit": "Count"}]}]},
     SERVICE_DIMENSION: <service name>, MODEL_VERSION_PROPERTY: <manifest version>,
     SCORE_SHIFT_METRIC: <shift of the minute's predictions from the package's baseline>,
     SCORED_METRIC: <records scored in the minute>}

ModelVersion is a property, not a dimension, so one alarm per service covers every release; the alarm's
Maximum over tasks catches a canary task undiluted. docs/pipeline.md "Canary and rollback" says how the
shift is computed for each task type.
"""

from __future__ import annotations

from typing import Final

NAMESPACE: Final = "ml-delivery/Predictions"
SERVICE_DIMENSION: Final = "Service"
MODEL_VERSION_PROPERTY: Final = "ModelVersion"
SCORE_SHIFT_METRIC: Final = "ScoreShift"
SCORED_METRIC: Final = "Scored"
METRICS: Final = (SCORE_SHIFT_METRIC, SCORED_METRIC)
PERIOD_SECONDS: Final = 60
# The environment variable that names the service in the EMF lines (set by infra on the task definition).
SERVICE_NAME_ENV: Final = "PREDICTION_METRICS_SERVICE"
