"""Package guards (issue #13): caps on bytes actually read, no symlinks or extra paths, finite numbers and
bounded depth in the manifest, and the app refusing whatever ``verify`` refuses."""

from __future__ import annotations

import io
import json
import struct
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from app.handlers import model_fn
from model_package import archive
from model_package.archive import MANIFEST_NAME, REFERENCE_NAME, extract_package, open_package, package_bytes
from model_package.errors import ManifestError, PackageError, SchemaError
from retrain.verify import verify_package


def _lying_zip(real_bytes: int, declared: int) -> bytes:
    """One deflated member of ``real_bytes`` zeros whose headers claim ``declared`` bytes (a zip bomb)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as out, out.open("model.onnx", "w") as member:
        chunk = b"\0" * (1 << 20)
        for _ in range(real_bytes // len(chunk)):
            member.write(chunk)
    data = bytearray(buffer.getvalue())
    local = data.find(b"PK\x03\x04")
    struct.pack_into("<I", data, local + 22, declared)  # local header: uncompressed size
    central = data.find(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, declared)  # central directory: uncompressed size
    return bytes(data)


def test_a_zip_member_that_lies_about_its_size_is_not_inflated_into_memory() -> None:
    bomb = _lying_zip(real_bytes=256 << 20, declared=1024)
    assert len(bomb) < 1 << 20  # a small upload...
    tracemalloc.start()
    try:
        with pytest.raises(PackageError):
            open_package(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20, f"reading the package took {peak >> 20} MiB"  # ...must not cost its real size


@pytest.fixture
def unpacked(package_zip: bytes, tmp_path: Path) -> Path:
    return extract_package(open_package(package_zip), tmp_path / "model")


def test_a_symlinked_file_in_a_package_directory_is_refused(unpacked: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.csv"
    (unpacked / REFERENCE_NAME).rename(outside)
    (unpacked / REFERENCE_NAME).symlink_to(outside)  # same bytes, same sha256: only the link is wrong
    with pytest.raises(PackageError, match="symlink"):
        open_package(unpacked)


def test_a_subdirectory_in_a_package_directory_is_refused(unpacked: Path) -> None:
    (unpacked / "extra").mkdir()
    (unpacked / "extra" / "payload.py").write_text("print('hi')\n")
    with pytest.raises(PackageError, match="extra is not a regular file"):
        open_package(unpacked)


def test_a_package_directory_has_a_size_cap(unpacked: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archive, "MAX_UNPACKED_BYTES", 1000)
    with pytest.raises(PackageError, match="beyond 1000 bytes unpacked"):
        open_package(unpacked)


def _with_manifest(package_zip: bytes, edit) -> bytes:
    """Rewrite manifest.json (raw JSON text) and re-zip: integrity of the other files still holds."""
    with zipfile.ZipFile(io.BytesIO(package_zip)) as source:
        members = {name: source.read(name) for name in source.namelist()}
    members[MANIFEST_NAME] = edit(members[MANIFEST_NAME].decode()).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as out:
        for name, data in members.items():
            out.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_range_bounds_are_refused(package_zip: bytes, constant: str) -> None:
    def edit(text: str) -> str:
        manifest = json.loads(text)
        numeric = next(f for f in manifest["features"] if f.get("maximum") is not None)
        numeric["maximum"] = "__BOUND__"
        return json.dumps(manifest).replace('"__BOUND__"', constant)

    with pytest.raises(ManifestError, match=f"contains {constant}; only finite numbers"):
        open_package(_with_manifest(package_zip, edit))


def test_deeply_nested_hyperparameters_are_a_clear_error(package_zip: bytes) -> None:
    def edit(text: str) -> str:
        manifest = json.loads(text)
        manifest["hyperparameters"] = {"deep": "__DEEP__"}
        return json.dumps(manifest).replace('"__DEEP__"', "[" * 100_000 + "]" * 100_000)

    with pytest.raises(ManifestError, match=r"nests (deeper than|\d+ levels deep)"):
        open_package(_with_manifest(package_zip, edit))


def test_the_app_refuses_a_package_verify_refuses(package_zip: bytes, tmp_path: Path) -> None:
    """Issue #13: a manifest that disagrees with the ONNX graph failed verify (exit 5) but was served."""
    package = open_package(package_zip)
    numeric = next(f for f in package.manifest.features if f.is_numeric)
    changed = tuple(
        f.model_copy(update={"dtype": "string", "minimum": None, "maximum": None}) if f.name == numeric.name else f
        for f in package.manifest.features
    )
    manifest = package.manifest.model_copy(update={"features": changed})
    _, data = package_bytes(manifest, {n: b for n, b in package.files.items() if n != MANIFEST_NAME})
    path = tmp_path / "model.zip"
    path.write_bytes(data)
    with pytest.raises(SchemaError, match=numeric.name):
        verify_package(path)
    with pytest.raises(SchemaError, match=numeric.name):
        model_fn(path)
