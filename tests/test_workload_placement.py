"""Where the pods run (GPU fit, GPU taint, ECI) and the DeepGPU-LLM conversion Job."""

from __future__ import annotations

import pytest

from components.catalog import MODELS, gpu_family_of
from components.config import ConfigError
from components.llm_workload import CONVERSION_MARKER
from tests.workload_harness import (
    MODEL_WRITER_PVC,
    container,
    deployment,
    env_of,
    objects_of,
    render_workloads,
)

GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def _pod_spec(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def _required_pools(workload: dict) -> list[str]:
    terms = _pod_spec(workload)["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]["nodeSelectorTerms"]
    assert len(terms) == 1
    (expression,) = terms[0]["matchExpressions"]
    assert expression["key"] == "chatchat.io/node-pool" and expression["operator"] == "In"
    return expression["values"]


def test_13b_fp16_is_refused_on_a_24gb_pool_naming_the_model_and_pool():
    with pytest.raises(ConfigError) as caught:
        render_workloads("dev", {"llm.model": "llama-2-13b-hf-aiacc", "llm.load8bit": False})
    (problem,) = caught.value.problems
    assert problem[0] == "llm.model"
    assert "llama-2-13b-hf-aiacc (fp16)" in problem[1]
    assert "a10 (ecs.gn7i-c8g1.2xlarge)" in problem[1]


def test_13b_int8_fits_the_24gb_pool():
    rendering = render_workloads("dev", {"llm.model": "llama-2-13b-hf-aiacc", "llm.load8bit": True})
    assert _required_pools(deployment(rendering, "llm")) == ["a10"]


def test_open_source_qwen_14b_is_refused_on_a10_even_with_load8bit():
    # int8 is forced off for open-source qwen, so 14B needs more than an A10's 24 GB
    with pytest.raises(ConfigError, match="qwen-14b-chat \\(fp16\\)"):
        render_workloads("dev", {"llm.model": "qwen-14b-chat", "llm.load8bit": True})


def test_llm_selects_only_the_pools_whose_card_fits():
    # prod has a10 (A10 24 GB) and v100 (gn6e, V100 32 GB): a 13B fp16 model fits only the V100
    small = render_workloads("prod", {"llm.model": "qwen-7b-chat-aiacc"})
    large = render_workloads("prod", {"llm.model": "llama-2-13b-hf-aiacc", "llm.load8bit": False})
    assert _required_pools(deployment(small, "llm")) == ["a10", "v100"]
    assert _required_pools(deployment(large, "llm")) == ["v100"]


def test_llm_tolerates_the_gpu_taint_and_never_selects_the_system_pool():
    for stack in ("dev", "staging", "prod"):
        llm = deployment(render_workloads(stack), "llm")
        assert GPU_TOLERATION in _pod_spec(llm)["tolerations"]
        assert "system" not in _required_pools(llm)
        assert container(llm)["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_a_gpu_pool_named_system_is_refused():
    pools = [{"name": "system", "instanceTypes": ["ecs.gn7i-c8g1.2xlarge"], "maxSize": 1}]
    with pytest.raises(ConfigError, match="system pool"):
        render_workloads("dev", {"cluster.gpuPools": pools})


def test_chat_stays_on_the_system_pool_without_the_gpu_toleration():
    chat = _pod_spec(deployment(render_workloads("prod"), "chat"))
    assert chat["nodeSelector"] == {"chatchat.io/node-pool": "system"}
    assert not [t for t in chat.get("tolerations", []) if t.get("key") == "nvidia.com/gpu"]


def test_a_cpu_chat_refuses_a_configured_gpu_toleration():
    toleration = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    for tolerations in ([toleration], [{"operator": "Exists"}]):
        with pytest.raises(ConfigError) as caught:
            render_workloads("dev", {"chat.pod.tolerations": tolerations})
        assert caught.value.problems[0][0] == "chat.pod.tolerations[0]"
        assert "chat.pod.resources.limits" in caught.value.problems[0][1]


GPU_CHAT = {"chat.pod.resources": {"limits": {"nvidia.com/gpu": "1"}}}


def test_a_gpu_chat_lands_on_a_gpu_pool_with_the_toleration_cuda_env_and_image():
    rendering = render_workloads("prod", GPU_CHAT)
    chat = deployment(rendering, "chat")
    spec, app = _pod_spec(chat), container(chat)
    assert GPU_TOLERATION in spec["tolerations"]
    assert _required_pools(chat) == ["a10", "v100"]  # the embedding model fits every card
    assert "nodeSelector" not in spec  # not pinned to the CPU system pool
    # extended resources: the request is rendered equal to the limit
    assert app["resources"]["requests"]["nvidia.com/gpu"] == "1"
    assert app["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert env_of(app)["EMBEDDING_DEVICE"] == "cuda"
    assert app["image"].endswith(f"/chat:{rendering.config.chat.image.tag}-cuda")
    # the llm keeps its own placement
    assert _required_pools(deployment(rendering, "llm")) == ["a10", "v100"]


def test_a_gpu_chat_rolls_out_without_asking_for_an_extra_card():
    cpu = deployment(render_workloads("prod"), "chat")
    gpu = deployment(render_workloads("prod", GPU_CHAT), "chat")
    assert cpu["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert gpu["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    assert env_of(container(cpu))["CHAT_REPLICAS"] == "3"
    assert env_of(container(gpu))["CHAT_REPLICAS"] == "2"


def test_a_cpu_chat_keeps_the_cpu_image_and_no_device_env():
    rendering = render_workloads("prod")
    app = container(deployment(rendering, "chat"))
    assert app["image"].endswith(f"/chat:{rendering.config.chat.image.tag}")
    assert "EMBEDDING_DEVICE" not in env_of(app)
    assert "nvidia.com/gpu" not in app["resources"]["limits"]


def test_the_cuda_variant_can_be_chosen_without_a_gpu_and_cpu_refused_with_one():
    app = container(deployment(render_workloads("dev", {"chat.image.variant": "cuda"}), "chat"))
    assert app["image"].endswith("-cuda") and "EMBEDDING_DEVICE" not in env_of(app)
    with pytest.raises(ConfigError) as caught:
        render_workloads("dev", {**GPU_CHAT, "chat.image.variant": "cpu"})
    assert [p[0] for p in caught.value.problems] == ["chat.image.variant"]


@pytest.mark.parametrize(
    ("overrides", "key", "words"),
    [
        (
            {"cluster.gpuPools": [], "llm.pod.instanceType": "eci", "llm.model": "qwen-7b-chat"},
            "cluster.gpuPools",
            "no GPU pool",
        ),
        (
            {"chat.pod.resources": {"limits": {"nvidia.com/gpu": "2"}}},
            "chat.pod.resources.limits.nvidia.com/gpu",
            "one card",
        ),
        (
            {
                "chat.pod.resources": {
                    "requests": {"nvidia.com/gpu": "1"},
                    "limits": {"nvidia.com/gpu": "2"},
                }
            },
            "chat.pod.resources.requests.nvidia.com/gpu",
            "must equal its limit",
        ),
        ({"chat.pod.instanceType": "eci"}, "chat.pod.eciSpecs", "needs GPU ECI specs"),
        (
            {
                "chat.pod.instanceType": "eci",
                "chat.pod.eciSpecs": ["ecs.gn7i-c8g1.2xlarge", "4-8Gi"],
            },
            "chat.pod.eciSpecs",
            "4-8Gi: no allowed GPU",
        ),
    ],
)
def test_a_gpu_chat_is_refused_where_it_cannot_get_a_card(overrides, key, words):
    with pytest.raises(ConfigError) as caught:
        render_workloads("dev", {**GPU_CHAT, **overrides})
    problems = dict(caught.value.problems)
    assert key in problems and words in problems[key]


def test_a_gpu_chat_on_eci_asks_for_its_gpu_specs():
    overrides = {
        **GPU_CHAT,
        "chat.pod.instanceType": "eci",
        "chat.pod.eciSpecs": ["ecs.gn7i-c8g1.2xlarge"],
    }
    chat = deployment(render_workloads("dev", overrides), "chat")
    meta = chat["spec"]["template"]["metadata"]
    assert meta["annotations"]["k8s.aliyun.com/eci-use-specs"] == "ecs.gn7i-c8g1.2xlarge"
    assert env_of(container(chat))["EMBEDDING_DEVICE"] == "cuda"


def test_config_tolerations_labels_annotations_and_node_selector_are_merged():
    rendering = render_workloads(
        "dev",
        {
            "llm.pod.tolerations": [{"key": "dedicated", "value": "llm", "effect": "NoSchedule"}],
            "llm.pod.labels": {"team": "ai"},
            "llm.pod.annotations": {"note": "x", "chatchat.io/model": "spoofed"},
            "llm.pod.nodeSelector": {"zone": "k"},
        },
    )
    llm = deployment(rendering, "llm")
    meta, spec = llm["spec"]["template"]["metadata"], _pod_spec(llm)
    assert meta["labels"]["team"] == "ai"
    assert meta["labels"]["app.kubernetes.io/component"] == "llm"  # ours cannot be overridden
    assert meta["annotations"]["note"] == "x" and "chatchat.io/model" in meta["annotations"]
    assert meta["annotations"]["chatchat.io/model"] == "qwen-7b-chat-aiacc"
    assert {
        "key": "dedicated",
        "operator": "Equal",
        "value": "llm",
        "effect": "NoSchedule",
    } in spec["tolerations"]
    assert GPU_TOLERATION in spec["tolerations"]
    assert spec["nodeSelector"] == {"zone": "k"}


def test_default_resources_are_the_charts_and_config_overrides_them():
    defaults = render_workloads("dev")
    assert container(deployment(defaults, "llm"))["resources"]["requests"] == {
        "cpu": "2",
        "memory": "6Gi",
        "nvidia.com/gpu": "1",
    }
    assert container(deployment(defaults, "chat"))["resources"]["requests"] == {
        "cpu": "4",
        "memory": "8Gi",
    }
    bigger = render_workloads(
        "dev", {"chat.pod.resources": {"requests": {"memory": "16Gi"}, "limits": {"cpu": "8"}}}
    )
    resources = container(deployment(bigger, "chat"))["resources"]
    assert resources["requests"] == {"cpu": "4", "memory": "16Gi"}
    assert resources["limits"] == {"cpu": "8", "memory": "16Gi"}


def test_llm_eci_specs_are_single_card_v100_or_a10_that_fit_the_model():
    rendering = render_workloads(
        "dev", {"llm.model": "qwen-7b-chat", "llm.pod.instanceType": "eci"}
    )
    llm = deployment(rendering, "llm")
    specs = llm["spec"]["template"]["metadata"]["annotations"][
        "k8s.aliyun.com/eci-use-specs"
    ].split(",")
    model = MODELS["qwen-7b-chat"]
    assert specs and all(model.fits(gpu_family_of(s), False) for s in specs)
    assert not [s for s in specs if s.startswith("ecs.gn6v-")]  # 16 GB cannot hold 7B fp16
    assert "affinity" not in _pod_spec(llm)  # no GPU pool: ECI runs on the virtual node
    assert _pod_spec(llm)["nodeSelector"] == {"type": "virtual-kubelet"}
    assert container(llm)["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_configured_eci_specs_and_storage_are_used_as_given():
    rendering = render_workloads(
        "dev",
        {
            "llm.model": "chatglm2-6b",
            "llm.pod.instanceType": "eci",
            "llm.pod.eciSpecs": ["ecs.gn7i-c16g1.4xlarge"],
            "llm.pod.eciEphemeralStorageGib": 80,
        },
    )
    annotations = deployment(rendering, "llm")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["k8s.aliyun.com/eci-use-specs"] == "ecs.gn7i-c16g1.4xlarge"
    assert annotations["k8s.aliyun.com/eci-extra-ephemeral-storage"] == "80Gi"


def test_aiacc_model_on_eci_is_refused_by_config():
    with pytest.raises(ConfigError) as caught:
        render_workloads("dev", {"llm.pod.instanceType": "eci"})
    assert caught.value.problems[0][0] == "llm.pod.instanceType"
    assert "qwen-7b-chat-aiacc" in caught.value.problems[0][1]


@pytest.mark.parametrize("model", [m for m in MODELS if MODELS[m].is_aiacc])
def test_aiacc_model_gets_a_conversion_job_and_a_waiting_llm(model):
    rendering = render_workloads("prod", {"llm.model": model, "llm.load8bit": True})
    (job,) = objects_of(rendering, "Job")
    assert job["metadata"]["name"] == f"convert-{model}"
    converter = container(job)
    assert converter["command"] == [
        "python",
        "-m",
        "llm_server.convert",
        "--model",
        model,
        "--root",
        "/llm-model",
    ]
    spec = _pod_spec(job)
    writer = next(v for v in spec["volumes"] if v["name"] == "llm-model")
    assert writer["persistentVolumeClaim"] == {"claimName": MODEL_WRITER_PVC, "readOnly": False}
    assert {"name": "llm-model", "mountPath": "/llm-model", "readOnly": False} in converter[
        "volumeMounts"
    ]
    assert converter["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert GPU_TOLERATION in spec["tolerations"]
    llm = deployment(rendering, "llm")
    assert _required_pools(job) == _required_pools(llm)
    assert spec["restartPolicy"] == "Never" and job["spec"]["backoffLimit"] >= 1
    # kept until the model changes: a TTL-deleted Job would be recreated on refresh
    assert "ttlSecondsAfterFinished" not in job["spec"]
    (wait,) = _pod_spec(llm)["initContainers"]
    marker = f"/llm-model/{MODELS[model].directory}/{CONVERSION_MARKER}"
    assert marker in wait["command"][-1]


@pytest.mark.parametrize("model", [m for m in MODELS if not MODELS[m].is_aiacc])
def test_open_source_model_has_no_conversion(model):
    rendering = render_workloads("prod", {"llm.model": model, "llm.load8bit": True})
    assert objects_of(rendering, "Job") == []
    assert "initContainers" not in _pod_spec(deployment(rendering, "llm"))


def test_llm_deployment_is_declared_after_the_conversion_job_completes():
    rendering = render_workloads("dev")
    job = next(r for r in rendering.resources if r.type == "kubernetes:batch/v1:Job")
    llm = next(
        r
        for r in rendering.resources
        if r.type == "kubernetes:apps/v1:Deployment" and r.name == "llm-deployment"
    )
    assert job.urn in llm.dependencies
    assert job.options["customTimeouts"]["create"] == "90m"


def test_switching_models_makes_a_new_job():
    first = render_workloads("dev", {"llm.model": "qwen-7b-chat-aiacc"})
    second = render_workloads("dev", {"llm.model": "chatglm2-6b-aiacc"})
    (old,) = first.by_type("kubernetes:batch/v1:Job")
    (new,) = second.by_type("kubernetes:batch/v1:Job")
    assert old.urn != new.urn  # a new logical resource: Pulumi creates it, deletes the old one
    assert new.inputs["metadata"]["name"] == "convert-chatglm2-6b-aiacc"


def test_conversion_may_preempt_the_old_llm_on_a_full_gpu_pool():
    rendering = render_workloads("dev")  # one A10 node: the old llm pod holds the only GPU
    (job,) = objects_of(rendering, "Job")
    (priority,) = objects_of(rendering, "PriorityClass")
    assert _pod_spec(job)["priorityClassName"] == priority["metadata"]["name"]
    llm_priority = _pod_spec(deployment(rendering, "llm")).get("priorityClassName")
    assert llm_priority is None  # the llm runs at the default priority 0
    assert priority["value"] > 0 and priority["globalDefault"] is False
    assert priority["preemptionPolicy"] == "PreemptLowerPriority"
    assert objects_of(render_workloads("dev", {"llm.model": "qwen-7b-chat"}), "PriorityClass") == []
