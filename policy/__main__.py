"""The policy pack entry point: ``pulumi preview --policy-pack policy``.

The Pulumi analyzer runs this file with the pack directory as the working directory, so the policies are
imported from the sibling module ``policies`` (the test suite imports the same module as ``policy.policies``).
"""

from policies import POLICIES
from pulumi_policy import EnforcementLevel, PolicyPack

PolicyPack(name="ml-delivery-guardrails", enforcement_level=EnforcementLevel.MANDATORY, policies=POLICIES)
