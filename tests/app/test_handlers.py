"""The SageMaker handler names work on their own (as the toolkit would call them) and in the batcher."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from app.batching import MicroBatcher
from app.core import RequestError
from app.handlers import input_fn, model_fn, output_fn, predict_fn
from model_package import PackageError, extract_package, open_package
from tests.app.conftest import TrainedPackage


@pytest.fixture(scope="module")
def model(trained: TrainedPackage):
    return model_fn(trained.path)


def test_toolkit_sequence_on_an_unpacked_model_dir(trained: TrainedPackage, tmp_path: Path) -> None:
    directory = extract_package(open_package(trained.path), tmp_path / "model")
    model = model_fn(str(directory))
    assert model.predictor.name == "onnx"
    data = input_fn(json.dumps(trained.records[:3]), "application/json")
    prediction = predict_fn(data, model)
    body, content_type = output_fn(prediction, "application/json")
    answer = json.loads(body)
    assert content_type == "application/json" and len(answer["predictions"]) == 3
    assert answer["model_version"] == trained.manifest.version


def test_onnx_and_skops_runtimes_agree(trained: TrainedPackage, model) -> None:
    skops = model_fn(trained.path, runtime="skops")
    assert skops.predictor.name == "skops"
    records = trained.records[:50]
    onnx_scores = predict_fn(records, model).probabilities
    skops_scores = predict_fn(records, skops).probabilities
    assert onnx_scores == pytest.approx(skops_scores, abs=1e-5)


def test_pickle_runtime_needs_allow_pickle(trained: TrainedPackage, monkeypatch) -> None:
    monkeypatch.delenv("ALLOW_PICKLE", raising=False)
    with pytest.raises(PackageError, match="ALLOW_PICKLE=1"):
        model_fn(trained.path, runtime="pickle")


def test_csv_numbers_follow_the_schema(model) -> None:
    names = list(model.manifest.feature_names)
    header = ",".join(names)
    values = ",".join("007" if model.manifest.feature(n).dtype == "string" else "1" for n in names)
    [record] = input_fn(f"{header}\n{values}\n", "text/csv", model)
    for name in names:
        spec = model.manifest.feature(name)
        assert record[name] == ("007" if spec.dtype == "string" else 1)


def test_unsupported_content_type_is_415() -> None:
    with pytest.raises(RequestError) as info:
        input_fn(b"<xml/>", "application/xml")
    assert info.value.status == 415


def test_merged_batch_is_split_back_per_request(trained: TrainedPackage, model) -> None:
    calls: list[int] = []

    def run(records):
        calls.append(len(records))
        return predict_fn(records, model)

    bad = {**trained.records[2], "unexpected": 1}

    async def scenario():
        batcher = MicroBatcher(run, max_batch_size=64, max_wait_s=0.05)
        return await asyncio.gather(
            batcher.submit(trained.records[:2]), batcher.submit([bad]), batcher.submit(trained.records[3:6])
        )

    first, second, third = asyncio.run(scenario())
    assert calls == [6]  # one predict call for three requests
    assert first.ok and len(first.uids) == 2 and third.ok and len(third.uids) == 3
    assert not second.ok and [(v.feature, v.kind, v.row) for v in second.errors] == [("unexpected", "extra_feature", 0)]
    alone = predict_fn(trained.records[3:6], model).probabilities
    assert third.probabilities == pytest.approx(alone)


def test_batch_is_cut_at_max_size(trained: TrainedPackage, model) -> None:
    calls: list[int] = []

    def run(records):
        calls.append(len(records))
        return predict_fn(records, model)

    async def scenario():
        batcher = MicroBatcher(run, max_batch_size=4, max_wait_s=1.0)
        await asyncio.gather(*(batcher.submit([r]) for r in trained.records[:10]))

    asyncio.run(scenario())
    assert calls == [4, 4, 2]


def test_a_request_is_rejected_even_when_its_violations_fell_beyond_the_report_cap(
    trained: TrainedPackage, model
) -> None:
    from dataclasses import replace

    capped = replace(model, validator=type(model.validator)(model.manifest.features, max_reported=1))
    bad = {**trained.records[0], "unexpected": 1}
    merged = predict_fn([bad, trained.records[1], bad], capped)
    first, second, third = merged.slice(0, 1), merged.slice(1, 2), merged.slice(2, 3)
    assert not first.ok and first.errors
    assert second.ok
    assert not third.ok and not third.errors  # its violation was not kept, the row verdict was
    body, _ = output_fn(third, None)
    assert "violate the schema" in json.loads(body)["error"]


def test_uids_are_uuid7_and_sort_by_creation_time() -> None:
    """uid is the capture key: version 7 keeps the index append-only (time first, then random bits)."""
    import time
    import uuid

    from app.core import new_uids

    earlier = new_uids(50)
    time.sleep(0.002)
    later = new_uids(50)
    parsed = [uuid.UUID(hex=u) for u in earlier + later]
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in parsed)
    assert len(set(earlier + later)) == 100
    assert max(earlier) < min(later)
    stamp_ms = int(earlier[0][:12], 16)
    assert abs(stamp_ms - time.time() * 1000) < 60_000


def test_requests_arriving_on_following_loop_turns_join_the_batch(trained: TrainedPackage, model) -> None:
    """Arrivals one loop turn apart are merged while they keep coming; a turn with none cuts the batch."""
    calls: list[int] = []

    def run(records):
        calls.append(len(records))
        return predict_fn(records, model)

    async def scenario():
        batcher = MicroBatcher(run, max_batch_size=64, max_wait_s=1.0)
        started = asyncio.get_running_loop().time()

        async def arrive(turns: int, record: dict):
            for _ in range(turns):
                await asyncio.sleep(0)  # one event-loop turn
            return await batcher.submit([record])

        merged = await asyncio.gather(*(arrive(i, r) for i, r in enumerate(trained.records[:4])))
        alone = await batcher.submit([trained.records[5]])
        return merged, alone, asyncio.get_running_loop().time() - started

    merged, alone, elapsed = asyncio.run(scenario())
    assert calls == [4, 1]
    assert all(p.ok and len(p.uids) == 1 for p in merged) and alone.ok
    assert elapsed < 0.5  # the lone request was not held until max_wait (1 s)


def test_the_shim_reads_its_variables_through_the_app_contract(trained: TrainedPackage, monkeypatch) -> None:
    """The SageMaker shim passes neither runtime nor allow_pickle: both come from AppEnvironment, so a bad value
    is named instead of silently meaning "no" (``ALLOW_PICKLE=maybe`` used to read as off)."""
    from contracts.environment import EnvironmentConfigError

    monkeypatch.setenv("MODEL_RUNTIME", "skops")
    assert model_fn(trained.path).predictor.name == "skops"
    monkeypatch.setenv("MODEL_RUNTIME", "onnx")
    monkeypatch.setenv("ALLOW_PICKLE", "maybe")
    with pytest.raises(EnvironmentConfigError, match=r"^ALLOW_PICKLE='maybe': allowed 1/0 \(or true/false\)$"):
        model_fn(trained.path)
