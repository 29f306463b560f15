"""The chat workload: the RAG web UI (8501) and API (7861), on the CPU system pool (or ECI).

Unlike the chart, the container starts without `init_database.py --recreate-vs`: the knowledge
base (faiss files on the KB volume, or vectors in ADB) survives restarts and rollouts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import workload_pod as wp
from components.catalog import MODEL_ROOT
from components.config import StackConfig
from components.contract import CHAT_API_PORT as API_PORT
from components.contract import CHAT_WEB_PORT as WEB_PORT
from components.contract import LLM_PORT

KB_ROOT = "/kb"
PG_KEYS = ("PG_HOST", "PG_PORT", "PG_DATABASE", "PG_USER", "PG_PASSWORD")


class ChatWorkload(pulumi.ComponentResource):
    """ServiceAccount, Deployment, Service and PDB of the chat application."""

    deployment_name: pulumi.Output[str]
    service_name: pulumi.Output[str]
    web_url: pulumi.Output[str]
    api_url: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        *,
        provider: k8s.Provider,
        namespace: pulumi.Input[str],
        image: pulumi.Input[str],
        model_pvc_name: pulumi.Input[str],
        kb_pvc_name: pulumi.Input[str],
        api_key_secret_name: pulumi.Input[str],
        llm_service_name: pulumi.Input[str],
        db_secret_name: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("chatchat:chat_workload:ChatWorkload", name, None, opts)
        placement = wp.placement(cfg, "chat")
        # Children do not inherit the component's depends_on (the node pools): pass it on.
        child = pulumi.ResourceOptions(
            parent=self, provider=provider, depends_on=opts.depends_on if opts else None
        )
        release_name = wp.workload_name(cfg, "chat")
        account = wp.service_account(f"{name}-account", cfg, "chat", namespace, child)

        store = store_env(cfg, db_secret_name)
        env = [
            {"name": "LLM_MODEL", "value": cfg.llm.model},
            {"name": "LLM_HOST", "value": llm_service_name},
            {"name": "LLM_PORT", "value": str(LLM_PORT)},
            wp.secret_env("LLM_API_KEY", api_key_secret_name, "llm-api-key"),
            wp.secret_env("CHAT_API_KEY", api_key_secret_name, "chat-api-key"),
            *store.embedding,
            {"name": "KB_ROOT", "value": KB_ROOT},
            wp.HOME_ENV,
            *store.database,
        ]
        env += sign_in_env(cfg, release_name, namespace, child, name)
        # The old pod must go before the new one starts when they cannot overlap: a ReadWriteOnce
        # KB disk attaches to one node, and a faiss index has a single writer.
        overlap = cfg.chat.kb.effective_access_mode == "ReadWriteMany" and cfg.db.db_type == "adb"
        # Like the llm, a GPU chat never asks for an extra card during a rollout.
        surge = 1 if overlap and not cfg.chat_gpu else 0
        strategy = (
            {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": surge, "maxUnavailable": 1 - surge},
            }
            if overlap
            else {"type": "Recreate"}
        )
        # The most chat pods that can run at once (a rollout's surge pod included): above one,
        # the service refuses to create faiss knowledge bases, which allow a single writer.
        env.append({"name": "CHAT_REPLICAS", "value": str(cfg.chat.pod.replicas + surge)})
        if cfg.chat_gpu:
            # the card must be there: a missing one fails start-up instead of embedding on CPU
            env.append({"name": "EMBEDDING_DEVICE", "value": "cuda"})
        probes = cfg.chat.probes
        app = {
            "name": "chat",
            "image": image,
            "imagePullPolicy": "IfNotPresent",
            "ports": [
                {"name": "webui", "containerPort": WEB_PORT, "protocol": "TCP"},
                {"name": "api", "containerPort": API_PORT, "protocol": "TCP"},
            ],
            "env": env,
            "resources": cfg.pod_resources("chat"),
            "startupProbe": wp.http_probe(probes.startup, "/health", API_PORT),
            # /ready is 503 while the knowledge-base database is down: no traffic, no restart.
            "readinessProbe": wp.http_probe(probes.readiness, "/ready", API_PORT),
            "livenessProbe": wp.http_probe(probes.liveness, "/health", API_PORT),
            "securityContext": wp.container_security(),
            "volumeMounts": [wp.model_mount(), wp.TMP_MOUNT, {"name": "kb", "mountPath": KB_ROOT}],
        }
        deployment = wp.deployment(
            f"{name}-deployment",
            cfg,
            "chat",
            namespace,
            strategy=strategy,
            annotations={},
            pod=wp.pod_spec(
                service_account=release_name,
                containers=[app],
                volumes=[
                    wp.model_volume(model_pvc_name),
                    {"name": "kb", "persistentVolumeClaim": {"claimName": kb_pvc_name}},
                ],
                **placement,
            ),
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[account])),
        )
        service = wp.expose(name, cfg, "chat", namespace, child)

        self.deployment_name = deployment.metadata["name"]
        self.service_name = service.metadata["name"]
        self.web_url = wp.service_url(service, WEB_PORT)
        self.api_url = wp.service_url(service, API_PORT)
        self.register_outputs(
            {
                "deploymentName": self.deployment_name,
                "serviceName": self.service_name,
                "webUrl": self.web_url,
                "apiUrl": self.api_url,
            }
        )


@dataclass(frozen=True)
class StoreEnv:
    """The settings every process of the chat image that embeds and stores needs (the chat pod,
    a bulk-import pod): which model and store, and the ADB credentials when the vectors live
    there."""

    embedding: list[dict[str, Any]]
    database: list[dict[str, Any]]


def store_env(cfg: StackConfig, db_secret_name: pulumi.Input[str] | None) -> StoreEnv:
    if (db_secret_name is None) != (cfg.db.db_type == "faiss"):
        raise ValueError(
            f"db.dbType={cfg.db.db_type}: db_secret_name must be given exactly "
            "when the vectors live in ADB"
        )
    return StoreEnv(
        [
            {"name": "EMBEDDING_MODEL", "value": cfg.db.embedding_model},
            {"name": "DEFAULT_VS_TYPE", "value": cfg.db.db_type},
            {"name": "MODEL_ROOT", "value": MODEL_ROOT},
        ],
        []
        if db_secret_name is None
        else [wp.secret_env(key, db_secret_name, key) for key in PG_KEYS],
    )


def sign_in_env(
    cfg: StackConfig,
    release_name: str,
    namespace: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
    name: str,
) -> list[dict[str, Any]]:
    """The chat image's OIDC_* / AUTH_* settings from `chat.signIn`; the client secret goes to
    a Secret of its own (never into the pod spec). Nothing while sign-in is off."""
    sign_in = cfg.chat.sign_in
    if not sign_in.issuer:
        return []
    env: list[dict[str, Any]] = [
        {"name": "OIDC_ISSUER", "value": sign_in.issuer},
        {"name": "OIDC_CLIENT_ID", "value": sign_in.client_id or ""},
        {"name": "OIDC_AUDIENCE", "value": sign_in.audience or ""},
        {"name": "OIDC_GROUPS_CLAIM", "value": sign_in.groups_claim},
        {"name": "OIDC_ROLES_CLAIM", "value": sign_in.roles_claim},
        {"name": "AUTH_ROLE_MAP", "value": json.dumps(sign_in.role_map, sort_keys=True)},
        {"name": "AUTH_DEFAULT_ROLES", "value": ",".join(sign_in.default_roles)},
    ]
    if sign_in.public_url:
        env.append({"name": "WEBUI_PUBLIC_URL", "value": sign_in.public_url})
        if sign_in.public_url.startswith("https://"):
            env.append({"name": "WEBUI_COOKIE_SECURE", "value": "true"})
    if cfg.oidc_client_secret:
        secret = k8s.core.v1.Secret(
            f"{name}-oidc",
            metadata={
                "name": f"{release_name}-oidc",
                "namespace": namespace,
                "labels": wp.release_labels(cfg),
            },
            type="Opaque",
            string_data={"client-secret": pulumi.Output.secret(cfg.oidc_client_secret)},
            opts=opts,
        )
        env.append(wp.secret_env("OIDC_CLIENT_SECRET", secret.metadata.name, "client-secret"))
    return env
