"""The Evaluate action's contract with the pipeline, kept free of heavy imports (infra and release read it).

The buildspec exports these variables (evaluation/buildspec.yml ``exported-variables``) under the action's
namespace; the Approval shows them and the Release action copies verdict and report into the ledger.
"""

from __future__ import annotations

EVALUATE_NAMESPACE = "EvaluateVariables"
EVALUATE_STAGE = "Evaluate"
APPROVAL_STAGE = "Approval"
VERDICT = "EVAL_VERDICT"
SUMMARY = "EVAL_SUMMARY"
REPORT_URI = "EVAL_REPORT_URI"
REPORT_URL = "EVAL_REPORT_URL"
EXPORTED = (VERDICT, SUMMARY, REPORT_URI, REPORT_URL)
