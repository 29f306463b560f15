"""Security groups: no ingress from the whole internet unless a port range is allowed."""

import pytest

from tests.policy_helpers import GOOD, Case, assert_caught, assert_passes

CASES = [
    Case("public-ingress", "security-group-no-public-ingress", GOOD.but(sg_cidr="0.0.0.0/0"),
         "ecs.SecurityGroupRule sg-api", "restrict cidr_ip"),
    Case("public-ingress-other-port-allowed", "security-group-no-public-ingress",
         GOOD.but(sg_cidr="0.0.0.0/0"), "ecs.SecurityGroupRule sg-api", "internal SLB",
         config={"security-group-no-public-ingress": {"allowedPublicPortRanges": ["443/443"]}}),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_passing_resource_set_is_not_reported(case):
    assert_passes(case)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_violation_names_resource_and_fix(case):
    assert_caught(case)


def test_allowed_public_port_range_is_not_reported():
    allowed = Case("allowed", "security-group-no-public-ingress", GOOD, "", "",
                   passing=GOOD.but(sg_cidr="0.0.0.0/0"), config={
                       "security-group-no-public-ingress": {
                           "allowedPublicPortRanges": ["6443/6443"]}})
    assert_passes(allowed)
