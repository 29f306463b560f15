"""Production policies: two chat replicas, two zones, deletion protection; dev is exempt."""

import pytest

from tests.policy_helpers import GOOD, Case, PolicyCases, check, of

CASES = [
    Case(
        "one-chat-replica",
        "production-chat-replicas",
        GOOD.but(chat_replicas=1),
        "chat-chatchat",
        "chat.pod.replicas",
    ),
    Case(
        "no-sign-in",
        "production-chat-sign-in",
        GOOD.but(chat_oidc_issuer=None),
        "has no OpenID Connect sign-in",
        "chat.signIn.issuer",
    ),
    Case(
        "sign-in-over-http",
        "production-chat-sign-in",
        GOOD.but(chat_oidc_issuer="http://idp.example.com"),
        "chat-chatchat",
        "chat.signIn.clientId",
    ),
    Case(
        "one-zone",
        "production-multi-zone",
        GOOD.but(zones=("cn-hangzhou-k",)),
        "production stack prod",
        "network.vswitchCidrs",
    ),
    Case(
        "unprotected-stateful",
        "production-deletion-protection",
        GOOD.but(protect=False),
        "is not protected",
        "protect=True",
    ),
    Case(
        "cluster-without-deletion-protection",
        "production-deletion-protection",
        GOOD.but(deletion_protection=False),
        "cs.ManagedKubernetes ack",
        "deletion_protection=True",
    ),
]


class TestProductionPolicies(PolicyCases):
    """Each case of CASES: its passing set passes, its broken set is caught."""


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_dev_stack_is_not_production(case):
    dev = case.broken.but(tags={**case.broken.tags, "stack": "dev"})
    assert of(case.policy, check(dev, stack="dev")) == []


def test_production_stacks_come_from_policy_config():
    config = {"production-chat-replicas": {"productionStacks": ["live"]}}
    assert of("production-chat-replicas", check(GOOD.but(chat_replicas=1), config=config)) == []


def test_stack_tag_marks_resource_as_production():
    unprotected = GOOD.but(protect=False, tags={**GOOD.tags, "stack": "live"})
    config = {"production-deletion-protection": {"productionStacks": ["live"]}}
    found = of("production-deletion-protection", check(unprotected, stack="dev", config=config))
    assert {v.resource for v in found} == {
        "gpdb.Instance vectors",
        "nas.FileSystem kb",
        "oss.Bucket models",
    }
