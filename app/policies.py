"""Serving policies per violation class (runtime settings): reject, or accept the record with a warning.

The validator (``model_package.validation``, shared with batch inference) is strict: an unknown category,
a key that is not a feature and a null where training had none each reject the record. Operators can
relax each class without a redeploy (``RuntimeSettings``):

- ``unknown_category``: ``reject`` | ``missing`` (the value is treated as a missing category; warning);
- ``extra_feature``: ``reject`` | ``ignore`` (the key is dropped before scoring; warning);
- ``unexpected_null``: ``reject`` | ``impute`` (the training median / most frequent category from the
  manifest baseline is used; warning). The baseline value is model-independent: a pipeline without
  an imputer of its own still sees a value it was trained on.

Why a second pass instead of a change to the validator: clean batches (the normal case) keep the
validator's fast path untouched; only a batch that has violations *and* a lenient policy pays for one
Python pass over its records (see :func:`relax`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from model_package import Manifest
from model_package.validation import SchemaValidator, ValidationResult, Violation

UNKNOWN_CATEGORY_POLICIES = ("reject", "missing")
EXTRA_FEATURE_POLICIES = ("reject", "ignore")
UNEXPECTED_NULL_POLICIES = ("reject", "impute")


def _is_null(value: Any) -> bool:
    return value is None or (type(value) is float and math.isnan(value))


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > 80:
        return value[:77] + "..."
    return value


@dataclass(frozen=True)
class PolicyContext:
    """What the relaxing pass needs, computed once per loaded model."""

    names: frozenset[str]
    categories: dict[str, frozenset[str]]
    non_nullable: tuple[str, ...]
    impute: dict[str, Any]  # feature -> value used for an unexpected null
    relaxed: SchemaValidator  # the same schema with every feature nullable

    @classmethod
    def for_manifest(cls, manifest: Manifest, max_reported: int) -> PolicyContext:
        impute: dict[str, Any] = {}
        baselines = {b.name: b for b in manifest.baseline}
        for spec in manifest.features:
            base = baselines.get(spec.name)
            value: float | str | None
            if spec.is_numeric:
                value = base.quantiles[len(base.quantiles) // 2] if base is not None and base.quantiles else None
                if value is not None and spec.dtype == "int":
                    value = round(value)
            else:
                fractions = base.category_fractions if base is not None else {}
                value = max(fractions, key=fractions.__getitem__) if fractions else None
            impute[spec.name] = value
        relaxed = [spec.model_copy(update={"nullable": True}) for spec in manifest.features]
        return cls(
            names=frozenset(manifest.feature_names),
            categories={s.name: frozenset(s.categories) for s in manifest.features if s.categories is not None},
            non_nullable=tuple(s.name for s in manifest.features if not s.nullable),
            impute=impute,
            relaxed=SchemaValidator(relaxed, max_reported=max_reported),
        )


def lenient(settings: Any) -> bool:
    """True when any violation class is set to something other than ``reject``."""
    return bool(
        settings.unknown_category != "reject"
        or settings.extra_feature != "reject"
        or settings.unexpected_null != "reject"
    )


def relax(  # noqa: PLR0912 - one pass, one branch per policy and violation class
    records: Sequence[Mapping[str, Any]], context: PolicyContext, settings: Any
) -> tuple[list[dict[str, Any]], ValidationResult]:
    """Apply the policies to records that failed strict validation; returns the repaired records and the result.

    Rows whose violations are all covered by a lenient policy are scored and the violations come back as
    warnings; any other violation still rejects its row (errors), exactly as the strict validator reports.
    """
    ignore_extra = settings.extra_feature == "ignore"
    as_missing = settings.unknown_category == "missing"
    impute = settings.unexpected_null == "impute"
    names, categories = context.names, context.categories
    warnings: list[Violation] = []
    errors: list[Violation] = []
    rejected: list[int] = []
    repaired: list[dict[str, Any]] = []
    for row, record in enumerate(records):
        fixed = dict(record)
        if ignore_extra:
            for key in [k for k in fixed if k not in names]:
                warnings.append(
                    Violation(str(key), "extra_feature", None, "only the manifest's features (ignored)", row)
                )
                del fixed[key]
        if as_missing:
            for name, allowed in categories.items():
                value = fixed.get(name)
                if type(value) is str and value not in allowed:
                    warnings.append(
                        Violation(
                            name, "unknown_category", _short(value), "a training category (treated as missing)", row
                        )
                    )
                    fixed[name] = None
                    if name in context.non_nullable:
                        fixed[name] = _MISSING  # marked: not an unexpected null, the policy made it missing
        for name in context.non_nullable:
            if name not in fixed:
                continue  # absent: the validator reports missing_feature
            value = fixed[name]
            if value is _MISSING:
                fixed[name] = None
            elif _is_null(value):
                if impute and context.impute.get(name) is not None:
                    warnings.append(
                        Violation(name, "null_value", None, f"a non-null value (imputed {context.impute[name]!r})", row)
                    )
                    fixed[name] = context.impute[name]
                else:
                    errors.append(Violation(name, "null_value", None, "a non-null value", row))
                    rejected.append(row)
        repaired.append(fixed)
    result = context.relaxed.with_out_of_range(settings.out_of_range).validate_records(repaired)
    row_ok = result.row_ok.copy()
    if rejected:
        row_ok[np.array(rejected)] = False
    kind_counts = dict(result.kind_counts)
    for violation in (*errors, *warnings):
        kind_counts[violation.kind] = kind_counts.get(violation.kind, 0) + 1
    merged_errors = sorted([*errors, *result.errors], key=lambda v: -1 if v.row is None else v.row)
    return repaired, ValidationResult(
        columns=result.columns,
        row_ok=row_ok,
        errors=merged_errors,
        warnings=[*warnings, *result.warnings],
        error_count=result.error_count + len(errors),
        warning_count=result.warning_count + len(warnings),
        kind_counts=kind_counts,
    )


class _Missing:
    """Sentinel: a value the unknown-category policy turned into a missing category."""

    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()
