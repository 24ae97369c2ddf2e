"""Issue #14 item 5: serving policies per violation class, from the runtime settings.

Each class (unknown category, extra feature, null where training had none) is rejected by default and
accepted with a warning under its lenient policy; rows with other violations stay rejected, and the
answer of a partly invalid list scores the valid rows (207).
"""

from __future__ import annotations

import copy
import json

import pytest

from app.handlers import model_fn, output_fn, predict_fn
from app.runtime_settings import RuntimeSettings
from tests.app.conftest import TrainedPackage


@pytest.fixture(scope="module")
def model(trained: TrainedPackage):
    return model_fn(trained.path)


def _cases(trained: TrainedPackage) -> dict[str, tuple[str, str, dict]]:
    """kind -> (feature, lenient setting, record with that one violation)."""
    manifest = trained.manifest
    base = trained.records[0]
    categorical = next(f for f in manifest.features if f.categories)
    required = next(f for f in manifest.features if not f.nullable and f.is_numeric)
    unknown = {**copy.deepcopy(base), categorical.name: "NOT-A-CAMPAIGN"}
    extra = {**copy.deepcopy(base), "favourite_colour": "teal"}
    null = {**copy.deepcopy(base), required.name: None}
    return {
        "unknown_category": (categorical.name, '{"unknown_category": "missing"}', unknown),
        "extra_feature": ("favourite_colour", '{"extra_feature": "ignore"}', extra),
        "null_value": (required.name, '{"unexpected_null": "impute"}', null),
    }


def _with(model, settings: RuntimeSettings):
    model = copy.copy(model)
    model.settings = lambda: settings
    return model


@pytest.mark.parametrize("kind", ["unknown_category", "extra_feature", "null_value"])
def test_each_class_is_rejected_by_default(model, trained: TrainedPackage, kind: str) -> None:
    feature, _, record = _cases(trained)[kind]
    prediction = predict_fn([record], _with(model, RuntimeSettings()))
    assert prediction.status == 422
    assert [(v.feature, v.kind, v.row) for v in prediction.errors] == [(feature, kind, 0)]


@pytest.mark.parametrize("kind", ["unknown_category", "extra_feature", "null_value"])
def test_each_class_is_scored_with_a_warning_under_its_lenient_policy(
    model, trained: TrainedPackage, kind: str
) -> None:
    feature, setting, record = _cases(trained)[kind]
    settings = RuntimeSettings.model_validate(json.loads(setting))
    prediction = predict_fn([record, trained.records[1]], _with(model, settings))
    assert prediction.status == 200, prediction.errors
    assert [(v.feature, v.kind, v.row) for v in prediction.warnings] == [(feature, kind, 0)]
    body = json.loads(output_fn(prediction, "application/json")[0])
    assert [w["kind"] for w in body["warnings"]] == [kind]
    assert all(0 <= p["probability"] <= 1 for p in body["predictions"])


def test_policies_score_what_the_model_would_score_for_the_repaired_record(model, trained: TrainedPackage) -> None:
    """unknown -> missing scores like an explicit null category; extra -> ignored scores like the clean record;
    null -> impute scores like the record holding the baseline median."""
    cases = _cases(trained)
    lenient = RuntimeSettings(unknown_category="missing", extra_feature="ignore", unexpected_null="impute")
    relaxed = _with(model, lenient)
    base = trained.records[0]
    clean = predict_fn([base], relaxed).probabilities[0]
    assert predict_fn([cases["extra_feature"][2]], relaxed).probabilities[0] == pytest.approx(clean)
    feature = cases["null_value"][0]
    baseline = next(b for b in trained.manifest.baseline if b.name == feature)
    median = baseline.quantiles[len(baseline.quantiles) // 2]
    spec = next(f for f in trained.manifest.features if f.name == feature)
    imputed = {**base, feature: round(median) if spec.dtype == "int" else median}
    assert predict_fn([cases["null_value"][2]], relaxed).probabilities[0] == pytest.approx(
        predict_fn([imputed], relaxed).probabilities[0]
    )
    categorical = cases["unknown_category"][0]
    from model_package import open_package
    from model_package.runtime import MISSING_CATEGORY, load_predictor
    from model_package.validation import SchemaValidator

    package = open_package(trained.path)
    columns = (
        SchemaValidator([f.model_copy(update={"nullable": True}) for f in package.manifest.features])
        .validate_records([{**base, categorical: None}])
        .columns
    )
    expected = load_predictor(package).predict_proba(columns)[0]
    assert MISSING_CATEGORY == "" and predict_fn([cases["unknown_category"][2]], relaxed).probabilities[
        0
    ] == pytest.approx(expected)


def test_a_lenient_policy_does_not_excuse_other_violations(model, trained: TrainedPackage) -> None:
    """An unknown category under "missing" is a warning, but a wrong type in the same list still rejects its row."""
    cases = _cases(trained)
    numeric = next(f for f in trained.manifest.features if f.is_numeric)
    wrong = {**trained.records[2], numeric.name: "seven"}
    settings = RuntimeSettings(unknown_category="missing")
    prediction = predict_fn([cases["unknown_category"][2], wrong, trained.records[3]], _with(model, settings))
    assert prediction.status == 207
    assert prediction.row_ok == [True, False, True]
    assert [(v.kind, v.row) for v in prediction.errors] == [("data_type", 1)]
    assert [(v.kind, v.row) for v in prediction.warnings] == [("unknown_category", 0)]
    body = json.loads(output_fn(prediction, "application/json")[0])
    assert body["predictions"][1] == {"uid": None, "errors": [prediction.errors[0].to_dict()]}
    assert body["predictions"][0]["uid"] and body["predictions"][2]["uid"]
    # the null policy still rejects an unexpected null when only unknown categories are relaxed
    null = cases["null_value"][2]
    assert predict_fn([null], _with(model, settings)).status == 422


def test_partly_invalid_csv_answer_marks_the_rejected_rows(model, trained: TrainedPackage) -> None:
    cases = _cases(trained)
    prediction = predict_fn([trained.records[0], cases["unknown_category"][2]], _with(model, RuntimeSettings()))
    payload, kind = output_fn(prediction, "text/csv")
    lines = payload.decode().splitlines()
    assert kind == "text/csv" and lines[0].endswith(",model_version,error")
    assert lines[2].startswith(",") and lines[2].endswith("unknown_category")
    assert lines[1].endswith(",")  # scored row: empty error cell


def test_infra_defaults_are_the_app_defaults() -> None:
    from infra.service.model_service import RUNTIME_SETTINGS_DEFAULTS

    assert RuntimeSettings().model_dump(mode="json") == RUNTIME_SETTINGS_DEFAULTS
