"""Queue-driven llm replicas (issue 16, item 2): the config keys and their rules, the KEDA
ScaledObject the stacks render, and the GPU pool able to follow the llm down to zero."""

from __future__ import annotations

import pytest

from components.config import parse_config
from components.llm_autoscaling import scaled_object_spec
from components.monitoring import wake_window_seconds
from tests.conftest import ours
from tests.test_config import MINIMAL, problems_of, with_
from tests.workload_harness import deployment, objects_of, one_object, render_workloads

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


def test_scale_to_zero_is_refused_in_production_and_needs_no_schedule():
    raw = with_(SCALED, llm__autoscaling__minReplicas=0, production=True)
    assert "production" in problems_of(raw)["llm.autoscaling.minReplicas"]
    # a refused request wakes the llm (the chat trigger): a schedule is optional
    cfg = parse_config(with_(SCALED, llm__autoscaling__minReplicas=0), "dev")
    assert [t["type"] for t in scaled_object_spec(cfg)["triggers"]] == ["prometheus"] * 2


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


def _trigger(spec: dict, name: str) -> dict:
    (found,) = [t for t in spec["triggers"] if t["name"] == name]
    return found


def test_the_first_request_after_idle_wakes_the_llm():
    rendering = render_workloads("dev")  # minReplicas 0
    spec = objects_of(rendering, "ScaledObject")[0]["spec"]
    wake = _trigger(spec, "llm-wake-on-request")["metadata"]
    # the chat API's counter of requests refused for want of an llm, over the wake window, of
    # this release's chat Service (its ServiceMonitor's targets carry service=chat-<release>)
    window = wake_window_seconds(rendering.config)
    assert "increase(chat_llm_unavailable_total{" in wake["query"]
    assert 'namespace="chatchat",service="chat-chatchat"' in wake["query"]
    assert f"[{window}s]" in wake["query"] and window >= 4 * 30
    # any refusal activates (KEDA: value > activationThreshold); clamped to 1 of threshold 1,
    # it never asks for more than one replica: the queue trigger sizes the llm once it runs
    assert wake["query"].startswith("clamp_max(") and wake["query"].endswith(", 1)")
    assert (wake["activationThreshold"], wake["threshold"]) == ("0", "1")
    assert wake["ignoreNullValues"] == "true"  # chat not scraped yet: nothing to wake for
    one_object(rendering, "ServiceMonitor", "chat-chatchat")  # the counter is scraped


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_stacks_that_never_reach_zero_have_no_wake_trigger(stack):
    spec = objects_of(render_workloads(stack), "ScaledObject")[0]["spec"]
    assert [t["name"] for t in spec["triggers"]] == ["llm-queue"]


def test_a_longer_scrape_interval_widens_the_wake_window():
    cfg = parse_config(with_(ours("dev"), monitoring__scrapeIntervalSeconds=60), "dev")
    assert wake_window_seconds(cfg) == 240


BASIC = {"monitoring.auth": "basic", "monitoring.username": "LTAI-read", "prometheusPassword": "pw"}


def test_basic_auth_reaches_every_prometheus_trigger_through_a_trigger_authentication():
    rendering = render_workloads("dev", BASIC)
    (auth,) = objects_of(rendering, "TriggerAuthentication")
    secret = one_object(rendering, "Secret", auth["metadata"]["name"])
    refs = {r["parameter"]: (r["name"], r["key"]) for r in auth["spec"]["secretTargetRef"]}
    # KEDA's prometheus scaler reads authParams username and password (authModes basic)
    assert set(refs) == {"username", "password"}
    assert all(name == secret["metadata"]["name"] for name, _ in refs.values())
    assert secret["stringData"][refs["username"][1]] == "LTAI-read"
    assert secret["stringData"][refs["password"][1]] == "pw"
    spec = objects_of(rendering, "ScaledObject")[0]["spec"]
    prometheus = [t for t in spec["triggers"] if t["type"] == "prometheus"]
    assert len(prometheus) == 2
    for trigger in prometheus:
        assert trigger["metadata"]["authModes"] == "basic"
        assert trigger["authenticationRef"] == {"name": auth["metadata"]["name"]}
    # the password is a Pulumi secret in the plan, never plain
    (record,) = [
        r
        for r in rendering.by_type("kubernetes:core/v1:Secret")
        if r.inputs["metadata"]["name"] == auth["metadata"]["name"]
    ]
    assert "pw" not in str(record.inputs)


def test_no_auth_renders_no_trigger_authentication():
    rendering = render_workloads("dev")
    assert objects_of(rendering, "TriggerAuthentication") == []
    spec = objects_of(rendering, "ScaledObject")[0]["spec"]
    assert not [t for t in spec["triggers"] if "authenticationRef" in t]


@pytest.mark.parametrize(
    ("monitoring", "password", "key", "words"),
    [
        ({"auth": "basic"}, "pw", "monitoring.username", "AccessKey ID"),
        ({"auth": "basic", "username": "LTAI-read"}, None, "prometheusPassword", "--secret"),
        ({"username": "LTAI-read"}, None, "monitoring.auth", "set basic"),
        ({}, "pw", "monitoring.auth", "prometheusPassword given"),
        ({"auth": "token"}, None, "monitoring.auth", "'none'"),
    ],
)
def test_basic_auth_needs_the_user_and_the_secret_together(monitoring, password, key, words):
    raw = with_(SCALED, monitoring={"prometheusUrl": URL, **monitoring})
    if password is not None:
        raw = {**raw, "prometheusPassword": password}
    assert words in problems_of(raw)[key]
