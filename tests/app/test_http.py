"""The app as production runs it: a real uvicorn process on a free port, answering over HTTP."""

from __future__ import annotations

import asyncio
import copy
import json

import httpx
import pytest

from tests.app.conftest import AppProcess, TrainedPackage, post_json


@pytest.fixture(scope="module")
def server(trained: TrainedPackage, tmp_path_factory: pytest.TempPathFactory):
    """One app for the read-only tests of this module (capture to the default local SQLite)."""
    base = tmp_path_factory.mktemp("http")
    app = AppProcess(
        model=trained.path,
        env={"SPOOL_DIR": str(base / "spool"), "SERVICE_NAME": "local", "MAX_BODY_BYTES": "65536"},
        log_path=base / "app.log",
    ).start()
    yield app
    app.terminate()


def test_single_record_gets_prediction_probability_version_and_uid(server: AppProcess, trained: TrainedPackage) -> None:
    status, headers, body = post_json(server.url, trained.records[0])
    assert status == 200, body
    assert body["model_version"] == 7 and body["model_name"] == "churn"
    [item] = body["predictions"]
    assert item["prediction"] in (0, 1)
    assert 0.0 <= item["probability"] <= 1.0
    assert len(item["uid"]) == 32 and int(item["uid"], 16) >= 0
    assert headers["x-request-id"] == item["uid"]


def test_list_gets_one_answer_per_record_in_order(server: AppProcess, trained: TrainedPackage) -> None:
    records = trained.records[:25]
    status, _, body = post_json(server.url, records)
    assert status == 200, body
    assert len(body["predictions"]) == 25
    assert len({p["uid"] for p in body["predictions"]}) == 25
    # Same record alone gives the same probability: batching does not mix rows up.
    for index in (0, 13, 24):
        _, _, alone = post_json(server.url, records[index])
        assert alone["predictions"][0]["probability"] == pytest.approx(body["predictions"][index]["probability"])


def test_csv_request_is_scored_like_json(server: AppProcess, trained: TrainedPackage) -> None:
    records = trained.records[:3]
    names = list(trained.manifest.feature_names)
    lines = [",".join(names)] + [",".join("" if r[n] is None else str(r[n]) for n in names) for r in records]
    response = httpx.post(
        f"{server.url}/predict", content="\n".join(lines) + "\n", headers={"content-type": "text/csv"}
    )
    assert response.status_code == 200, response.text
    _, _, as_json = post_json(server.url, records)
    got = [p["probability"] for p in response.json()["predictions"]]
    assert got == pytest.approx([p["probability"] for p in as_json["predictions"]])
    as_csv = httpx.post(f"{server.url}/predict", json=records[0], headers={"accept": "text/csv"})
    assert as_csv.status_code == 200 and as_csv.text.startswith("uid,label,probability,prediction,model_version\n")


def _violation_cases(trained: TrainedPackage) -> list[tuple[str, str, dict]]:
    manifest = trained.manifest
    base = trained.records[0]
    numeric = next(f for f in manifest.features if f.is_numeric and f.maximum is not None)
    required = next(f for f in manifest.features if not f.nullable)
    categorical = next(f for f in manifest.features if f.categories)
    cases = []
    wrong_type = copy.deepcopy(base)
    wrong_type[numeric.name] = "seven"
    cases.append(("data_type", numeric.name, wrong_type))
    null = copy.deepcopy(base)
    null[required.name] = None
    cases.append(("null_value", required.name, null))
    missing = copy.deepcopy(base)
    del missing[required.name]
    cases.append(("missing_feature", required.name, missing))
    extra = {**copy.deepcopy(base), "favourite_colour": "teal"}
    cases.append(("extra_feature", "favourite_colour", extra))
    unknown = copy.deepcopy(base)
    unknown[categorical.name] = "NOT-A-CAMPAIGN"
    cases.append(("unknown_category", categorical.name, unknown))
    return cases


@pytest.mark.parametrize("kind", ["data_type", "null_value", "missing_feature", "extra_feature", "unknown_category"])
def test_each_violation_class_rejects_only_its_record_with_a_207(
    server: AppProcess, trained: TrainedPackage, kind: str
) -> None:
    """Issue #14 item 5: one bad record no longer fails the list; the valid one is scored (207)."""
    [(_, feature, record)] = [c for c in _violation_cases(trained) if c[0] == kind]
    status, _, body = post_json(server.url, [trained.records[1], record])
    assert status == 207, body
    assert {"feature": feature, "kind": kind} in [
        {"feature": v["feature"], "kind": v["kind"]} for v in body["violations"]
    ]
    assert all(v["row"] == 1 for v in body["violations"])  # rows count within this request
    assert all({"feature", "kind", "value", "expected"} <= set(v) for v in body["violations"])
    scored, rejected = body["predictions"]
    assert scored["uid"] and 0 <= scored["probability"] <= 1 and scored["label"] in (0, 1)
    assert rejected["uid"] is None and {e["kind"] for e in rejected["errors"]} == {kind}
    assert server.metric("app_violations_total", f'{{kind="{kind}",severity="error"}}') >= 1


@pytest.mark.parametrize("kind", ["data_type", "null_value", "missing_feature", "extra_feature", "unknown_category"])
def test_a_list_of_only_invalid_records_is_a_422(server: AppProcess, trained: TrainedPackage, kind: str) -> None:
    [(_, feature, record)] = [c for c in _violation_cases(trained) if c[0] == kind]
    status, _, body = post_json(server.url, [record, record])
    assert status == 422, body
    assert "predictions" not in body
    assert {(v["feature"], v["kind"], v["row"]) for v in body["violations"]} == {(feature, kind, 0), (feature, kind, 1)}


def test_out_of_range_warns_by_default(server: AppProcess, trained: TrainedPackage) -> None:
    spec = next(f for f in trained.manifest.features if f.is_numeric and f.maximum is not None)
    record = {**trained.records[0], spec.name: (int if spec.dtype == "int" else float)(spec.maximum + 1000)}
    status, _, body = post_json(server.url, record)
    assert status == 200, body
    assert [(w["feature"], w["kind"]) for w in body["warnings"]] == [(spec.name, "out_of_range")]


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b"[]", "application/json", 400),
        (b"[1, 2]", "application/json", 400),
        (b'{"a": NaN}', "application/json", 400),
        (b"\xff\xfe", "text/csv", 400),
        (b"a,b\n1", "text/csv", 400),
        (b"x=1", "application/x-www-form-urlencoded", 415),
    ],
)
def test_malformed_bodies_are_4xx_with_a_reason(
    server: AppProcess, content: bytes, content_type: str, status: int
) -> None:
    response = httpx.post(f"{server.url}/predict", content=content, headers={"content-type": content_type})
    assert response.status_code == status, response.text
    assert response.json()["error"]


def test_body_limit_is_413_and_accept_is_checked(server: AppProcess, trained: TrainedPackage) -> None:
    big = json.dumps(trained.records * 400)
    assert len(big) > 65536
    response = httpx.post(f"{server.url}/predict", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert "65536" in response.json()["error"]
    response = httpx.post(f"{server.url}/predict", json=trained.records[0], headers={"accept": "image/png"})
    assert response.status_code == 406


def test_health_ready_model_metrics_and_openapi(server: AppProcess, trained: TrainedPackage) -> None:
    assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}
    assert httpx.get(f"{server.url}/ready").json()["ready"] is True
    model = httpx.get(f"{server.url}/model").json()
    assert model["version"] == 7 and model["git_sha"] == "abc1234" and model["runtime"] == "onnx"
    assert model["trained_at"] == trained.manifest.created_at.isoformat()
    assert model["metrics"]["roc_auc"] == pytest.approx(trained.manifest.metrics.roc_auc)
    post_json(server.url, trained.records[0])
    assert server.metric("app_requests_total", '{status="200"}') >= 1
    spec = httpx.get(f"{server.url}/openapi.json").json()
    predict = spec["paths"]["/predict"]["post"]
    body_schema = predict["requestBody"]["content"]["application/json"]["schema"]
    assert set(body_schema["anyOf"][0]["required"]) == set(trained.manifest.feature_names)
    assert {"200", "400", "413", "415", "422"} <= set(predict["responses"])


def test_concurrent_requests_are_merged_into_batches(server: AppProcess, trained: TrainedPackage) -> None:
    before_batches = server.metric("app_predict_batches_total")
    before_requests = server.metric("app_requests_total", '{status="200"}')

    async def burst() -> list[int]:
        limits = httpx.Limits(max_connections=48)
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=120) as client:
            responses = await asyncio.gather(
                *(client.post("/predict", json=trained.records[i % 50]) for i in range(240))
            )
        return [r.status_code for r in responses]

    assert asyncio.run(burst()) == [200] * 240
    batches = server.metric("app_predict_batches_total") - before_batches
    served = server.metric("app_requests_total", '{status="200"}') - before_requests
    assert served == 240
    assert batches < served  # several requests shared a predict call
    assert server.metric("app_batch_requests_bucket", '{le="1.0"}') < server.metric("app_batch_requests_count")
