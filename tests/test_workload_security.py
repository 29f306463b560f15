"""The locked-down namespace: NetworkPolicies that select the pods they mean, non-root pods,
Services that stay private, generated API keys, and manifests valid for the cluster's Kubernetes.
"""

from __future__ import annotations

import copy
import re

import kubernetes_validate
import pytest
from kubernetes_validate.utils import all_versions, major_minor

from components.config import ConfigError
from components.network_security import network_policies
from components.workload_pod import RUN_AS_UID
from tests.workload_harness import (
    container,
    deployment,
    env_of,
    manifests,
    objects_of,
    one_object,
    render_workloads,
    selector_matches,
)
from tools.checks import crd_schemas
from tools.offline.wire import Secret

STACKS = ("dev", "staging", "prod")
# Variants that render objects the shipped stacks do not: ECI pods, LoadBalancers, no Job.
VARIANTS = {
    "dev-eci": (
        "dev",
        {
            "llm.model": "qwen-7b-chat",
            "llm.pod.instanceType": "eci",
            "chat.pod.instanceType": "eci",
        },
    ),
    "dev-adb-slb": (
        "dev",
        {
            "db.dbType": "adb",
            "chat.service.type": "LoadBalancer",
            "llm.service.type": "LoadBalancer",
        },
    ),
    "prod-gpu-chat": ("prod", {"chat.pod.resources": {"limits": {"nvidia.com/gpu": "1"}}}),
    "dev-eci-gpu-chat": (
        "dev",
        {
            "chat.pod.instanceType": "eci",
            "chat.pod.resources": {"limits": {"nvidia.com/gpu": "1"}},
            "chat.pod.eciSpecs": ["ecs.gn7i-c8g1.2xlarge"],
        },
    ),
    "prod-public": (
        "prod",
        {"chat.service.type": "LoadBalancer", "chat.service.allowPublic": True},
    ),
}


def _pods(rendering) -> dict[str, dict]:
    """Pod templates by component label: llm, chat and (aiacc models) llm-convert."""
    pods = {}
    for kind in ("Deployment", "Job"):
        for workload in objects_of(rendering, kind):
            template = workload["spec"]["template"]
            pods[template["metadata"]["labels"]["app.kubernetes.io/component"]] = template
    return pods


def _selected(selector: dict, pods: dict[str, dict]) -> set[str]:
    return {
        name for name, pod in pods.items() if selector_matches(selector, pod["metadata"]["labels"])
    }


def _ports(pod: dict) -> set[int]:
    return {p["containerPort"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}


def _policy(rendering, role: str) -> dict:
    return one_object(rendering, "NetworkPolicy", f"{rendering.config.release}-{role}")["spec"]


@pytest.mark.parametrize("case", [*STACKS, *VARIANTS])
def test_network_policies_select_the_pods_they_mean(case):
    stack, overrides = VARIANTS.get(case, (case, {}))
    rendering = render_workloads(stack, overrides)
    pods = _pods(rendering)
    everyone = set(pods)
    assert {"llm", "chat"} <= everyone

    deny = _policy(rendering, "default-deny")
    assert _selected(deny["podSelector"], pods) == everyone
    assert deny["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in deny and "egress" not in deny
    dns = _policy(rendering, "allow-dns")
    assert _selected(dns["podSelector"], pods) == everyone
    (rule,) = dns["egress"]
    assert rule["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    assert rule["to"][1] == {"ipBlock": {"cidr": "169.254.20.10/32"}}
    assert {(p["protocol"], p["port"]) for p in rule["ports"]} == {("UDP", 53), ("TCP", 53)}

    llm_in = _policy(rendering, "llm-ingress")
    assert _selected(llm_in["podSelector"], pods) == {"llm"}
    (rule,) = llm_in["ingress"]
    peers = [p for p in rule["from"] if "podSelector" in p]
    assert [_selected(p["podSelector"], pods) for p in peers] == [{"chat"}]
    assert {p["port"] for p in rule["ports"]} == {8888} <= _ports(pods["llm"])

    chat_in = _policy(rendering, "chat-ingress")
    assert _selected(chat_in["podSelector"], pods) == {"chat"}
    rule, *others = chat_in["ingress"]
    assert [p["ipBlock"]["cidr"] for p in rule["from"]] == rendering.config.chat_allowed_cidrs()
    assert {p["port"] for p in rule["ports"]} == {8501, 7861} == _ports(pods["chat"])
    # the others: the metrics scraper (its namespace) and bulk-import pods, each the API only
    from_imports = [r for r in others if any("podSelector" in p for p in r["from"])]
    scrape = [r for r in others if r not in from_imports]
    assert [{p["port"] for p in r["ports"]} for r in scrape] == [{7861}]
    # bulk-import pods reach the API only, and only where the stack declares imports
    assert bool(from_imports) == ("import" in pods) == bool(rendering.config.chat.imports)
    for rule in from_imports:
        assert [_selected(p["podSelector"], pods) for p in rule["from"]] == [{"import"}]
        assert {p["port"] for p in rule["ports"]} == {7861}

    chat_out = _policy(rendering, "chat-egress")
    assert _selected(chat_out["podSelector"], pods) == {"chat"}
    to_llm = chat_out["egress"][0]
    assert [_selected(p["podSelector"], pods) for p in to_llm["to"]] == [{"llm"}]
    assert {p["port"] for p in to_llm["ports"]} == {8888}


def test_import_pods_reach_the_chat_api_and_adb_only():
    rendering = render_workloads("staging")  # an OSS import, vectors in ADB
    pods = _pods(rendering)
    egress = _policy(rendering, "import-egress")
    assert _selected(egress["podSelector"], pods) == {"import"}
    to_chat, to_adb = egress["egress"]
    assert [_selected(p["podSelector"], pods) for p in to_chat["to"]] == [{"chat"}]
    assert to_chat["ports"] == [{"protocol": "TCP", "port": 7861}]
    assert to_adb == {
        "to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}],
        "ports": [{"protocol": "TCP", "port": 5432}],
    }
    faiss = render_workloads(
        "dev", {"chat.imports": [{"knowledgeBase": "docs", "source": {"pvc": "corpus"}}]}
    )
    assert len(_policy(faiss, "import-egress")["egress"]) == 1  # the chat API only


def test_chat_reaches_adb_only_when_the_vectors_live_there():
    faiss = _policy(render_workloads("dev"), "chat-egress")["egress"]
    adb = _policy(render_workloads("staging"), "chat-egress")["egress"]
    assert len(faiss) == 1
    assert adb[1] == {
        "to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}],
        "ports": [{"protocol": "TCP", "port": 5432}],
    }


def test_llm_has_no_egress_beyond_dns():
    rendering = render_workloads("prod")
    pods = _pods(rendering)
    for role, spec in network_policies(rendering.config).items():
        if "Egress" in spec["policyTypes"] and spec.get("egress"):
            selected = _selected(spec["podSelector"], pods)
            assert "llm" not in selected or role == "allow-dns", role


def test_services_and_budgets_select_only_their_workloads_pods():
    rendering = render_workloads("prod")  # aiacc model: the Job's pods exist too
    pods = _pods(rendering)
    for side in ("llm", "chat"):
        service = one_object(rendering, "Service", f"{side}-chatchat")
        assert _selected({"matchLabels": service["spec"]["selector"]}, pods) == {side}
        budget = one_object(rendering, "PodDisruptionBudget", f"{side}-chatchat")
        assert _selected(budget["spec"]["selector"], pods) == {side}


@pytest.mark.parametrize("case", [*STACKS, *VARIANTS])
def test_every_pod_runs_non_root_without_privileges(case):
    stack, overrides = VARIANTS.get(case, (case, {}))
    rendering = render_workloads(stack, overrides)
    for account in objects_of(rendering, "ServiceAccount"):
        assert account["automountServiceAccountToken"] is False
    for name, pod in _pods(rendering).items():
        spec = pod["spec"]
        assert spec["automountServiceAccountToken"] is False, name
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == RUN_AS_UID
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        tmp = next(v for v in spec["volumes"] if v["name"] == "tmp")
        assert tmp == {"name": "tmp", "emptyDir": {}}
        for c in spec["containers"] + spec.get("initContainers", []):
            security = c["securityContext"]
            assert security["allowPrivilegeEscalation"] is False
            assert security["privileged"] is False
            assert security["capabilities"] == {"drop": ["ALL"]}
            assert security["readOnlyRootFilesystem"] is True
            assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
            assert re.search(r":[A-Za-z0-9_][A-Za-z0-9_.-]*$", c["image"]), c["image"]
            assert not c["image"].endswith(":latest")


def test_latest_image_tags_are_refused():
    with pytest.raises(ConfigError) as caught:
        render_workloads("dev", {"llm.image.tag": "latest"})
    assert caught.value.problems[0][0] == "llm.image.tag"


def test_services_are_cluster_internal_by_default():
    for stack in STACKS:
        for service in objects_of(render_workloads(stack), "Service"):
            assert service["spec"]["type"] == "ClusterIP"
            assert "loadBalancerSourceRanges" not in service["spec"]


def test_chat_ports_admit_only_the_vpc_unless_allowed_cidrs_are_given():
    for stack in STACKS:
        rendering = render_workloads(stack)
        rule = _policy(rendering, "chat-ingress")["ingress"][0]  # others: scraper, imports
        expected = rendering.config.chat.allowed_cidrs or [rendering.config.network.vpc_cidr]
        assert [p["ipBlock"]["cidr"] for p in rule["from"]] == expected
    narrow = render_workloads("dev", {"chat.allowedCidrs": ["10.8.0.0/24"]})
    rule, *_scraper = _policy(narrow, "chat-ingress")["ingress"]
    assert [p["ipBlock"]["cidr"] for p in rule["from"]] == ["10.8.0.0/24"]


def test_a_load_balancer_is_an_internal_slb_limited_to_the_allowed_cidrs():
    rendering = render_workloads(
        "dev", {"chat.service.type": "LoadBalancer", "chat.allowedCidrs": ["10.1.0.0/16"]}
    )
    chat = one_object(rendering, "Service", "chat-chatchat")
    assert (
        chat["metadata"]["annotations"][
            "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-address-type"
        ]
        == "intranet"
    )
    assert chat["spec"]["loadBalancerSourceRanges"] == ["10.1.0.0/16"]
    assert chat["spec"]["externalTrafficPolicy"] == "Local"  # keeps the client address
    public = one_object(
        render_workloads(
            "dev", {"chat.service.type": "LoadBalancer", "chat.service.allowPublic": True}
        ),
        "Service",
        "chat-chatchat",
    )
    assert (
        public["metadata"]["annotations"][
            "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-address-type"
        ]
        == "internet"
    )


def test_api_keys_are_generated_kept_secret_and_wired_into_both_pods():
    rendering = render_workloads("dev")
    record = rendering.one("kubernetes:core/v1:Secret")
    assert isinstance(record.inputs["stringData"], Secret)  # never in plain state or previews
    keys = record.plain_inputs()["stringData"]
    assert set(keys) == {"chat-api-key", "llm-api-key"}
    assert keys["chat-api-key"] != keys["llm-api-key"] and len(keys["chat-api-key"]) >= 32
    name = record.inputs["metadata"]["name"]
    llm_env = env_of(container(deployment(rendering, "llm")))
    chat_env = env_of(container(deployment(rendering, "chat")))
    assert llm_env["LLM_API_KEY"] == chat_env["LLM_API_KEY"] == ("secret", name, "llm-api-key")
    assert chat_env["CHAT_API_KEY"] == ("secret", name, "chat-api-key")
    exported = rendering.outputs["chatApiKey"]
    assert isinstance(exported, Secret) and exported.value == keys["chat-api-key"]


def _schema_version(rendering) -> str:
    """The cluster's Kubernetes version (from cluster.version) among the shipped schemas."""
    wanted = major_minor(rendering.config.cluster.version)
    assert wanted in {major_minor(v) for v in all_versions()}, f"no {wanted} schema shipped"
    return rendering.config.cluster.version.split("-")[0]


@pytest.mark.parametrize("case", [*STACKS, *VARIANTS])
def test_every_object_validates_strictly_against_the_clusters_kubernetes(case):
    stack, overrides = VARIANTS.get(case, (case, {}))
    rendering = render_workloads(stack, overrides)
    version = _schema_version(rendering)
    objects = manifests(rendering)
    assert len(objects) >= 13  # namespace, 2 accounts, deployments, services, secret, 5 policies
    for manifest in objects:
        if crd_schemas.is_custom(manifest):  # ScaledObject, ServiceMonitor, PrometheusRule
            crd_schemas.validate(manifest)
        else:
            kubernetes_validate.validate(manifest, version, strict=True)


def test_strict_validation_rejects_a_field_kubernetes_does_not_know():
    rendering = render_workloads("dev")
    broken = copy.deepcopy(deployment(rendering, "llm"))
    container(broken)["readinessProbes"] = container(broken).pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, _schema_version(rendering), strict=True)


def test_probes_tell_the_truth():
    rendering = render_workloads("dev")
    llm, chat = container(deployment(rendering, "llm")), container(deployment(rendering, "chat"))
    assert llm["readinessProbe"]["httpGet"] == {"path": "/v1/models", "port": 8888}
    assert llm["startupProbe"]["httpGet"] == {"path": "/v1/models", "port": 8888}
    assert llm["livenessProbe"]["httpGet"] == {"path": "/health", "port": 8888}
    startup = llm["startupProbe"]
    # loading a 13B model from network storage takes well over ten minutes on a cold node
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 30 * 60
    # the chat is Ready only while its knowledge-base database answers; alive regardless
    assert chat["readinessProbe"]["httpGet"] == {"path": "/ready", "port": 7861}
    for probe in ("startupProbe", "livenessProbe"):
        assert chat[probe]["httpGet"] == {"path": "/health", "port": 7861}


def test_vllm_served_models_are_probed_where_vllm_answers_without_a_key():
    # vLLM's /v1/models needs the API key; it listens only once the model is loaded
    llm = container(deployment(render_workloads("dev", {"llm.model": "qwen-7b-chat"}), "llm"))
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert llm[probe]["httpGet"] == {"path": "/health", "port": 8888}


def test_chat_pods_say_how_many_can_run_at_once():
    # faiss KBs allow one writer: the service refuses to create one when this is above 1
    single = deployment(render_workloads("dev"), "chat")
    assert single["spec"]["strategy"] == {"type": "Recreate"}
    assert env_of(container(single))["CHAT_REPLICAS"] == "1"
    rolling = deployment(render_workloads("prod"), "chat")  # adb on a shared NAS volume
    assert rolling["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 1
    replicas = rolling["spec"]["replicas"]
    assert env_of(container(rolling))["CHAT_REPLICAS"] == str(replicas + 1)
