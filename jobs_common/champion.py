"""Finding the model a job works on: a local file, an ``s3://`` URI, a key, the champion or a version."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from contracts.bucket_layout import DEFAULT_MODEL_KEY, versioned_model_key
from model_package.archive import ModelPackage, open_package
from model_package.errors import PackageError
from model_package.registry import read_champion


def _s3_package(s3_client: Any, bucket: str, key: str) -> ModelPackage:
    try:
        body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3_client.exceptions.NoSuchKey:
        raise PackageError(f"s3://{bucket}/{key}: no such model package") from None
    package = open_package(body)
    return ModelPackage(manifest=package.manifest, files=package.files, source=f"s3://{bucket}/{key}")


def resolve_model(ref: str, s3_client: Any | None = None, bucket: str | None = None) -> ModelPackage:
    """``champion`` (the release pointer), a version number, ``s3://bucket/key``, or a local path.

    Every path ends in ``open_package``, so an altered or half-uploaded package is refused here.
    """
    if ref.startswith("s3://"):
        if s3_client is None:
            raise PackageError(f"{ref}: an S3 client is needed")
        bucket_name, _, key = ref[5:].partition("/")
        return _s3_package(s3_client, bucket_name, key)
    if ref == "champion" or ref.isdigit():
        if s3_client is None or not bucket:
            raise PackageError(f"model {ref!r} is looked up in the model bucket: set MODEL_BUCKET")
        if ref == "champion":
            pointer = read_champion(s3_client, bucket)
            if pointer is None:
                raise PackageError(f"s3://{bucket}: no champion yet (champion.json is absent); pass a version instead")
            return _s3_package(s3_client, bucket, pointer.package_key)
        return _s3_package(s3_client, bucket, versioned_model_key(int(ref)))
    path = Path(ref)
    if not path.exists():
        raise PackageError(f"model {ref!r}: not 'champion', a version number, an s3:// URI or an existing path")
    return open_package(path)


def live_model(s3_client: Any, bucket: str, key: str | None) -> ModelPackage:
    """The model whose capture the monitor reads: ``MODEL_KEY`` if set, else the champion, else model.zip."""
    if key:
        return _s3_package(s3_client, bucket, key)
    pointer = read_champion(s3_client, bucket)
    return _s3_package(s3_client, bucket, pointer.package_key if pointer else DEFAULT_MODEL_KEY)
