"""The package: round trip, tamper detection, schema and ONNX-vs-estimator parity, verify's exit codes."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from jobs_common.reference import read_reference
from model_package.archive import (
    MANIFEST_NAME,
    ONNX_NAME,
    REFERENCE_NAME,
    REQUIRED_FILES,
    open_package,
    package_bytes,
    write_package,
)
from model_package.errors import IntegrityError, ManifestError, PackageError, ParityError, SchemaError
from model_package.runtime import load_predictor
from retrain.__main__ import main
from retrain.synthetic import generate_churn
from retrain.training import TrainingResult, fit_candidate
from retrain.verify import PARITY_TOLERANCE, verify_package


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _reseal(data: bytes, **replace: bytes) -> bytes:
    """Swap files and re-seal with correct sha256s: passes integrity, so the later checks must catch it."""
    package = open_package(data)
    files = {n: b for n, b in package.files.items() if n != MANIFEST_NAME}
    files.update(replace)
    return package_bytes(package.manifest, files)[1]


def test_round_trip_keeps_manifest_files_and_predictions(trained: TrainingResult, tmp_path: Path) -> None:
    path = tmp_path / "model.zip"
    sealed = write_package(
        path, trained.manifest, {n: b for n, b in open_package(trained.data).files.items() if n != MANIFEST_NAME}
    )
    reopened = open_package(path)
    assert reopened.manifest == sealed == trained.manifest
    assert set(reopened.files) == {MANIFEST_NAME, *REQUIRED_FILES}
    manifest = reopened.manifest
    assert manifest.name == "churn" and manifest.version == 1 and manifest.git_sha == "abc123"
    assert manifest.target == "churn" and "churn" not in manifest.feature_names
    assert manifest.training_data.time_column == "acquisition_date"
    assert manifest.training_data.rows == 2500
    assert manifest.feature("campaign_id").dtype == "string" and "C01" in manifest.feature("campaign_id").categories
    assert manifest.feature("star_rating").dtype == "int" and manifest.feature("star_rating").nullable
    assert manifest.feature("monthly_spend").minimum is not None
    assert 0.7 < manifest.metrics.roc_auc <= 1 and manifest.metrics.lift > 1.2
    assert {b.name for b in manifest.baseline} == set(manifest.feature_names)
    assert len(manifest.baseline_for("tenure_months").quantiles) == 101
    assert abs(sum(manifest.baseline_for("campaign_id").category_fractions.values()) - 1) < 1e-9
    assert manifest.libraries["scikit-learn"] and manifest.libraries["skl2onnx"]
    assert b"scikit-learn==" in reopened.read("requirements.txt")
    # The directory form (what the app image bakes in) is the same package.
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(path) as archive:
        archive.extractall(unpacked)
    assert open_package(unpacked).sha256 == reopened.sha256
    columns, _ = read_reference(reopened)
    np.testing.assert_allclose(
        load_predictor(open_package(unpacked)).predict_proba(columns), load_predictor(reopened).predict_proba(columns)
    )


def test_training_is_deterministic(churn_frame, trained: TrainingResult) -> None:
    again = fit_candidate(
        churn_frame, "churn", name="churn", version=1, git_sha="abc123", created_at=trained.manifest.created_at
    )
    assert again.manifest.files == trained.manifest.files
    assert again.manifest.metrics == trained.manifest.metrics


def test_holdout_is_the_latest_fifth_of_time(churn_frame, trained: TrainingResult) -> None:
    dates = churn_frame["acquisition_date"].to_numpy()
    assert min(dates[trained.split.holdout]) >= max(dates[trained.split.train])
    assert 0.15 < len(trained.split.holdout) / len(churn_frame) < 0.25


@pytest.mark.parametrize("member", [ONNX_NAME, "model.skops", "requirements.txt", REFERENCE_NAME])
def test_a_changed_byte_in_any_file_fails_verify(package_zip: bytes, member: str) -> None:
    members = _members(package_zip)
    data = bytearray(members[member])
    data[len(data) // 2] ^= 0x01
    members[member] = bytes(data)
    with pytest.raises(IntegrityError, match=member):
        verify_package(_zip(members))


def test_a_changed_byte_in_the_manifest_fails_verify(package_zip: bytes) -> None:
    members = _members(package_zip)
    manifest = open_package(package_zip).manifest
    expected = open_package(package_zip).sha256
    # A change that still parses (the version) is caught by the pinned manifest digest ...
    members[MANIFEST_NAME] = members[MANIFEST_NAME].replace(b'"version": 1,', b'"version": 7,', 1)
    assert open_package(_zip(members)).manifest.version == 7 != manifest.version
    with pytest.raises(IntegrityError, match="manifest sha256"):
        verify_package(_zip(members), expect_sha256=expected)
    # ... and one that breaks the JSON by the manifest parser.
    members[MANIFEST_NAME] = _members(package_zip)[MANIFEST_NAME].rstrip()[:-1]  # the closing brace
    with pytest.raises(ManifestError):
        verify_package(_zip(members))


def test_parity_holds_and_is_checked(package_zip: bytes) -> None:
    result = verify_package(package_zip)
    _, reference_target = read_reference(open_package(package_zip))
    # Parity covers the whole reference sample stored in the package, not a few rows of it.
    assert result.parity_rows == len(reference_target) >= 500
    assert result.max_abs_diff <= PARITY_TOLERANCE
    # An ONNX graph from another model, sealed with valid sha256s, must fail parity, not integrity.
    other = fit_candidate(generate_churn(800, seed=9, concept=-1.0), "churn", name="churn")
    swapped = _reseal(package_zip, **{ONNX_NAME: open_package(other.data).read(ONNX_NAME)})
    with pytest.raises(ParityError, match="disagree"):
        verify_package(swapped)


def test_schema_mismatch_between_manifest_and_onnx_is_a_schema_error(package_zip: bytes) -> None:
    package = open_package(package_zip)
    manifest = package.manifest
    features = tuple(f for f in manifest.features if f.name != "logins_30d")
    thinner = manifest.model_copy(
        update={"features": features, "baseline": tuple(b for b in manifest.baseline if b.name != "logins_30d")}
    )
    files = {n: b for n, b in package.files.items() if n != MANIFEST_NAME}
    _, data = package_bytes(thinner, files)
    with pytest.raises(SchemaError, match="logins_30d"):
        verify_package(data)


def test_predictor_runtimes_agree_and_handle_nulls(package_zip: bytes) -> None:
    package = open_package(package_zip)
    columns = {
        "tenure_months": np.array([3.0, np.nan, 40.0]),
        "monthly_spend": np.array([80.0, 60.0, np.nan]),
        "satisfaction_score": np.array([20.0, 70.0, 90.0]),
        "engagement_score": np.array([10.0, 50.0, 80.0]),
        "star_rating": np.array([1.0, np.nan, 5.0]),
        "logins_30d": np.array([0.0, 8.0, 20.0]),
        "support_tickets_90d": np.array([4.0, 1.0, 0.0]),
        "campaign_id": np.array(["C05", None, "NEVER-SEEN"], dtype=object),
    }
    onnx = load_predictor(package)
    skops = load_predictor(package, runtime="skops")
    p_onnx, p_skops = onnx.predict_proba(columns), skops.predict_proba(columns)
    assert onnx.name == "onnx" and skops.name == "skops"
    assert p_onnx.dtype == np.float64 and p_onnx.shape == (3,)
    np.testing.assert_allclose(p_onnx, p_skops, atol=PARITY_TOLERANCE)
    assert p_onnx[0] > p_onnx[2]  # unhappy, inactive, many tickets churns more than a loyal fan
    with pytest.raises(PackageError, match="campaign_id"):
        onnx.predict_proba({k: v for k, v in columns.items() if k != "campaign_id"})


def test_pickle_runtime_needs_explicit_opt_in(package_zip: bytes) -> None:
    with pytest.raises(PackageError, match="ALLOW_PICKLE=1"):
        load_predictor(open_package(package_zip), runtime="pickle")
    with pytest.raises(PackageError, match=r"model\.joblib"):
        load_predictor(open_package(package_zip), runtime="pickle", allow_pickle=True)


def test_runtime_imports_neither_sklearn_nor_pandas() -> None:
    code = (
        "import sys, model_package.runtime\n"
        "bad = [m for m in ('sklearn', 'pandas', 'skops', 'joblib', 'pickle') if m in sys.modules and m != 'pickle']\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


def test_verify_cli_exit_codes(package_zip: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.zip"
    good.write_bytes(package_zip)
    assert main(["verify", str(good)]) == 0
    assert "OK churn v1" in capsys.readouterr().out

    not_zip = tmp_path / "not.zip"
    not_zip.write_bytes(b"plain text")
    members = _members(package_zip)
    bad_json = tmp_path / "bad-json.zip"
    bad_json.write_bytes(_zip({**members, MANIFEST_NAME: b"not json"}))
    flipped = dict(members)
    flipped[ONNX_NAME] = flipped[ONNX_NAME][:-1] + bytes([flipped[ONNX_NAME][-1] ^ 1])
    tampered = tmp_path / "tampered.zip"
    tampered.write_bytes(_zip(flipped))
    manifest = json.loads(members[MANIFEST_NAME])
    manifest["features"] = []
    no_schema = tmp_path / "no-schema.zip"
    no_schema.write_bytes(_zip({**members, MANIFEST_NAME: json.dumps(manifest).encode()}))
    other = fit_candidate(generate_churn(800, seed=9, concept=-1.0), "churn", name="churn")
    parity = tmp_path / "parity.zip"
    parity.write_bytes(_reseal(package_zip, **{ONNX_NAME: open_package(other.data).read(ONNX_NAME)}))

    codes = {
        name: main(["verify", str(path)])
        for name, path in [
            ("not-zip", not_zip),
            ("bad-json", bad_json),
            ("tampered", tampered),
            ("no-schema", no_schema),
            ("parity", parity),
        ]
    }
    assert codes == {"not-zip": 2, "bad-json": 3, "tampered": 4, "no-schema": 5, "parity": 6}
    assert main(["verify", str(good), "--expect-sha256", "0" * 64]) == 4
    # The real entry point returns the same status to the shell; a usage error is 64, not argparse's 2.
    assert subprocess.run([sys.executable, "-m", "retrain", "verify", str(tampered)], check=False).returncode == 4
    assert (
        subprocess.run([sys.executable, "-m", "retrain", "verify"], check=False, capture_output=True).returncode == 64
    )
