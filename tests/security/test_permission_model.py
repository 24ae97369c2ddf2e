"""Every declared call (tools/iam/required_calls.py) evaluated against both stacks' planned policies with
@cloud-copilot/iam-simulate; a broken copy of a policy proves the evaluation can fail."""

from __future__ import annotations

import copy
import json
import os
import shutil

import pytest

from tools.iam.required_calls import REQUIRED_CALLS
from tools.iam.simulate import TOOL_DIR, Call, evaluate, simulation
from tools.plan.offline import OfflineRun

_ENGINE_READY = shutil.which("node") is not None and (TOOL_DIR / "node_modules" / "@cloud-copilot").is_dir()
if not _ENGINE_READY and not os.environ.get("CI"):
    # `make test` on a machine with only Python and make (README quick start): say why, never pass silently.
    # In CI (.ci/run runs `make iam-eval` first) a missing engine is an error, raised by evaluate().
    pytestmark = pytest.mark.skip(reason="IAM engine not installed: run `make iam-eval` (Node.js 20 + npm)")

_RESULTS: dict[str, dict[str, dict]] = {}


def _results(plans: dict[str, OfflineRun], stack: str) -> dict[str, dict]:
    if stack not in _RESULTS:  # one engine run per stack for all calls
        run = plans[stack]
        _RESULTS[stack] = evaluate([(call.id, simulation(run, call)) for call in REQUIRED_CALLS])
    return _RESULTS[stack]


def _params() -> list:
    params = []
    for stack in ("dev", "prod"):
        for call in REQUIRED_CALLS:
            marks = [pytest.mark.xfail(strict=True, reason=call.defect)] if call.defect else []
            params.append(pytest.param(stack, call, id=f"{stack}-{call.id}", marks=marks))
    return params


@pytest.mark.parametrize(("stack", "call"), _params())
def test_declared_call_is_allowed(plans: dict[str, OfflineRun], stack: str, call: Call) -> None:
    result = _results(plans, stack)[call.id]
    assert result["result"] == "Allowed", f"{call.id} ({call.doc}): {result['result']} {result['errors'] or ''}"


def test_a_broken_policy_copy_is_denied(plans: dict[str, OfflineRun]) -> None:
    """Remove the capture statement from a copy of the stage task role's policy: the engine must deny."""
    run = copy.deepcopy(plans["dev"])
    call = next(c for c in REQUIRED_CALLS if c.principal == "stage-task-role" and c.action == "s3:PutObject")
    policy_resource = run.one("aws:iam/rolePolicy:RolePolicy", "stage-task-role-policy")
    document = json.loads(policy_resource.inputs["policy"])
    document["Statement"] = [s for s in document["Statement"] if "s3:PutObject" not in s["Action"]]
    policy_resource.inputs["policy"] = json.dumps(document)
    results = evaluate([("intact", simulation(plans["dev"], call)), ("broken", simulation(run, call))])
    assert results["intact"]["result"] == "Allowed"
    assert results["broken"]["result"] == "ImplicitlyDenied"


def test_a_broken_key_policy_copy_is_denied(plans: dict[str, OfflineRun]) -> None:
    """Drop the key policy's root delegation in a copy: the task role's IAM grant alone no longer works."""
    run = copy.deepcopy(plans["prod"])
    call = next(c for c in REQUIRED_CALLS if c.principal == "prod-task-role" and c.action == "kms:GenerateDataKey")
    key = run.one("aws:kms/key:Key", "data-key")
    document = json.loads(key.inputs["policy"])
    document["Statement"] = [s for s in document["Statement"] if s["Sid"] != "AccountAdministersKeyAndDelegatesToIam"]
    key.inputs["policy"] = json.dumps(document)
    results = evaluate([("broken", simulation(run, call))])
    assert results["broken"]["result"] == "ImplicitlyDenied"


def test_capture_bucket_refuses_uploads_that_ask_for_other_encryption(plans: dict[str, OfflineRun]) -> None:
    """The capture bucket policy's SSE-KMS-only Deny, evaluated: the app's upload with aws:kms (or with no
    header: default SSE-KMS) is allowed; the same upload asking for AES256 is explicitly denied."""
    run = plans["prod"]
    call = next(c for c in REQUIRED_CALLS if c.principal == "prod-task-role" and c.action == "s3:PutObject")
    header = "s3:x-amz-server-side-encryption"
    cases = {"none": {}, "kms": {header: "aws:kms"}, "aes": {header: "AES256"}}
    results = evaluate([(name, simulation(run, Call(**{**call.__dict__, "context": context})))
                        for name, context in cases.items()])  # fmt: skip
    assert results["none"]["result"] == "Allowed" and results["kms"]["result"] == "Allowed"
    assert results["aes"]["result"] == "ExplicitlyDenied"


CONNECTIONS = {
    "ml-delivery:sourceProvider": "codeconnections",
    "ml-delivery:connectionArn": (
        "arn:aws:codeconnections:us-east-1:123456789012:connection/0a1b2c3d-0000-4000-8000-000000000000"
    ),
    "ml-delivery:fullRepositoryId": "example-org/ml-delivery",
}


def test_codeconnections_source_may_set_the_artifact_acl() -> None:
    """CodePipeline User Guide, "CodeStarSourceConnection ... service role permissions": the source action
    writes its artifact with s3:PutObjectAcl. Evaluated on the dev stack switched to a connections source."""
    from tools.iam.simulate import Ref
    from tools.plan.offline import run_offline

    run = run_offline("dev", overrides=CONNECTIONS)
    call = Call("pipeline (codeconnections)", "delivery-pipeline-role", "s3:PutObjectAcl",
                Ref("aws:s3/bucket:Bucket", "buckets-artifacts", "/ml-delivery-pi/source_out/abc.zip"),
                "CodePipeline User Guide, 'CodeStarSourceConnection ...': service role permissions")  # fmt: skip
    result = evaluate([(call.id, simulation(run, call))])[call.id]
    assert result["result"] == "Allowed", result


def test_list_tasks_is_limited_to_the_stacks_clusters(plans: dict[str, OfflineRun]) -> None:
    """ecs:ListTasks is granted on "*" only under the ecs:cluster condition: another cluster is denied."""
    call = next(c for c in REQUIRED_CALLS if c.action == "ecs:ListTasks")
    elsewhere = Call(**{**call.__dict__, "context": {"ecs:cluster": "arn:aws:ecs:us-east-1:123456789012:cluster/x"}})
    results = evaluate([("ours", simulation(plans["prod"], call)), ("other", simulation(plans["prod"], elsewhere))])
    assert results["ours"]["result"] == "Allowed" and results["other"]["result"] == "ImplicitlyDenied"
