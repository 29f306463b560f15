"""The real workload components (issue 4) against the pack, until the cloud components land.

`tests/workload_harness.declare_workloads` renders NetworkSecurity, LlmWorkload and ChatWorkload
for a stack; the GPU node pools the llm pod is scheduled on are declared here the way
INTERFACES.md agrees they are labelled and tainted (the cluster component is not merged yet).
TODO(integrator): once `__main__.py` wires every component, `tests/test_policy_check.py` checks
the whole shipped stacks and these pools can go.
"""

from __future__ import annotations

import pulumi_alicloud as alicloud
import pytest

from components.catalog import gpu_family_of
from components.config import load_config
from tests.policy_helpers import POLICIES
from tests.workload_harness import declare_workloads
from tools.checks.policy_runner import check_rendering, settings_for
from tools.offline.engine import render_program
from tools.offline.stack_files import apply_overrides, read_stack_file


def _workloads_on_agreed_pools() -> None:
    cfg = load_config()
    declare_workloads()
    for pool in cfg.cluster.gpu_pools:
        family = gpu_family_of(pool.instance_types[0])
        labels = {"chatchat.io/node-pool": pool.name, "chatchat.io/gpu-family": family.label,
                  "chatchat.io/gpu-memory-gib": str(family.gpu_memory_gib)}
        alicloud.cs.NodePool(
            f"pool-{pool.name}", cluster_id="c-offline", vswitch_ids=["vsw-offline"],
            instance_types=pool.instance_types, tags=cfg.resource_tags(),
            scaling_config=alicloud.cs.NodePoolScalingConfigArgs(
                enable=True, min_size=pool.min_size, max_size=pool.max_size),
            labels=[alicloud.cs.NodePoolLabelArgs(key=k, value=v) for k, v in labels.items()],
            taints=[alicloud.cs.NodePoolTaintArgs(key="nvidia.com/gpu", value="true",
                                                  effect="NoSchedule")])
    alicloud.cs.NodePool(
        "pool-system", cluster_id="c-offline", vswitch_ids=["vsw-offline"],
        instance_types=cfg.cluster.system_pool.instance_types, tags=cfg.resource_tags(),
        desired_size=cfg.cluster.system_pool.size,
        labels=[alicloud.cs.NodePoolLabelArgs(key="chatchat.io/node-pool", value="system")])


VARIANTS = {
    "dev": ("dev", {}),
    "staging": ("staging", {}),
    "prod": ("prod", {}),
    "dev-open-source-model": ("dev", {"llm.model": "qwen-7b-chat"}),
    "prod-14b-fp16": ("prod", {"llm.model": "qwen-14b-chat"}),
    "prod-13b-aiacc": ("prod", {"llm.model": "llama-2-13b-hf-aiacc"}),
    "dev-llm-on-eci": ("dev", {"llm.model": "chatglm2-6b", "llm.pod.instanceType": "eci"}),
    "dev-chat-on-eci": ("dev", {"chat.pod.instanceType": "eci"}),
    "dev-internal-load-balancer": ("dev", {"chat.service.type": "LoadBalancer"}),
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_workload_components_pass_every_policy(variant):
    stack, overrides = VARIANTS[variant]
    config = apply_overrides(read_stack_file(stack), overrides)
    rendering = render_program(_workloads_on_agreed_pools, config, stack)
    violations = check_rendering(rendering, POLICIES, settings_for(stack, POLICIES))
    assert [f"{v.level} {v.policy}: {v.message}" for v in violations] == []


def test_public_load_balancer_needs_the_stacks_policy_config_too():
    """`chat.service.allowPublic` makes an internet SLB; the pack still refuses it until the
    stack's policy config allows it (the platform team's decision, not the app's)."""
    config = apply_overrides(read_stack_file("dev"), {"chat.service.type": "LoadBalancer",
                                                      "chat.service.allowPublic": True})
    rendering = render_program(_workloads_on_agreed_pools, config, "dev")
    found = [v for v in check_rendering(rendering, POLICIES) if v.level == "mandatory"]
    assert [v.policy for v in found] == ["k8s-no-public-load-balancer"]
