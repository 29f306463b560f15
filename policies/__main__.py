"""The chatchat CrossGuard policy pack: `pulumi preview --policy-pack policies`.

The policies live in `chatchat_policies` so that the offline runner (`python -m tools policy`)
can import the very same objects without starting the pack's gRPC server.
"""

from chatchat_policies import PACK_DESCRIPTION, PACK_NAME, all_policies
from pulumi_policy import EnforcementLevel, PolicyPack

PolicyPack(
    PACK_NAME,
    enforcement_level=EnforcementLevel.ADVISORY,  # each policy sets its own level
    policies=all_policies,
    description=PACK_DESCRIPTION,
)
