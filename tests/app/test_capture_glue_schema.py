"""Issue #14 gap: the Glue/Athena capture table must hold every task's capture record, not only binary.

The records are the app's own (``predict_fn`` answers -> ``capture_records``) for a binary, a multiclass
and a regression package trained with the repo's training code. The declared Glue columns are parsed
here, independently of how infra derives them, and each record is checked the way the OpenX JSON SerDe
reads it: a JSON key with no declared column or struct field is silently dropped (so it must not exist),
a declared field the record lacks reads as NULL (allowed), and each value must fit its declared type.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from infra.observability.observability import CAPTURE_COLUMNS
from tests.app.conftest import TaskPackage, captured_by_the_app

HiveType = tuple[str, Any]  # ("string"|"int"|"double", None) | ("map", value type) | ("struct", {name: type})


def _split_top(text: str) -> list[str]:
    """Split ``a:int,b:map<string,double>`` at commas outside angle brackets."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"<": 1, ">": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def parse_hive_type(text: str) -> HiveType:
    """A Hive DDL type string (Athena User Guide, "Data types in Amazon Athena") as a small tree."""
    text = text.strip()
    if text in {"string", "int", "bigint", "double", "boolean"}:
        return (text, None)
    if text.startswith("map<") and text.endswith(">"):
        key, value = _split_top(text[4:-1])
        assert key.strip() == "string", f"map keys must be string in JSON: {text}"
        return ("map", parse_hive_type(value))
    if text.startswith("struct<") and text.endswith(">"):
        fields = {}
        for part in _split_top(text[7:-1]):
            name, _, kind = part.partition(":")
            fields[name.strip()] = parse_hive_type(kind)
        return ("struct", fields)
    raise AssertionError(f"unknown Hive type {text!r}")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# What JSON value each primitive Hive type reads intact. The OpenX SerDe reads a JSON primitive into a
# string column as its text, so a string column takes numbers too.
_PRIMITIVES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "string": ("a string", lambda v: isinstance(v, str) or _number(v)),
    "int": ("an int", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "bigint": ("a bigint", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "double": ("a double", _number),
    "boolean": ("a boolean", lambda v: isinstance(v, bool)),
}


def violations(value: Any, declared: HiveType, where: str) -> list[str]:
    """Why ``value`` (parsed JSON) would not read back intact through the declared type."""
    kind, inner = declared
    if value is None:
        return []
    if kind in _PRIMITIVES:
        what, fits = _PRIMITIVES[kind]
        return [] if fits(value) else [f"{where}: {value!r} is not {what}"]
    if not isinstance(value, dict):
        return [f"{where}: {value!r} is not an object ({kind})"]
    if kind == "map":
        return [problem for key, item in value.items() for problem in violations(item, inner, f"{where}[{key}]")]
    found = []
    for key, item in value.items():
        if key not in inner:
            found.append(f"{where}.{key}: not declared, the SerDe drops it")
        else:
            found += violations(item, inner[key], f"{where}.{key}")
    return found


def test_every_task_capture_record_fits_the_declared_glue_schema(task_package: TaskPackage) -> None:
    captured = captured_by_the_app(task_package, 20, "prod")
    assert captured, "the app captured nothing to check"
    table = ("struct", {name: parse_hive_type(kind) for name, kind in CAPTURE_COLUMNS})
    for record in captured:
        as_written = json.loads(json.dumps(record))  # what the sinks write: JSON lines
        problems = violations(as_written, table, task_package.task)
        assert not problems, f"{task_package.task} capture record does not fit the Glue table: {problems}"


def test_the_schema_check_catches_a_record_that_does_not_fit() -> None:
    """The checker itself can fail: an undeclared field, a wrong type, a map value of the wrong type."""
    declared = parse_hive_type("struct<a:int,m:map<string,double>>")
    assert violations({"a": 1, "m": {"x": 0.5}}, declared, "r") == []
    assert violations({"a": 1, "b": 2}, declared, "r") == ["r.b: not declared, the SerDe drops it"]
    assert violations({"a": "one"}, declared, "r") == ["r.a: 'one' is not an int"]
    assert violations({"m": {"x": "high"}}, declared, "r") == ["r.m[x]: 'high' is not a double"]
