"""The model bucket as the retrain job sees it: versions under ``models/``, the champion, uploads, reports.

Uploads send ``ChecksumSHA256`` so S3 rejects a body corrupted in transit, and an S3 PUT is atomic, so
a reader sees the old object or the new one, never half. The versioned copy is written first with
``If-None-Match: *`` (immutable: a second writer of the same version fails), the model key last because
its upload is what starts the pipeline.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from contracts.bucket_layout import MODELS_PREFIX, REPORTS_PREFIX, versioned_model_key
from jobs_common.errors import UploadError
from model_package.archive import ModelPackage, open_package
from model_package.registry import ChampionPointer, read_champion

LOG = logging.getLogger(__name__)
_VERSION_KEY = re.compile(rf"^{re.escape(MODELS_PREFIX)}(\d+)/model\.zip$")
RETRAIN_REPORTS_PREFIX = f"{REPORTS_PREFIX}retrain/"


@dataclass(frozen=True)
class Uploaded:
    versioned_key: str
    versioned_version_id: str | None
    model_key: str
    model_version_id: str | None


class ModelStore:
    def __init__(self, s3_client: Any, bucket: str, model_key: str) -> None:
        self.s3, self.bucket, self.model_key = s3_client, bucket, model_key

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def champion(self) -> ChampionPointer | None:
        return read_champion(self.s3, self.bucket)

    def versions(self) -> list[int]:
        found: list[int] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=MODELS_PREFIX):
            for item in page.get("Contents", []):
                match = _VERSION_KEY.match(item["Key"])
                if match:
                    found.append(int(match[1]))
        return sorted(found)

    def next_version(self) -> int:
        """1 + the highest version under models/: monotonic whether or not a release happened."""
        versions = self.versions()
        return versions[-1] + 1 if versions else 1

    def read_package(self, key: str) -> ModelPackage:
        body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        package = open_package(body)
        return ModelPackage(package.manifest, package.files, self.uri(key))

    def _put(self, key: str, data: bytes, **extra: Any) -> str | None:
        checksum = base64.b64encode(hashlib.sha256(data).digest()).decode()
        response = self.s3.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=data,
            ChecksumSHA256=checksum,
            ContentType="application/zip",
            **extra,
        )
        version_id: str | None = response.get("VersionId")  # absent when the bucket is not versioned
        return version_id

    def upload(self, version: int, data: bytes, metadata: dict[str, str]) -> Uploaded:
        from botocore.exceptions import ClientError

        versioned = versioned_model_key(version)
        try:
            versioned_id = self._put(versioned, data, IfNoneMatch="*", Metadata=metadata)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "?")
            if code in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise UploadError(
                    f"{self.uri(versioned)} already exists; another retrain run took version {version}"
                ) from exc
            raise
        LOG.info("uploaded %s (version id %s)", self.uri(versioned), versioned_id)
        model_id = self._put(self.model_key, data, Metadata=metadata)
        LOG.info("uploaded %s (version id %s): the pipeline starts from here", self.uri(self.model_key), model_id)
        return Uploaded(versioned, versioned_id, self.model_key, model_id)

    def put_report(self, report: dict[str, Any], at: datetime) -> str:
        key = f"{RETRAIN_REPORTS_PREFIX}{at.strftime('%Y%m%dT%H%M%S%fZ')}.json"
        self.s3.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=json.dumps(report, indent=2, sort_keys=True, default=str).encode(),
            ContentType="application/json",
        )
        return key
