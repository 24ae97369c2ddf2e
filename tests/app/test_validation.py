"""The shared columnar validator: each Model Monitor class, both policies, records and columns."""

from __future__ import annotations

import numpy as np
import pytest

from model_package import FeatureSpec
from model_package.validation import KINDS, SchemaValidator

FEATURES = (
    FeatureSpec(name="score", dtype="float", nullable=True, minimum=0.0, maximum=1.0),
    FeatureSpec(name="rating", dtype="int", nullable=False, minimum=1, maximum=5),
    FeatureSpec(name="campaign", dtype="string", nullable=True, categories=("a", "b")),
    FeatureSpec(name="note", dtype="string", nullable=False),
)
GOOD = {"score": 0.5, "rating": 3, "campaign": "a", "note": "x"}


def _kinds(result) -> list[tuple[str, str, int | None]]:
    return [(v.feature, v.kind, v.row) for v in result.errors]


def test_valid_records_coerce_to_the_predictor_contract() -> None:
    result = SchemaValidator(FEATURES).validate_records([GOOD, {**GOOD, "score": None, "campaign": None}])
    assert result.ok and result.row_ok.tolist() == [True, True]
    assert result.columns["score"].dtype == np.float64 and np.isnan(result.columns["score"][1])
    assert result.columns["rating"].tolist() == [3.0, 3.0]
    assert result.columns["campaign"].dtype == object and result.columns["campaign"].tolist() == ["a", None]


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({**GOOD, "rating": "3"}, [("rating", "data_type", 0)]),
        ({**GOOD, "rating": 2.5}, [("rating", "data_type", 0)]),
        ({**GOOD, "rating": True}, [("rating", "data_type", 0)]),
        ({**GOOD, "score": 10**400}, [("score", "data_type", 0)]),
        ({**GOOD, "note": 5}, [("note", "data_type", 0)]),
        ({**GOOD, "rating": None}, [("rating", "null_value", 0)]),
        ({**GOOD, "note": None}, [("note", "null_value", 0)]),
        ({k: v for k, v in GOOD.items() if k != "rating"}, [("rating", "missing_feature", 0)]),
        ({**GOOD, "colour": "red"}, [("colour", "extra_feature", 0)]),
        ({**GOOD, "campaign": "zzz"}, [("campaign", "unknown_category", 0)]),
    ],
)
def test_each_kind_is_reported_once_with_feature_and_row(record: dict, expected: list) -> None:
    result = SchemaValidator(FEATURES).validate_records([record])
    assert _kinds(result) == expected
    assert result.row_ok.tolist() == [False]
    assert result.errors[0].expected  # says what is allowed


def test_out_of_range_warns_or_rejects_by_policy() -> None:
    records = [GOOD, {**GOOD, "score": 1.5}, {**GOOD, "rating": 0}]
    warned = SchemaValidator(FEATURES).validate_records(records)
    assert warned.ok and [(w.feature, w.row) for w in warned.warnings] == [("score", 1), ("rating", 2)]
    rejected = SchemaValidator(FEATURES).with_out_of_range("reject").validate_records(records)
    assert rejected.row_ok.tolist() == [True, False, False]
    assert {v.kind for v in rejected.errors} == {"out_of_range"}
    assert "[0, 1]" in rejected.errors[0].expected
    with pytest.raises(ValueError, match="out_of_range must be one of"):
        SchemaValidator(FEATURES, out_of_range="ignore")  # type: ignore[arg-type]


def test_columns_path_for_batch_chunks() -> None:
    n = 10_000
    columns = {
        "score": np.linspace(0, 1.2, n),
        "rating": np.full(n, 3, dtype=np.int64),
        "campaign": np.array(["a", "b", None, "c"] * (n // 4), dtype=object),
        "extra": np.zeros(n),
    }
    result = SchemaValidator(FEATURES, max_reported=5).validate_columns(columns)
    counts = result.counts()
    assert counts["missing_feature"] == 1 and counts["extra_feature"] == 1  # whole-column problems, row None
    assert counts["unknown_category"] == n // 4
    assert counts["out_of_range"] == int((columns["score"] > 1).sum())
    assert len(result.errors) == 5 and result.error_count == n // 4 + 2  # capped list, true totals
    assert not result.row_ok.any()  # a missing column rejects every row
    assert result.columns["note"].tolist() == [None] * n


def test_columns_of_other_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="rows"):
        SchemaValidator(FEATURES).validate_columns({"score": np.zeros(3), "rating": np.zeros(4)})


def test_kinds_are_model_monitors() -> None:
    assert KINDS == ("data_type", "null_value", "missing_feature", "extra_feature", "unknown_category", "out_of_range")


def test_long_values_are_cut_in_reports() -> None:
    result = SchemaValidator(FEATURES).validate_records([{**GOOD, "campaign": "q" * 10_000}])
    assert len(result.errors[0].value) <= 80


def test_fast_path_gives_the_same_columns_as_the_detailed_path() -> None:
    records = [GOOD, {**GOOD, "score": None, "campaign": None, "rating": 5}, {**GOOD, "score": 1, "note": "y"}]
    validator = SchemaValidator(FEATURES)
    fast = validator.validate_records(records)
    detailed = validator.validate_columns({f.name: [r[f.name] for r in records] for f in FEATURES})
    assert fast.ok and detailed.ok
    for name in fast.columns:
        assert fast.columns[name].dtype == detailed.columns[name].dtype
        assert np.array_equal(fast.columns[name], detailed.columns[name], equal_nan=fast.columns[name].dtype != object)
