"""``--diff OTHER``: what differs between two stacks' plans, resource by resource and input by input.

Resources are matched by (type, logical name). Values that only restate the stack's own name (the
``stack``/``environment`` tags, ``/ml-delivery/<stack>/`` paths, ``ml-delivery-<stack>-`` families) are
normalised first so the diff shows real differences: counts, sizes, protection, retention.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from tools.plan.offline import OfflineRun, RegisteredResource

Key = tuple[str, str]


@dataclass(frozen=True)
class Change:
    path: str
    left: Any
    right: Any


@dataclass(frozen=True)
class StackDiff:
    left: str
    right: str
    only_left: list[Key]
    only_right: list[Key]
    changed: dict[Key, list[Change]]
    outputs: list[Change]

    @property
    def is_empty(self) -> bool:
        return not (self.only_left or self.only_right or self.changed)


def _normalise(value: Any, stack: str) -> Any:
    if isinstance(value, dict):
        out = {k: _normalise(v, stack) for k, v in value.items()}
        for tag in ("stack", "environment"):
            if out.get(tag) == stack:
                out[tag] = "<stack>"
        return out
    if isinstance(value, list):
        return [_normalise(v, stack) for v in value]
    if isinstance(value, str):
        value = re.sub(rf"(/ml-delivery/|ml-delivery-|alias/ml-delivery-){re.escape(stack)}\b", r"\1<stack>", value)
        return value.replace(f"ml-delivery {stack}:", "ml-delivery <stack>:")
    return value


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, inner in value.items():
            flat.update(_flatten(inner, f"{prefix}.{key}" if prefix else key))
        return flat or {prefix: {}}
    if isinstance(value, str) and value.startswith(("{", "[")):
        try:  # JSON documents (policies, container definitions) diff by field, not as one long string
            return _flatten(json.loads(value), prefix)
        except json.JSONDecodeError:
            pass
    if isinstance(value, list):
        flat = {}
        for index, inner in enumerate(value):
            flat.update(_flatten(inner, f"{prefix}[{index}]"))
        return flat or {prefix: []}
    return {prefix: value}


def _changes(left: RegisteredResource, right: RegisteredResource, left_stack: str, right_stack: str) -> list[Change]:
    a = _flatten(_normalise(left.inputs, left_stack))
    b = _flatten(_normalise(right.inputs, right_stack))
    changes = [Change(path, a.get(path), b.get(path)) for path in sorted(set(a) | set(b)) if a.get(path) != b.get(path)]
    if left.protect != right.protect:
        changes.append(Change("(protect)", left.protect, right.protect))
    return changes


def diff(left: OfflineRun, right: OfflineRun) -> StackDiff:
    lefts = {(r.type, r.name): r for r in left.resources if r.type != "pulumi:pulumi:Stack"}
    rights = {(r.type, r.name): r for r in right.resources if r.type != "pulumi:pulumi:Stack"}
    changed = {}
    for key in sorted(set(lefts) & set(rights)):
        changes = _changes(lefts[key], rights[key], left.stack, right.stack)
        if changes:
            changed[key] = changes
    outputs = [
        Change(k, left.outputs.get(k), right.outputs.get(k))
        for k in sorted(set(left.outputs) | set(right.outputs))
        if _normalise(left.outputs.get(k), left.stack) != _normalise(right.outputs.get(k), right.stack)
    ]
    return StackDiff(left.stack, right.stack, sorted(set(lefts) - set(rights)), sorted(set(rights) - set(lefts)),
                     changed, outputs)  # fmt: skip


def _show(value: Any) -> str:
    return "(absent)" if value is None else json.dumps(value)


def render(result: StackDiff) -> str:
    lines = [f"Stack {result.left} → stack {result.right}: {len(result.only_left)} only in {result.left}, "
             f"{len(result.only_right)} only in {result.right}, {len(result.changed)} changed"]  # fmt: skip
    for type_, name in result.only_left:
        lines.append(f"- {type_}  {name}  (only in {result.left})")
    for type_, name in result.only_right:
        lines.append(f"+ {type_}  {name}  (only in {result.right})")
    for (type_, name), changes in result.changed.items():
        lines.append(f"~ {type_}  {name}")
        lines.extend(f"      {c.path}: {_show(c.left)} → {_show(c.right)}" for c in changes)
    if result.outputs:
        lines.append("Outputs:")
        lines.extend(f"~     {c.path}: {_show(c.left)} → {_show(c.right)}" for c in result.outputs)
    return "\n".join(lines)
