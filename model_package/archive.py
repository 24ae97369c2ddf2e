"""Reading and writing ``model.zip``: integrity first, whole or not at all.

A package is either the zip (what retrain uploads and the pipeline's S3 source carries) or the
same files unpacked into a directory (what the Dockerfile bakes into the app image). Both are read
through :func:`open_package`, which refuses to hand out a package whose files do not match the
sha256s in its manifest, so a tampered or half-copied model can never be served.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from model_package.errors import IntegrityError, ManifestError, PackageError
from model_package.manifest import Manifest

MANIFEST_NAME = "manifest.json"
ONNX_NAME = "model.onnx"
SKOPS_NAME = "model.skops"
REQUIREMENTS_NAME = "requirements.txt"
REFERENCE_NAME = "reference.csv"
REQUIRED_FILES = (ONNX_NAME, SKOPS_NAME, REQUIREMENTS_NAME, REFERENCE_NAME)
# A model of this product is a few MB; anything near this limit is a zip bomb or a wrong upload.
MAX_UNPACKED_BYTES = 1 << 30
MAX_FILES = 64  # a package has five files today; more is a wrong directory or a crafted archive


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class ModelPackage:
    """A verified package: the manifest plus the bytes of every file it lists."""

    manifest: Manifest
    files: Mapping[str, bytes]
    source: str

    def read(self, name: str) -> bytes:
        try:
            return self.files[name]
        except KeyError:
            known = sorted(self.files)
            raise PackageError(f"{self.source}: the package has no file {name!r}; it has {known}") from None

    @property
    def sha256(self) -> str:
        """Digest of the manifest, which pins every other file: the package's identity."""
        return sha256_bytes(self.files[MANIFEST_NAME])


def _check_member_name(name: str, source: str) -> None:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or len(path.parts) != 1:
        raise PackageError(f"{source}: member {name!r} is not allowed; a package holds only flat file names")


def _verify(raw_files: Mapping[str, bytes], source: str) -> ModelPackage:
    if MANIFEST_NAME not in raw_files:
        raise ManifestError(f"{source}: {MANIFEST_NAME} is missing; every model package must carry one")
    manifest = Manifest.from_json(raw_files[MANIFEST_NAME])
    listed, present = set(manifest.files), set(raw_files) - {MANIFEST_NAME}
    missing_required = sorted(set(REQUIRED_FILES) - listed)
    if missing_required:
        raise IntegrityError(f"{source}: manifest does not list required files {missing_required}")
    if listed - present:
        raise IntegrityError(f"{source}: files listed in the manifest are missing: {sorted(listed - present)}")
    if present - listed:
        raise IntegrityError(f"{source}: files not listed in the manifest: {sorted(present - listed)}")
    for name in sorted(listed):
        actual = sha256_bytes(raw_files[name])
        if actual != manifest.files[name]:
            raise IntegrityError(
                f"{source}: sha256 of {name} is {actual}, the manifest says {manifest.files[name]}; "
                "the package was altered or corrupted"
            )
    return ModelPackage(manifest=manifest, files=dict(raw_files), source=source)


def _read_capped(handle: IO[bytes], name: str, budget: int, source: str) -> bytes:
    """Read at most ``budget`` bytes; more is refused. Counted on the bytes actually produced, so a zip
    member whose header understates its size (a zip bomb) stops at the cap instead of filling memory."""
    chunks: list[bytes] = []
    total = 0
    while chunk := handle.read(min(1 << 20, budget - total + 1)):
        total += len(chunk)
        if total > budget:
            raise PackageError(
                f"{source}: {name} takes the package beyond {MAX_UNPACKED_BYTES} bytes unpacked; "
                "a model package is a few MB (wrong upload or a zip bomb)"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _read_zip(data: bytes, source: str) -> dict[str, bytes]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise PackageError(f"{source}: not a zip archive ({exc})") from exc
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_FILES:
            raise PackageError(f"{source}: {len(infos)} members; a package holds at most {MAX_FILES} files")
        if sum(i.file_size for i in infos) > MAX_UNPACKED_BYTES:
            raise PackageError(f"{source}: unpacks to more than {MAX_UNPACKED_BYTES} bytes")
        files: dict[str, bytes] = {}
        remaining = MAX_UNPACKED_BYTES
        for info in infos:
            if info.is_dir():
                raise PackageError(f"{source}: member {info.filename!r} is a directory; a package holds only files")
            _check_member_name(info.filename, source)
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise PackageError(f"{source}: member {info.filename!r} is a symlink; a package holds only files")
            try:
                with archive.open(info) as handle:
                    files[info.filename] = _read_capped(handle, info.filename, remaining, source)
            except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
                raise IntegrityError(f"{source}: member {info.filename!r} cannot be read: {exc}") from exc
            remaining -= len(files[info.filename])
        return files


def _read_directory(path: Path, source: str) -> dict[str, bytes]:
    """An unpacked package: flat regular files only, read with the same size cap as the zip.

    Symlinks (which could point anywhere on the host) and subdirectories are refused rather than skipped:
    the pipeline verifies this directory, so whatever is in it must be exactly what the manifest lists.
    """
    entries = sorted(path.iterdir())
    if len(entries) > MAX_FILES:
        raise PackageError(f"{source}: {len(entries)} entries; a package holds at most {MAX_FILES} files")
    files: dict[str, bytes] = {}
    remaining = MAX_UNPACKED_BYTES
    for entry in entries:
        if entry.is_symlink():
            raise PackageError(f"{source}: {entry.name} is a symlink; a package directory holds only regular files")
        if not entry.is_file():
            raise PackageError(f"{source}: {entry.name} is not a regular file; a package directory is flat")
        with entry.open("rb") as handle:
            files[entry.name] = _read_capped(handle, entry.name, remaining, source)
        remaining -= len(files[entry.name])
    return files


def open_package(location: str | os.PathLike[str] | bytes) -> ModelPackage:
    """Open a ``model.zip`` (path or bytes) or an unpacked package directory, verified.

    Raises a :class:`PackageError` subclass naming what is wrong; never returns an unverified package.
    """
    if isinstance(location, bytes):
        return _verify(_read_zip(location, "<bytes>"), "<bytes>")
    path = Path(location)
    source = str(path)
    if path.is_symlink():
        raise PackageError(f"{source}: is a symlink; pass the package itself")
    if path.is_dir():
        return _verify(_read_directory(path, source), source)
    if not path.exists():
        raise PackageError(f"{source}: no such file or directory")
    if path.stat().st_size > MAX_UNPACKED_BYTES:
        raise PackageError(f"{source}: {path.stat().st_size} bytes; a package is at most {MAX_UNPACKED_BYTES}")
    return _verify(_read_zip(path.read_bytes(), source), source)


def package_bytes(manifest: Manifest, files: Mapping[str, bytes]) -> tuple[Manifest, bytes]:
    """Seal ``files`` into a zip: record each sha256 in the manifest, then zip deterministically."""
    for name in files:
        _check_member_name(name, "package_bytes")
    if MANIFEST_NAME in files:
        raise PackageError("package_bytes: pass the manifest separately, not as a file")
    sealed = manifest.model_copy(update={"files": {n: sha256_bytes(b) for n, b in sorted(files.items())}})
    # Re-validate: model_copy skips validation, and a sealed manifest must parse like any other.
    sealed = Manifest.from_json(sealed.to_json())
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in [(MANIFEST_NAME, sealed.to_json().encode()), *sorted(files.items())]:
            # Fixed timestamps: the same inputs give the same bytes, so a re-run is recognisably a no-op.
            info = zipfile.ZipInfo(name, date_time=(2000, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    data = buffer.getvalue()
    _verify(_read_zip(data, "<new package>"), "<new package>")
    return sealed, data


def write_atomically(path: str | os.PathLike[str], data: bytes) -> None:
    """Write via a temp file in the same directory and ``os.replace``: readers see old or new, never half."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).replace(target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_package(path: str | os.PathLike[str], manifest: Manifest, files: Mapping[str, bytes]) -> Manifest:
    """Seal and write ``model.zip`` atomically; returns the manifest with its ``files`` filled in."""
    sealed, data = package_bytes(manifest, files)
    write_atomically(path, data)
    return sealed


def extract_package(package: ModelPackage, directory: str | os.PathLike[str]) -> Path:
    """Write a verified package's files into ``directory`` (used by the image build)."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    for name, data in package.files.items():
        write_atomically(target / name, data)
    return target
