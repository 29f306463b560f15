"""Zero-downtime model changes (issue 16, item 3): the rollout strategy follows the GPU pools'
room for a surge pod, the llm gets a disruption budget where it has replicas to spare, readiness
means "model loaded", and `tools model-change` states capacity, cold start and any gap."""

from __future__ import annotations

import pytest

from components import cloud_facts, llm_capacity
from components.config import parse_config
from tests.conftest import ours
from tests.test_config import with_
from tests.workload_harness import container, deployment, objects_of, render_workloads
from tools.model_change import main as model_change


def _cfg(stack: str, **dotted):
    return parse_config(with_(ours(stack), **dotted), stack)


def test_a_pool_with_a_spare_node_surges_without_a_gap():
    plan = llm_capacity.rollout(_cfg("staging"))  # up to 2 replicas, pool maxSize 3
    assert plan.strategy == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    assert plan.gap_free and "gap-free" in plan.statement


def test_a_full_pool_with_one_replica_states_an_outage():
    plan = llm_capacity.rollout(_cfg("dev"))  # one node, one replica
    assert plan.strategy == {"type": "Recreate"}
    assert not plan.gap_free and plan.statement.startswith("brief outage")


def test_a_full_pool_with_two_replicas_replaces_one_at_a_time():
    # qwen-14b-chat-aiacc int8 fits V100 32 GB and A10: shrink the pools so 2 replicas fill them
    cfg = _cfg(
        "prod",
        cluster__gpuPools=[
            {"name": "a10", "instanceTypes": ["ecs.gn7i-c16g1.4xlarge"], "maxSize": 2}
        ],
        llm__autoscaling={"enabled": True, "minReplicas": 2, "maxReplicas": 2},
    )
    plan = llm_capacity.rollout(cfg)
    assert plan.strategy["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    assert plan.gap_free and "at least 1 keep serving" in plan.statement


def test_a_single_replica_at_the_autoscalers_minimum_is_never_taken_down_first():
    # up to 2 replicas on 2 nodes, but only 1 may be running when the rollout starts
    cfg = _cfg(
        "staging",
        cluster__gpuPools=[
            {"name": "a10", "instanceTypes": ["ecs.gn7i-c8g1.2xlarge"], "maxSize": 2}
        ],
    )
    assert llm_capacity.rollout(cfg).strategy == {"type": "Recreate"}


def test_eci_has_no_pool_to_fill():
    cfg = _cfg(
        "dev",
        llm__model="qwen-7b-chat",
        llm__pod__instanceType="eci",
        llm__autoscaling__enabled=False,
        monitoring={"enabled": False},
    )
    plan = llm_capacity.rollout(cfg)
    assert plan.gpu_nodes is None and plan.gap_free


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_the_deployment_carries_the_derived_strategy(stack):
    rendering = render_workloads(stack)
    expected = llm_capacity.rollout(rendering.config).strategy
    assert deployment(rendering, "llm")["spec"]["strategy"] == expected


def test_production_llm_has_a_disruption_budget_and_dev_none():
    prod = render_workloads("prod")
    budgets = {p["metadata"]["name"]: p["spec"] for p in objects_of(prod, "PodDisruptionBudget")}
    assert budgets["llm-chatchat"]["maxUnavailable"] == 1
    assert "chat-chatchat" in budgets
    dev = render_workloads("dev")  # one llm replica at most: a budget could only block drains
    assert not [p for p in objects_of(dev, "PodDisruptionBudget") if "llm" in p["metadata"]["name"]]


def test_readiness_waits_for_the_model():
    llm = container(deployment(render_workloads("prod"), "llm"))
    # our server answers /v1/models only once the model is loaded (/health before)
    assert llm["readinessProbe"]["httpGet"]["path"] == "/v1/models"


def test_cold_start_is_the_weights_over_the_stores_bandwidth():
    cfg = _cfg("prod")  # NAS Performance
    start = llm_capacity.cold_start(cfg)
    bandwidth = cloud_facts.value("serving", "modelStoreReadMBps")["nas"]["Performance"]
    weights = cfg.llm.catalog_entry.weights_gib(cfg.llm.load8bit)
    assert start.read_mb_per_s == bandwidth and start.weights_gib == weights
    assert start.seconds == pytest.approx(weights * 1024**3 / (bandwidth * 1e6), abs=0.1)
    bigger = llm_capacity.cold_start(_cfg("prod", llm__model="qwen-14b-chat-aiacc"))
    assert bigger.seconds > start.seconds


def test_model_change_reports_capacity_cold_start_and_the_gap(capsys):
    code = model_change(["--stack", "dev", "--model", "chatglm2-6b-aiacc", "--no-store-check"])
    out = capsys.readouterr().out
    assert code == 0
    assert "capacity: up to 1 replica(s) x 1 GPU(s); a surge pod needs 2 GPU node(s)" in out
    assert "[warn] rollout: brief outage" in out
    assert "cold start:" in out and "from oss (ossfs)" in out
    code = model_change(["--stack", "staging", "--model", "chatglm2-6b-aiacc", "--no-store-check"])
    assert "rollout: gap-free" in capsys.readouterr().out
