"""The capture record (contract 3): one JSON object per scored prediction, ``uid`` is the dedup key.

Written by the app (``app/capture/record.py`` builds it, ``app/capture/sinks.py`` stores it), read by the
drift and summary jobs (``monitor/``) and queried in Athena (``infra/observability/observability.py`` declares the Glue
tables). Every one of them takes the field names, the per-task ``output`` keys, the SQL columns and the
Glue columns from here, so a new output key is added once and every reader and table follows.

Fields: ``uid``, ``time`` (ISO 8601 UTC, the answer time), ``service``, ``model_name``, ``model_version``,
``input`` (the record as sent), ``output`` (the answer in the user's labels, per task, the shapes of
``model_package.runtime.Predictions.record`` plus the binary ``prediction``), ``latency_ms``, and ``ids``
(the manifest's id columns found in the record; only present when the model has id columns; the SQL table's
``ids`` column is NULL then). Rejected
records are not captured: they have no output.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

TaskType = Literal["binary", "multiclass", "regression"]

UID: Final = "uid"
TIME: Final = "time"
SERVICE: Final = "service"
MODEL_NAME: Final = "model_name"
MODEL_VERSION: Final = "model_version"
INPUT: Final = "input"
OUTPUT: Final = "output"
LATENCY_MS: Final = "latency_ms"
IDS: Final = "ids"

# ``output`` keys.
LABEL: Final = "label"  # the user's label (text or integer), binary and multiclass
PROBABILITY: Final = "probability"  # binary: P(positive label)
PREDICTION: Final = "prediction"  # binary: 1 when ``label`` is the positive label (format 1)
PROBABILITIES: Final = "probabilities"  # multiclass: {str(label): p}
VALUE: Final = "value"  # regression

# The answer keys per task inside ``output``.
OUTPUT_KEYS: Final[Mapping[TaskType, tuple[str, ...]]] = {
    "binary": (LABEL, PROBABILITY, PREDICTION),
    "multiclass": (LABEL, PROBABILITIES),
    "regression": (VALUE,),
}

# Hive DDL types of every output key, as the Glue/Athena table reads them with the OpenX JSON SerDe.
# ``label`` is a string: a user's label is text or an integer, and the SerDe reads a JSON number into a
# string column as its text (the same holds for the ``input`` map's values). Athena User Guide, "Data types
# in Amazon Athena" (struct<name:type,...>, map<key,value>) and "OpenX JSON SerDe".
_OUTPUT_TYPES: Final[Mapping[str, str]] = {
    LABEL: "string",
    PROBABILITY: "double",
    PREDICTION: "int",
    PROBABILITIES: "map<string,double>",
    VALUE: "double",
}


def _output_glue_type() -> str:
    """One struct with every task's keys (first-seen order). A JSON key without a struct field is dropped by
    the SerDe, and a struct field the record lacks reads as NULL, so the union struct holds any task's
    answer: a binary row has NULL ``probabilities``/``value``, a regression row NULL everything but ``value``."""
    names = dict.fromkeys(key for keys in OUTPUT_KEYS.values() for key in keys)
    return "struct<" + ",".join(f"{name}:{_OUTPUT_TYPES[name]}" for name in names) + ">"


# Every field of the record with its Glue/Athena (Hive) type, in the record's order. ``time`` stays the
# ISO-8601 string the app writes (query it with from_iso8601_timestamp(time)); ``input`` and ``ids`` are
# maps because their keys are the model's columns, which change from model to model; ``model_version``
# is bigint because manifest versions are not capped at 2**31 (the SQL column is BIGINT for the same reason).
GLUE_COLUMNS: Final[tuple[tuple[str, str], ...]] = (
    (UID, "string"),
    (TIME, "string"),
    (SERVICE, "string"),
    (MODEL_NAME, "string"),
    (MODEL_VERSION, "bigint"),
    (INPUT, "map<string,string>"),
    (OUTPUT, _output_glue_type()),
    (LATENCY_MS, "double"),
    (IDS, "map<string,string>"),
)
FIELDS: Final[tuple[str, ...]] = tuple(name for name, _ in GLUE_COLUMNS)

# The SQL table ``prediction_capture``: the record's fields (``ids`` NULL when the model has no id columns)
# plus the binary answer flattened into two columns so a plain SQL query can average them (NULL for the
# other tasks).
SQL_BINARY_COLUMNS: Final[tuple[str, ...]] = (PREDICTION, PROBABILITY)
SQL_COLUMNS: Final[tuple[str, ...]] = FIELDS + SQL_BINARY_COLUMNS
# Columns holding JSON objects (PostgreSQL casts them with ``::json``).
SQL_JSON_COLUMNS: Final[tuple[str, ...]] = (INPUT, OUTPUT, IDS)


def output_task(outputs: list[dict[str, Any]]) -> TaskType:
    """The task of capture outputs, from their shape: no manifest is needed (binary when none says)."""
    for output in outputs:
        if VALUE in output:
            return "regression"
        if PROBABILITIES in output:
            return "multiclass"
        if PROBABILITY in output:
            return "binary"
    return "binary"


__all__ = [
    "FIELDS",
    "GLUE_COLUMNS",
    "IDS",
    "INPUT",
    "LABEL",
    "LATENCY_MS",
    "MODEL_NAME",
    "MODEL_VERSION",
    "OUTPUT",
    "OUTPUT_KEYS",
    "PREDICTION",
    "PROBABILITIES",
    "PROBABILITY",
    "SERVICE",
    "SQL_BINARY_COLUMNS",
    "SQL_COLUMNS",
    "SQL_JSON_COLUMNS",
    "TIME",
    "UID",
    "VALUE",
    "TaskType",
    "output_task",
]
