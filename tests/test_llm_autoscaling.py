"""Queue-driven llm replicas (issue 16, item 2): the config keys and their rules, the KEDA
ScaledObject the stacks render, and the GPU pool able to follow the llm down to zero."""

from __future__ import annotations

import pytest

from components.config import parse_config
from components.llm_autoscaling import scaled_object_spec
from tests.conftest import ours
from tests.test_config import MINIMAL, problems_of, with_
from tests.workload_harness import deployment, objects_of, render_workloads

URL = "http://prometheus.example/api/v1/prometheus/x"
SCALED = with_(
    MINIMAL,
    llm__autoscaling={"enabled": True, "minReplicas": 1, "maxReplicas": 1},
    monitoring={"prometheusUrl": URL},
)


def test_max_replicas_must_fit_the_pools_that_hold_the_model():
    raw = with_(SCALED, llm__autoscaling__maxReplicas=2)
    problem = problems_of(raw)["llm.autoscaling.maxReplicas"]
    assert "need 2 GPU node(s)" in problem and "allow 1" in problem


def test_gpus_per_pod_count_against_the_pools():
    raw = with_(
        SCALED,
        cluster__gpuPools=[
            {"name": "a10", "instanceTypes": ["ecs.gn7i-c8g1.2xlarge"], "maxSize": 3}
        ],
        llm__autoscaling__maxReplicas=2,
        llm__pod__resources={"limits": {"nvidia.com/gpu": "2"}},
    )
    assert "4 GPU node(s)" in problems_of(raw)["llm.autoscaling.maxReplicas"]


def test_pools_that_cannot_hold_the_model_do_not_count():
    v100_16 = {"name": "v100", "instanceTypes": ["ecs.gn6v-c8g1.2xlarge"], "maxSize": 8}
    raw = with_(
        SCALED,
        llm__model="qwen-7b-chat",  # fp16 16.7 GiB: fits the A10, not a 16 GB V100
        cluster__gpuPools=[*MINIMAL["cluster"]["gpuPools"], v100_16],
        llm__autoscaling__maxReplicas=2,
    )
    assert "allow 1" in problems_of(raw)["llm.autoscaling.maxReplicas"]


def test_autoscaling_needs_the_prometheus_to_ask():
    raw = with_(SCALED, monitoring={})
    assert "HTTP API URL" in problems_of(raw)["monitoring.prometheusUrl"]
    off = with_(SCALED, monitoring={"enabled": False, "prometheusUrl": URL})
    assert "monitoring.enabled" in problems_of(off)["llm.autoscaling.enabled"]


def test_min_above_max_names_min_replicas():
    raw = with_(SCALED, llm__autoscaling__minReplicas=2)
    assert "exceeds maxReplicas 1" in problems_of(raw)["llm.autoscaling.minReplicas"]


def test_pod_replicas_outside_the_autoscalers_range_is_refused():
    raw = with_(SCALED, llm__pod__replicas=2)
    assert "outside llm.autoscaling's 1..1" in problems_of(raw)["llm.pod.replicas"]


def test_scale_to_zero_needs_a_wake_schedule_and_no_production():
    raw = with_(SCALED, llm__autoscaling__minReplicas=0, production=True)
    problems = problems_of(raw)
    assert "only a schedule brings the llm back" in problems["llm.autoscaling.wakeSchedule"]
    assert "production" in problems["llm.autoscaling.minReplicas"]


@pytest.mark.parametrize(
    ("schedule", "key"),
    [
        ({"start": "0 8 * * *", "end": "0 20 * * *", "timezone": "Mars/Olympus"}, "timezone"),
        ({"start": "at eight", "end": "0 20 * * *"}, "start"),
    ],
)
def test_a_bad_wake_schedule_names_its_field(schedule, key):
    raw = with_(SCALED, llm__autoscaling__minReplicas=0, llm__autoscaling__wakeSchedule=schedule)
    assert f"llm.autoscaling.wakeSchedule.{key}" in problems_of(raw)


def test_autoscaling_off_keeps_the_charts_fixed_replicas():
    cfg = parse_config(with_(MINIMAL, llm__pod__replicas=1), "dev")
    assert not cfg.llm.autoscaling.enabled
    rendering = render_workloads("dev", {"llm.autoscaling.enabled": False})
    assert objects_of(rendering, "ScaledObject") == []
    assert deployment(rendering, "llm")["spec"]["replicas"] == 1


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_stack_scales_the_llm_on_its_queue(stack):
    rendering = render_workloads(stack)
    (scaled,) = objects_of(rendering, "ScaledObject")
    cfg = rendering.config
    spec = scaled["spec"]
    assert spec["scaleTargetRef"]["name"] == deployment(rendering, "llm")["metadata"]["name"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (
        cfg.llm.autoscaling.min_replicas,
        cfg.llm.autoscaling.max_replicas,
    )
    queue = next(t for t in spec["triggers"] if t["type"] == "prometheus")["metadata"]
    assert queue["serverAddress"] == cfg.monitoring.prometheus_url
    # the shipped stacks serve aiacc models with our server: its waiting and running gauges
    assert "llm_queue_depth" in queue["query"] and "llm_requests_in_flight" in queue["query"]
    # KEDA asks for ceil(waiting+running / threshold) replicas
    assert queue["threshold"] == str(cfg.llm.autoscaling.target_requests_per_replica)


def test_vllm_served_models_scale_on_vllms_own_gauges():
    cfg = parse_config(with_(ours("dev"), llm__model="qwen-7b-chat"), "dev")
    query = scaled_object_spec(cfg)["triggers"][0]["metadata"]["query"]
    assert "vllm:num_requests_waiting" in query and "vllm:num_requests_running" in query
    assert "llm_queue_depth" not in query


def test_dev_goes_to_zero_after_its_idle_time_and_wakes_on_schedule():
    rendering = render_workloads("dev")
    spec = objects_of(rendering, "ScaledObject")[0]["spec"]
    scaling = rendering.config.llm.autoscaling
    assert spec["minReplicaCount"] == 0
    assert spec["cooldownPeriod"] == scaling.idle_minutes * 60
    (wake,) = [t for t in spec["triggers"] if t["type"] == "cron"]
    assert wake["metadata"]["start"] == scaling.wake_schedule.start
    # the GPU pool can follow: its autoscaler may remove the last node
    (pool,) = rendering.config.cluster.gpu_pools
    assert pool.min_size == 0


def test_pulumi_leaves_the_replica_count_to_keda():
    rendering = render_workloads("dev")
    (record,) = [
        r
        for r in rendering.by_type("kubernetes:apps/v1:Deployment")
        if r.inputs["metadata"]["name"] == "llm-chatchat"
    ]
    assert "spec.replicas" in record.options.get("ignoreChanges", [])
