"""A per-git-sha record that the test suite passed, so the Build action does not re-run it for the same code.

A model-only change (a new model.zip, same commit) re-runs the pipeline with the same git sha: the code and
tests have not changed, so the suite's result cannot either. After a passing ``make test`` the buildspec
writes ``test-passed/<git sha>.json`` to the pipeline's artifact bucket; the next build of that sha skips
the suite. Any doubt (no record, no access, a malformed record) runs the suite: the skip fails safe. The
artifact bucket's lifecycle (``artifactRetentionDays``) expires records, so a sha is re-tested after that.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime
from typing import Any

from release.errors import ConfigurationError

LOG = logging.getLogger(__name__)
TEST_RECORDS_PREFIX = "test-passed/"
_GIT_SHA = re.compile(r"^[0-9a-f]{40}$")


def test_record_key(git_sha: str) -> str:
    if not _GIT_SHA.match(git_sha):
        raise ConfigurationError(f"--git-sha {git_sha!r} is not a full 40-hex git commit id")
    return f"{TEST_RECORDS_PREFIX}{git_sha}.json"


class TestRecords:
    """Read and write the records in the artifact bucket."""

    __test__ = False  # not a pytest test class despite the name

    def __init__(self, s3_client: Any, bucket: str) -> None:
        self.s3, self.bucket = s3_client, bucket

    def passed(self, git_sha: str) -> bool:
        key = test_record_key(git_sha)
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            record = json.loads(body)
        except Exception as exc:  # any doubt runs the suite
            LOG.info("no usable test record s3://%s/%s (%s): the suite runs", self.bucket, key, type(exc).__name__)
            return False
        ok = isinstance(record, dict) and record.get("git_sha") == git_sha and record.get("result") == "passed"
        if not ok:
            LOG.warning("s3://%s/%s is not a passing record for %s: the suite runs", self.bucket, key, git_sha)
        return ok

    def write(self, git_sha: str, *, at: datetime, build_id: str | None) -> str:
        key = test_record_key(git_sha)
        body = {"git_sha": git_sha, "result": "passed", "at": at.isoformat(), "build_id": build_id}
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=json.dumps(body).encode(), ContentType="application/json")
        return key
