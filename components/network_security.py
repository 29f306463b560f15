"""The release namespace locked down: default-deny NetworkPolicies with the few flows the
workloads need, and the generated API keys of the chat and llm APIs.

Flows allowed (everything else in the namespace is denied, in and out):
- every pod -> cluster DNS (kube-system, k8s-app=kube-dns, and ACK's NodeLocal DNSCache address)
  on 53/UDP+TCP;
- chat -> llm on 8888, and the managed Prometheus agent's namespace -> llm on 8888 and -> chat
  on 7861 (both /metrics) when `monitoring.enabled`;
- allowed CIDRs (`chat.allowedCidrs`, by default the VPC CIDR only) -> chat on 8501 and 7861
  (and -> llm on 8888 only when the llm Service is a LoadBalancer);
- chat -> ADB on 5432 inside the VPC CIDR, when `db.dbType: adb`;
- with `chat.imports`: import pods -> chat on 7861 (the API) and -> ADB on 5432 when adb; their
  source is mounted by the CSI drivers too.
The model store and the KB volume are mounted by the CSI drivers on the node, so neither the llm
nor the conversion Job needs any egress of its own.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components import workload_pod as wp
from components.config import StackConfig
from components.contract import (
    ADB_PORT,
    CHAT_API_PORT,
    CHAT_WEB_PORT,
    IMPORT_COMPONENT,
    LLM_PORT,
)

NODE_LOCAL_DNS = "169.254.20.10/32"  # ack-node-local-dns: pods resolve through this address
API_KEY_LENGTH = 40


def _tcp(*ports: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": port} for port in ports]


def _cidrs(cidrs: list[str]) -> list[dict[str, Any]]:
    return [{"ipBlock": {"cidr": cidr}} for cidr in cidrs]


def network_policies(cfg: StackConfig) -> dict[str, dict[str, Any]]:
    """Role -> NetworkPolicy spec. A table so tests can check every selector against the pods."""
    chat, llm = wp.component_labels(cfg, "chat"), wp.component_labels(cfg, "llm")
    dns_peer = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
    }
    llm_sources: list[dict[str, Any]] = [{"podSelector": {"matchLabels": chat}}]
    if cfg.llm.service.type == "LoadBalancer":
        llm_sources += _cidrs(cfg.chat_allowed_cidrs())
    chat_ingress: list[dict[str, Any]] = [
        {"from": _cidrs(cfg.chat_allowed_cidrs()), "ports": _tcp(CHAT_WEB_PORT, CHAT_API_PORT)}
    ]
    if cfg.monitoring.enabled:  # the managed Prometheus agent scrapes /metrics on the API ports
        scraper = cfg.monitoring.scraper_namespace
        scraper_peer = {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": scraper}}
        }
        llm_sources.append(scraper_peer)
        chat_ingress.append({"from": [scraper_peer], "ports": _tcp(CHAT_API_PORT)})
    chat_egress = [{"to": [{"podSelector": {"matchLabels": llm}}], "ports": _tcp(LLM_PORT)}]
    to_adb = {"to": _cidrs([cfg.network.vpc_cidr]), "ports": _tcp(ADB_PORT)}
    if cfg.db.db_type == "adb":
        chat_egress.append(to_adb)
    imports: dict[str, dict[str, Any]] = {}
    if cfg.chat.imports:
        importer = wp.component_labels(cfg, IMPORT_COMPONENT)
        chat_ingress.append(
            {"from": [{"podSelector": {"matchLabels": importer}}], "ports": _tcp(CHAT_API_PORT)}
        )
        import_egress = [
            {"to": [{"podSelector": {"matchLabels": chat}}], "ports": _tcp(CHAT_API_PORT)}
        ]
        if cfg.db.db_type == "adb":
            import_egress.append(to_adb)
        imports["import-egress"] = {
            "podSelector": {"matchLabels": importer},
            "policyTypes": ["Egress"],
            "egress": import_egress,
        }
    return {
        "default-deny": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        "allow-dns": {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [
                {
                    "to": [dns_peer, *_cidrs([NODE_LOCAL_DNS])],
                    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                }
            ],
        },
        "llm-ingress": {
            "podSelector": {"matchLabels": llm},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": llm_sources, "ports": _tcp(LLM_PORT)}],
        },
        "chat-ingress": {
            "podSelector": {"matchLabels": chat},
            "policyTypes": ["Ingress"],
            "ingress": chat_ingress,
        },
        "chat-egress": {
            "podSelector": {"matchLabels": chat},
            "policyTypes": ["Egress"],
            "egress": chat_egress,
        },
        **imports,
    }


class NetworkSecurity(pulumi.ComponentResource):
    """NetworkPolicies of the release namespace and the Secret holding both API keys."""

    api_key_secret_name: pulumi.Output[str]
    chat_api_key: pulumi.Output[str]
    llm_api_key: pulumi.Output[str]
    policy_names: list[pulumi.Output[str]]

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        *,
        provider: k8s.Provider,
        namespace: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("chatchat:network_security:NetworkSecurity", name, None, opts)
        child = pulumi.ResourceOptions(parent=self, provider=provider)
        mine = pulumi.ResourceOptions(parent=self)

        # Two keys: users get the chat key; only chat and llm know the llm key.
        keys = {
            side: random.RandomPassword(
                f"{name}-{side}-api-key", length=API_KEY_LENGTH, special=False, opts=mine
            )
            for side in ("chat", "llm")
        }
        secret = k8s.core.v1.Secret(
            f"{name}-api-keys",
            metadata={
                "name": f"{cfg.release}-api-keys",
                "namespace": namespace,
                "labels": wp.release_labels(cfg),
            },
            type="Opaque",
            string_data={"chat-api-key": keys["chat"].result, "llm-api-key": keys["llm"].result},
            opts=child,
        )

        policies = [
            k8s.networking.v1.NetworkPolicy(
                f"{name}-{role}",
                metadata={
                    "name": f"{cfg.release}-{role}",
                    "namespace": namespace,
                    "labels": wp.release_labels(cfg),
                },
                spec=spec,
                opts=child,
            )
            for role, spec in network_policies(cfg).items()
        ]

        self.api_key_secret_name = secret.metadata["name"]
        self.chat_api_key = pulumi.Output.secret(keys["chat"].result)
        self.llm_api_key = pulumi.Output.secret(keys["llm"].result)
        self.policy_names = [p.metadata["name"] for p in policies]
        self.register_outputs(
            {
                "apiKeySecretName": self.api_key_secret_name,
                "chatApiKey": self.chat_api_key,
                "llmApiKey": self.llm_api_key,
            }
        )
