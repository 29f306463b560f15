"""Test harness of the workload components: renders NetworkSecurity, LlmWorkload,
ChatWorkload and ChatImports for a real stack config, with the cluster-side inputs (provider,
namespace, PVCs, DB Secret, images, RRSA metadata) declared by hand the way the infrastructure
components hand them over.

`render_workloads("dev", {"llm.model": "qwen-7b-chat"})` reads `stacks/Pulumi.dev.yaml`, applies
the overrides, validates the config (ConfigError on bad input) and renders under the offline
mocks of `tools.offline.engine`. Helpers below read the rendered Kubernetes objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.chat_imports import ChatImports
from components.chat_workload import ChatWorkload
from components.config import load_config
from components.llm_workload import LlmWorkload
from components.monitoring import LlmMonitoring
from components.network_security import NetworkSecurity
from components.registry import image_reference
from tools.offline.engine import Rendering, render_program
from tools.offline.stack_files import apply_overrides, read_stack_file

MODEL_PVC = "llm-model"
MODEL_WRITER_PVC = "llm-model-writer"
KB_PVC = "chat-kb"
DB_SECRET = "adb-connection"
REGISTRY = "registry-vpc.cn-hangzhou.aliyuncs.com/chatchat"
# What the cluster's rrsa_metadata carries (pulumi_alicloud ManagedKubernetesRrsaMetadata).
RRSA = {
    "ram_oidc_provider_arn": "acs:ram::1234567890:oidc-provider/ack-rrsa-c0ffee",
    "rrsa_oidc_issuer_url": "https://oidc-ack-cn-hangzhou.oss-cn-hangzhou.aliyuncs.com/c0ffee",
}
KUBECONFIG = "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n"


def declare_workloads() -> None:
    """What __main__.py declares for the workloads, with the infrastructure as literals."""
    cfg = load_config()
    provider = k8s.Provider("k8s", kubeconfig=KUBECONFIG)
    namespace = k8s.core.v1.Namespace(
        "namespace", metadata={"name": cfg.release}, opts=pulumi.ResourceOptions(provider=provider)
    )
    ns_name = namespace.metadata["name"]
    security = NetworkSecurity("security", cfg, provider=provider, namespace=ns_name)
    llm = LlmWorkload(
        "llm",
        cfg,
        provider=provider,
        namespace=ns_name,
        image=image_reference(f"{REGISTRY}/llm", cfg.image("llm")),
        model_pvc_name=cfg.llm.model_pvc or MODEL_PVC,
        model_writer_pvc_name=cfg.llm.model_pvc or MODEL_WRITER_PVC,
        api_key_secret_name=security.api_key_secret_name,
    )
    chat = ChatWorkload(
        "chat",
        cfg,
        provider=provider,
        namespace=ns_name,
        image=image_reference(f"{REGISTRY}/chat", cfg.image("chat")),
        model_pvc_name=cfg.llm.model_pvc or MODEL_PVC,
        kb_pvc_name=cfg.chat.kb_pvc or KB_PVC,
        api_key_secret_name=security.api_key_secret_name,
        llm_service_name=llm.service_name,
        db_secret_name=DB_SECRET if cfg.db.db_type == "adb" else None,
    )
    if cfg.chat.imports:
        ChatImports(
            "imports",
            cfg,
            provider=provider,
            namespace=ns_name,
            repository=cfg.chat.image.repository or f"{REGISTRY}/chat",
            model_pvc_name=cfg.llm.model_pvc or MODEL_PVC,
            chat_api_url=chat.api_url,
            api_key_secret_name=security.api_key_secret_name,
            rrsa=RRSA,
            db_secret_name=DB_SECRET if cfg.db.db_type == "adb" else None,
            opts=pulumi.ResourceOptions(depends_on=[chat]),
        )
    if cfg.monitoring.enabled:
        LlmMonitoring("llm-monitoring", cfg, provider=provider, namespace=ns_name)
    pulumi.export("chatApiKey", security.chat_api_key)
    pulumi.export("chatWebUrl", chat.web_url)
    pulumi.export("llmEndpoint", llm.endpoint)


def render_workloads(stack: str, overrides: Mapping[str, Any] | None = None) -> Rendering:
    config = read_stack_file(stack)
    if overrides:
        config = apply_overrides(config, overrides)
    return render_program(declare_workloads, config, stack)


def manifests(rendering: Rendering) -> list[dict[str, Any]]:
    """Every Kubernetes object as the provider would send it (secrets unwrapped)."""
    return [
        r.plain_inputs()
        for r in rendering.resources
        if r.type.startswith("kubernetes:") and r.custom
    ]


def objects_of(rendering: Rendering, kind: str) -> list[dict[str, Any]]:
    return [m for m in manifests(rendering) if m["kind"] == kind]


def one_object(rendering: Rendering, kind: str, name: str) -> dict[str, Any]:
    found = [m for m in objects_of(rendering, kind) if m["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def deployment(rendering: Rendering, side: str) -> dict[str, Any]:
    return one_object(rendering, "Deployment", f"{side}-{rendering.config.release}")


def container(workload: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    containers = workload["spec"]["template"]["spec"]["containers"]
    return containers[0] if name is None else next(c for c in containers if c["name"] == name)


def env_of(container_spec: dict[str, Any]) -> dict[str, Any]:
    """Env name -> literal value, or ("secret", name, key) for a secretKeyRef."""
    result: dict[str, Any] = {}
    for item in container_spec.get("env", []):
        ref = item.get("valueFrom", {}).get("secretKeyRef")
        result[item["name"]] = ("secret", ref["name"], ref["key"]) if ref else item["value"]
    return result


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Kubernetes LabelSelector semantics (matchLabels and matchExpressions)."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True
