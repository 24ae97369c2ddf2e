"""Fuzzing: nothing a client sends may produce a 5xx.

Two generators: schemathesis drives every operation from the published OpenAPI document (valid and
invalid bodies), and hypothesis throws arbitrary JSON and bytes at ``/predict``.
"""

from __future__ import annotations

import json

import httpx
import pytest
import schemathesis

# Imported here, at module level, not lazily by schemathesis deep inside a hypothesis run: Python 3.11.7's
# ast.parse (which pytest's assertion rewriting runs on plugin modules as they are imported) can fail with
# "SystemError: AST constructor recursion depth mismatch" when called that deep in the stack (a CPython
# 3.11 bug in the AST recursion guard); a CI run hit it once.
import schemathesis.specs.openapi.error_feedback
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.app.conftest import AppProcess, TrainedPackage


@pytest.fixture(scope="module")
def live(trained: TrainedPackage, tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("fuzz")
    app = AppProcess(
        model=trained.path,
        env={"SPOOL_DIR": str(base / "spool"), "MAX_BODY_BYTES": "32768"},
        log_path=base / "app.log",
    ).start()
    yield app
    assert app.terminate()
    assert "Traceback" not in app.log(), app.log()


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_openapi_fuzz_finds_no_server_error(live: AppProcess, mode: str) -> None:
    # Strategies per operation rather than schemathesis' pytest plugin (its lazy loader predates pytest 9).
    api = schemathesis.openapi.from_url(f"{live.url}/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert {op.path for op in operations} >= {"/predict", "/health", "/ready", "/model", "/metrics"}
    strategy = st.one_of(*(op.as_strategy(schemathesis.GenerationMode(mode)) for op in operations))
    seen: set[int] = set()

    @given(case=strategy)
    @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def call(case) -> None:
        response = case.call(base_url=live.url)
        seen.add(response.status_code)
        assert response.status_code < 500, (case.method, case.path, case.body, response.text)
        if case.path == "/predict" and response.status_code == 200:
            assert all(0 <= p["probability"] <= 1 for p in response.json()["predictions"])

    call()
    # The generator reached the model (positive) or the validator (negative), not only the parser.
    assert (200 in seen) if mode == "positive" else bool(seen & {400, 422}), seen


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20,
)


@given(
    body=st.one_of(_json.map(lambda v: json.dumps(v).encode()), st.binary(max_size=200)),
    content_type=st.sampled_from(["application/json", "text/csv", "application/json; charset=utf-8", "", "x/y"]),
)
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
def test_arbitrary_bodies_get_4xx_not_5xx(live: AppProcess, body: bytes, content_type: str) -> None:
    response = httpx.post(f"{live.url}/predict", content=body, headers={"content-type": content_type})
    assert response.status_code < 500, (body, content_type, response.text)
    assert response.headers["content-type"].startswith("application/json")


@given(
    mutation=st.dictionaries(
        st.sampled_from(["tenure_months", "monthly_spend", "campaign_id", "star_rating", "extra"]),
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
        max_size=3,
    )
)
@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
def test_near_valid_records_are_scored_or_rejected_with_violations(
    live: AppProcess, trained: TrainedPackage, mutation: dict
) -> None:
    record = {**trained.records[0], **mutation}
    try:
        payload = json.dumps([trained.records[1], record], allow_nan=False)
    except ValueError:
        payload = json.dumps([trained.records[1], record])  # NaN/Infinity literals: must be a 400
    response = httpx.post(f"{live.url}/predict", content=payload, headers={"content-type": "application/json"})
    # Record 0 is valid, so a violation of record 1 is a partial answer (207): record 0 scored, 1 rejected.
    assert response.status_code in (200, 207, 400), response.text
    if response.status_code == 207:
        body = response.json()
        assert all(v["row"] == 1 for v in body["violations"]) and body["violations"]
        scored, rejected = body["predictions"]
        assert scored["uid"] and rejected["uid"] is None and rejected["errors"]
