"""The whole program, in variants of the shipped stacks, against the pack: what `__main__.py`
declares (cluster node pools, storage, workloads) passes every policy."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import SHIPPED_STACKS, rendered
from tests.policy_helpers import POLICIES
from tools.checks.policy_runner import check_rendering, settings_for
from tools.offline.engine import render_stack

VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "dev-open-source-model": ("dev", {"llm.model": "qwen-7b-chat"}),
    "prod-14b-fp16": ("prod", {"llm.model": "qwen-14b-chat"}),
    "prod-13b-aiacc": ("prod", {"llm.model": "llama-2-13b-hf-aiacc"}),
    "dev-llm-on-eci": ("dev", {"llm.model": "chatglm2-6b", "llm.pod.instanceType": "eci"}),
    "dev-chat-on-eci": ("dev", {"chat.pod.instanceType": "eci"}),
    "dev-internal-load-balancer": ("dev", {"chat.service.type": "LoadBalancer"}),
    "dev-adb": ("dev", {"db.dbType": "adb"}),
    "prod-gpu-chat": ("prod", {"chat.pod.resources": {"limits": {"nvidia.com/gpu": "1"}}}),
    # the chat pod names the aiacc model it calls; on ECI with a GPU it embeds, it serves nothing
    "dev-gpu-chat-on-eci": (
        "dev",
        {
            "chat.pod.instanceType": "eci",
            "chat.pod.resources": {"limits": {"nvidia.com/gpu": "1"}},
            "chat.pod.eciSpecs": ["ecs.gn7i-c8g1.2xlarge"],
        },
    ),
}


def _violations(stack: str, overrides: dict | None = None) -> list[str]:
    rendering = render_stack(stack, overrides) if overrides else rendered(stack)
    violations = check_rendering(rendering, POLICIES, settings_for(stack, POLICIES))
    return [f"{v.level} {v.policy}: {v.message}" for v in violations]


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_shipped_stack_passes_every_policy(stack):
    assert _violations(stack) == []


@pytest.mark.parametrize("variant", VARIANTS)
def test_program_variant_passes_every_policy(variant):
    stack, overrides = VARIANTS[variant]
    assert _violations(stack, overrides) == []


def test_public_load_balancer_needs_the_stacks_policy_config_too():
    """`chat.service.allowPublic` makes an internet SLB; the pack still refuses it until the
    stack's policy config allows it (the platform team's decision, not the app's)."""
    rendering = render_stack(
        "dev", {"chat.service.type": "LoadBalancer", "chat.service.allowPublic": True}
    )
    found = [v for v in check_rendering(rendering, POLICIES) if v.level == "mandatory"]
    assert [v.policy for v in found] == ["k8s-no-public-load-balancer"]
