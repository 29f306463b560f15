"""Security groups: no ingress from the whole internet unless a port range is allowed."""

from tests.policy_helpers import GOOD, Case, PolicyCases, check, of

CASES = [
    Case(
        "public-ingress",
        "security-group-no-public-ingress",
        GOOD.but(sg_cidr="0.0.0.0/0"),
        "ecs.SecurityGroupRule sg-api",
        "restrict cidr_ip",
    ),
    Case(
        "public-ingress-other-port-allowed",
        "security-group-no-public-ingress",
        GOOD.but(sg_cidr="0.0.0.0/0"),
        "ecs.SecurityGroupRule sg-api",
        "internal SLB",
        config={"security-group-no-public-ingress": {"allowedPublicPortRanges": ["443/443"]}},
    ),
]


class TestNetworkPolicies(PolicyCases):
    """Each case of CASES: its passing set passes, its broken set is caught."""


def test_allowed_public_port_range_is_not_reported():
    config = {"security-group-no-public-ingress": {"allowedPublicPortRanges": ["6443/6443"]}}
    found = of(
        "security-group-no-public-ingress", check(GOOD.but(sg_cidr="0.0.0.0/0"), config=config)
    )
    assert found == []
