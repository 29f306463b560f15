"""Cloud-facts policies: creatable ACK version, ADB spec per category, and no API server open to
the internet in production."""

import pytest

from tests.policy_helpers import GOOD, Case, assert_caught, assert_passes, check, of

CASES = [
    Case(
        "eol-ack-version",
        "ack-version-creatable",
        GOOD.but(ack_version="1.31.1-aliyun.1"),
        "version 1.31.1-aliyun.1 cannot be created",
        "cluster.version",
    ),
    Case(
        "basic-spec-on-high-availability",
        "adb-spec-for-category",
        GOOD.but(adb_spec="4C16G"),
        "not offered for HighAvailability",
        "2C16G, 4C32G, 16C128G",
    ),
    Case(
        "public-api-server-without-acl",
        "production-api-server-restricted",
        GOOD.but(api_server_public=True),
        "no access control list",
        "cluster.apiServerAllowedCidrs",
    ),
    Case(
        "public-api-server-acl-not-bound",
        "production-api-server-restricted",
        GOOD.but(
            api_server_public=True,
            api_server_cidrs=("198.51.100.7/32",),
            api_server_acl_bound=False,
        ),
        "no access control list",
        "cluster.apiServerAllowedCidrs",
    ),
    Case(
        "public-api-server-open-to-all",
        "production-api-server-restricted",
        GOOD.but(api_server_public=True, api_server_cidrs=("0.0.0.0/0",)),
        "admits 0.0.0.0/0",
        "egress CIDRs",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_passing_resource_set_is_not_reported(case):
    assert_passes(case)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_violation_names_resource_and_fix(case):
    assert_caught(case)


def test_public_api_server_behind_a_whitelist_passes_in_production():
    shape = GOOD.but(api_server_public=True, api_server_cidrs=("198.51.100.7/32",))
    assert of("production-api-server-restricted", check(shape)) == []


def test_public_api_server_is_not_judged_outside_production():
    dev = GOOD.but(api_server_public=True, tags={**GOOD.tags, "stack": "dev"})
    assert of("production-api-server-restricted", check(dev, stack="dev")) == []
