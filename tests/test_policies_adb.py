"""ADB (gpdb) policies: vector engine on, segments of at least 4C16G, whitelist never open."""

from tests.policy_helpers import GOOD, Case, PolicyCases

CASES = [
    Case(
        "vector-engine-unset",
        "adb-vector-engine-enabled",
        GOOD.but(adb_vector=None),
        "gpdb.Instance vectors",
        'vector_configuration_status="enabled"',
    ),
    Case(
        "vector-engine-disabled",
        "adb-vector-engine-enabled",
        GOOD.but(adb_vector="disabled"),
        "gpdb.Instance vectors",
        'vector_configuration_status="enabled"',
    ),
    Case(
        "spec-too-small",
        "adb-segment-spec",
        GOOD.but(adb_spec="2C8G"),
        "gpdb.Instance vectors",
        "4C16G or larger",
        passing=GOOD.but(adb_spec="8C32G"),
    ),
    Case(
        "spec-memory-too-small",
        "adb-segment-spec",
        GOOD.but(adb_spec="4C8G"),
        "gpdb.Instance vectors",
        "4C16G",
    ),
    Case(
        "spec-not-a-spec",
        "adb-segment-spec",
        GOOD.but(adb_spec="large"),
        "gpdb.Instance vectors",
        "at least 4C16G",
    ),
    Case(
        "configured-minimum",
        "adb-segment-spec",
        GOOD,
        "gpdb.Instance vectors",
        "8C32G",
        passing=GOOD.but(adb_spec="8C32G"),
        config={"adb-segment-spec": {"minCores": 8, "minMemoryGib": 32}},
    ),
    Case(
        "whitelist-open",
        "adb-whitelist-not-open",
        GOOD.but(adb_whitelist="0.0.0.0/0"),
        "gpdb.Instance vectors",
        "VPC or vSwitch CIDRs",
    ),
    Case(
        "whitelist-open-among-others",
        "adb-whitelist-not-open",
        GOOD.but(adb_whitelist="10.30.0.0/16, 0.0.0.0/0"),
        "gpdb.Instance vectors",
        "VPC or vSwitch CIDRs",
    ),
]


class TestAdbPolicies(PolicyCases):
    """Each case of CASES: its passing set passes, its broken set is caught."""
