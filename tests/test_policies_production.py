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
        "llm-two-replicas-no-budget",
        "production-llm-disruption-budget",
        GOOD.but(llm_replicas=2),
        "Deployment chatchat/llm-chatchat runs at least 2 replicas",
        "PodDisruptionBudget (maxUnavailable: 1)",
        passing=GOOD.but(llm_replicas=2, llm_pdb=True),
    ),
    Case(
        "llm-autoscaled-from-two-no-budget",
        "production-llm-disruption-budget",
        # KEDA's minimum counts, not the Deployment's initial replicas
        GOOD.but(llm_replicas=1, llm_scaled_min=2),
        "llm-chatchat runs at least 2 replicas",
        "llm.autoscaling.minReplicas",
        passing=GOOD.but(llm_replicas=1, llm_scaled_min=2, llm_pdb=True),
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


def test_an_llm_that_may_run_one_replica_needs_no_budget():
    policy = "production-llm-disruption-budget"
    assert of(policy, check(GOOD)) == []  # one replica: a budget could only block drains
    # an autoscaler whose minimum is 1 owns the count, whatever the Deployment started with
    assert of(policy, check(GOOD.but(llm_replicas=2, llm_scaled_min=1))) == []


def test_a_budget_for_other_pods_does_not_count():
    policy = "production-llm-disruption-budget"
    # the chat pods' budget does not protect the llm: the shape's llm_pdb selects llm labels,
    # so an llm at 2 without it is caught even though chat has replicas (and would get one)
    assert of(policy, check(GOOD.but(llm_replicas=2, chat_replicas=3)))
