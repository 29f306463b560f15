"""Parity with the seed chart: each chart value of DESIGN.md §3 and its effect on the rendered
Kubernetes objects of the workloads (through tests/workload_harness.py and the real stack files).
"""

from __future__ import annotations

import pulumi_kubernetes as k8s
import pytest

from components.catalog import MODELS
from components.chat_workload import ChatWorkload
from components.config import load_config
from tests.workload_harness import (
    DB_SECRET,
    KB_PVC,
    KUBECONFIG,
    MODEL_PVC,
    container,
    deployment,
    env_of,
    objects_of,
    render_workloads,
)
from tools.offline.engine import RenderError, render_program
from tools.offline.stack_files import read_stack_file


def _volume(workload: dict, name: str) -> dict:
    return next(v for v in workload["spec"]["template"]["spec"]["volumes"] if v["name"] == name)


def _mount(container_spec: dict, name: str) -> dict:
    return next(m for m in container_spec["volumeMounts"] if m["name"] == name)


def test_names_and_ports_follow_the_chart():
    rendering = render_workloads("dev", {"release": "kb"})
    llm, chat = deployment(rendering, "llm"), deployment(rendering, "chat")
    assert [p["containerPort"] for p in container(llm)["ports"]] == [8888]
    assert [p["containerPort"] for p in container(chat)["ports"]] == [8501, 7861]
    services = {s["metadata"]["name"]: s for s in objects_of(rendering, "Service")}
    assert sorted(services) == ["chat-kb", "llm-kb"]
    assert [p["port"] for p in services["llm-kb"]["spec"]["ports"]] == [8888]
    assert [p["port"] for p in services["chat-kb"]["spec"]["ports"]] == [8501, 7861]
    assert env_of(container(chat))["LLM_HOST"] == "llm-kb"


@pytest.mark.parametrize("model", ["qwen-14b-chat-aiacc", "chatglm2-6b", "baichuan2-7b-chat"])
def test_llm_model_reaches_both_pods(model):
    rendering = render_workloads("prod", {"llm.model": model})
    llm = deployment(rendering, "llm")
    assert env_of(container(llm))["LLM_MODEL"] == model
    assert llm["spec"]["template"]["metadata"]["annotations"]["chatchat.io/model"] == model
    assert env_of(container(deployment(rendering, "chat")))["LLM_MODEL"] == model


@pytest.mark.parametrize(
    ("model", "load8bit", "expected"),
    [
        ("qwen-7b-chat-aiacc", True, "true"),
        ("qwen-7b-chat-aiacc", False, "false"),
        ("chatglm2-6b", True, "false"),  # vLLM serves open-source models fp16
        ("qwen-7b-chat", True, "false"),  # the chart forces int8 off for open-source qwen
    ],
)
def test_llm_load8bit_sets_load_8bit(model, load8bit, expected):
    rendering = render_workloads("prod", {"llm.model": model, "llm.load8bit": load8bit})
    llm = deployment(rendering, "llm")
    assert env_of(container(llm))["LOAD_8BIT"] == expected
    assert llm["spec"]["template"]["metadata"]["annotations"]["chatchat.io/load8bit"] == expected


def test_llm_model_pvc_is_mounted_read_only_at_llm_model_in_both_pods():
    for overrides, claim in (({}, MODEL_PVC), ({"llm.modelPVC": "my-models"}, "my-models")):
        rendering = render_workloads("dev", overrides)
        for side in ("llm", "chat"):
            workload = deployment(rendering, side)
            volume = _volume(workload, "llm-model")["persistentVolumeClaim"]
            assert volume == {"claimName": claim, "readOnly": True}
            assert _mount(container(workload), "llm-model") == {
                "name": "llm-model",
                "mountPath": "/llm-model",
                "readOnly": True,
            }


@pytest.mark.parametrize("side", ["llm", "chat"])
def test_pod_replicas_set_replicas_and_a_disruption_budget_above_one(side):
    # several chat replicas need a shared KB volume and vectors in ADB (faiss has one writer);
    # the chart's replica count applies while no autoscaler owns it
    base = {"chat.kb.storage": "nas", "db.dbType": "adb", "llm.autoscaling.enabled": False}
    one = render_workloads("dev", {**base, f"{side}.pod.replicas": 1})
    pools = [{"name": "a10", "maxSize": 3, "instanceTypes": ["ecs.gn7i-c8g1.2xlarge"]}]
    three = render_workloads("dev", {**base, f"{side}.pod.replicas": 3, "cluster.gpuPools": pools})
    assert deployment(one, side)["spec"]["replicas"] == 1
    assert deployment(three, side)["spec"]["replicas"] == 3
    assert not [
        p
        for p in objects_of(one, "PodDisruptionBudget")
        if p["metadata"]["name"] == f"{side}-chatchat"
    ]
    budget = next(
        p
        for p in objects_of(three, "PodDisruptionBudget")
        if p["metadata"]["name"] == f"{side}-chatchat"
    )
    assert budget["spec"]["maxUnavailable"] == 1
    assert (
        budget["spec"]["selector"]["matchLabels"]
        == deployment(three, side)["spec"]["selector"]["matchLabels"]
    )


def test_llm_instance_type_eci_adds_the_chart_annotations_and_label():
    ecs = render_workloads("dev", {"llm.model": "qwen-7b-chat"})
    eci = render_workloads("dev", {"llm.model": "qwen-7b-chat", "llm.pod.instanceType": "eci"})
    ecs_meta = deployment(ecs, "llm")["spec"]["template"]["metadata"]
    meta = deployment(eci, "llm")["spec"]["template"]["metadata"]
    assert "alibabacloud.com/eci" not in ecs_meta["labels"]
    assert "k8s.aliyun.com/eci-use-specs" not in ecs_meta["annotations"]
    assert meta["labels"]["alibabacloud.com/eci"] == "true"
    assert meta["annotations"]["k8s.aliyun.com/eci-extra-ephemeral-storage"] == "50Gi"
    specs = meta["annotations"]["k8s.aliyun.com/eci-use-specs"].split(",")
    assert specs and all(s.startswith(("ecs.gn7i-", "ecs.gn6v-", "ecs.gn6e-")) for s in specs)


def test_chat_instance_type_eci_asks_for_a_cpu_spec_matching_its_resources():
    rendering = render_workloads("dev", {"chat.pod.instanceType": "eci"})
    meta = deployment(rendering, "chat")["spec"]["template"]["metadata"]
    assert meta["labels"]["alibabacloud.com/eci"] == "true"
    assert meta["annotations"]["k8s.aliyun.com/eci-use-specs"] == "4-8Gi"
    assert meta["annotations"]["k8s.aliyun.com/eci-extra-ephemeral-storage"] == "50Gi"
    spec = deployment(rendering, "chat")["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"type": "virtual-kubelet"}
    assert {
        "key": "virtual-kubelet.io/provider",
        "operator": "Exists",
        "effect": "NoSchedule",
    } in spec["tolerations"]


def test_chat_kb_pvc_is_mounted_writable_at_kb():
    for overrides, claim in (({}, KB_PVC), ({"chat.kbPVC": "team-kb"}, "team-kb")):
        chat = deployment(render_workloads("dev", overrides), "chat")
        assert _volume(chat, "kb")["persistentVolumeClaim"] == {"claimName": claim}
        assert _mount(container(chat), "kb") == {"name": "kb", "mountPath": "/kb"}
        assert env_of(container(chat))["KB_ROOT"] == "/kb"


def test_db_type_adb_brings_pg_env_from_the_secret():
    env = env_of(container(deployment(render_workloads("staging"), "chat")))
    assert env["DEFAULT_VS_TYPE"] == "adb"
    for key in ("PG_HOST", "PG_PORT", "PG_DATABASE", "PG_USER", "PG_PASSWORD"):
        assert env[key] == ("secret", DB_SECRET, key)


def test_db_type_faiss_has_no_pg_env():
    env = env_of(container(deployment(render_workloads("dev"), "chat")))
    assert env["DEFAULT_VS_TYPE"] == "faiss"
    assert not [name for name in env if name.startswith("PG_")]


def test_db_embedding_model_sets_embedding_model():
    chat = deployment(render_workloads("dev", {"db.embeddingModel": "bge-small-zh"}), "chat")
    assert env_of(container(chat))["EMBEDDING_MODEL"] == "bge-small-zh"


def test_chat_never_rebuilds_the_vector_store_at_start():
    for stack in ("dev", "staging", "prod"):
        rendering = render_workloads(stack)
        for kind in ("Deployment", "Job"):
            for workload in objects_of(rendering, kind):
                spec = workload["spec"]["template"]["spec"]
                for c in spec["containers"] + spec.get("initContainers", []):
                    assert "--recreate-vs" not in " ".join(c.get("command", []) + c.get("args", []))


def test_every_catalog_model_renders_on_a_pool_that_fits():
    for name, model in MODELS.items():
        rendering = render_workloads("prod", {"llm.model": name, "llm.load8bit": True})
        assert env_of(container(deployment(rendering, "llm")))["LLM_MODEL"] == name
        jobs = objects_of(rendering, "Job")
        assert len(jobs) == (1 if model.is_aiacc else 0)


def test_chat_refuses_a_db_secret_that_does_not_match_db_type():
    def program():
        cfg = load_config()  # dev: faiss
        provider = k8s.Provider("k8s", kubeconfig=KUBECONFIG)
        ChatWorkload(
            "chat",
            cfg,
            provider=provider,
            namespace="chatchat",
            image="chat:1",
            model_pvc_name="m",
            kb_pvc_name="kb",
            api_key_secret_name="k",
            llm_service_name="llm-chatchat",
            db_secret_name=DB_SECRET,
        )

    with pytest.raises(RenderError, match=r"db\.dbType=faiss: db_secret_name must be given"):
        render_program(program, read_stack_file("dev"), "dev")


@pytest.mark.parametrize(
    ("overrides", "strategy"),
    [
        ({}, "Recreate"),  # dev: faiss on a ReadWriteOnce disk
        ({"chat.kb.storage": "nas"}, "Recreate"),  # shared volume, but faiss has one writer
        ({"chat.kb.storage": "nas", "db.dbType": "adb"}, "RollingUpdate"),
    ],
)
def test_chat_pods_overlap_during_a_rollout_only_when_they_can_share_the_kb(overrides, strategy):
    chat = deployment(render_workloads("dev", overrides), "chat")
    assert chat["spec"]["strategy"]["type"] == strategy
