"""The chatchat stack: load and validate the stack config, build the components, export."""

import pulumi

from components.chat_imports import ChatImports
from components.chat_workload import ChatWorkload
from components.cluster import AckGpuCluster
from components.config import load_config
from components.contract import CHAT_WEB_PORT, workload_name
from components.database import VectorDatabase
from components.llm_workload import LlmWorkload
from components.model_cache import ModelCache
from components.monitoring import LlmMonitoring
from components.namespace import ReleaseNamespace
from components.network import Network
from components.network_security import NetworkSecurity
from components.registry import Registry
from components.storage import ModelStorage

cfg = load_config()  # fails here, naming every bad key, before any resource is declared

# Logical names are fixed (not derived from config): renaming the release must never replace
# the cluster or the stores; physical names carry the release and stack where it matters.
network = Network("network", cfg)
cluster = AckGpuCluster("cluster", cfg, network)
k8s = cluster.k8s_provider
namespace = ReleaseNamespace("release", cfg, k8s)
storage = ModelStorage("storage", cfg, network, k8s, namespace.name, rrsa=cluster.rrsa_metadata)
database = (
    VectorDatabase("vectors", cfg, network, k8s, namespace.name)
    if cfg.db.db_type == "adb"
    else None
)
registry = Registry("registry", cfg, k8s, namespace.name)  # images and their pull Secret

security = NetworkSecurity("security", cfg, provider=k8s, namespace=namespace.name)
# The workloads wait for the node pools: an llm rollout that starts before its GPU pool exists
# would spend Pulumi's readiness timeout waiting for a node; the autoscaler and monitoring objects
# wait for the addons that bring their CRDs.
on_nodes = pulumi.ResourceOptions(depends_on=[*cluster.node_pools.values(), *cluster.crd_addons])
# Optional: the llm reads the model through a Fluid (JindoRuntime) cache of the OSS bucket.
model_cache = (
    ModelCache(
        "model-cache",
        cfg,
        provider=k8s,
        namespace=namespace.name,
        bucket=storage.bucket_name,
        endpoint=storage.bucket_endpoint,
        opts=on_nodes,
    )
    if cfg.model_store.fluid and storage.bucket_name and storage.bucket_endpoint
    else None
)
llm = LlmWorkload(
    "llm",
    cfg,
    provider=k8s,
    namespace=namespace.name,
    image=registry.llm_image,
    model_pvc_name=storage.model_pvc_name,
    model_writer_pvc_name=storage.model_writer_pvc_name,
    api_key_secret_name=security.api_key_secret_name,
    model_cache=model_cache,
    opts=on_nodes,
)
chat = ChatWorkload(
    "chat",
    cfg,
    provider=k8s,
    namespace=namespace.name,
    image=registry.chat_image,
    model_pvc_name=storage.model_pvc_name,
    kb_pvc_name=storage.kb_pvc_name,
    api_key_secret_name=security.api_key_secret_name,
    llm_service_name=llm.service_name,
    db_secret_name=database.secret_name if database else None,
    opts=on_nodes,
)
if cfg.chat.imports:  # bulk imports: Indexed Jobs that call the chat API once it is up
    ChatImports(
        "imports",
        cfg,
        provider=k8s,
        namespace=namespace.name,
        repository=cfg.chat.image.repository or registry.chat_repository,
        model_pvc_name=storage.model_pvc_name,
        chat_api_url=chat.api_url,
        api_key_secret_name=security.api_key_secret_name,
        rrsa=cluster.rrsa_metadata,
        db_secret_name=database.secret_name if database else None,
        opts=pulumi.ResourceOptions(depends_on=[chat]),
    )
if cfg.monitoring.enabled:
    LlmMonitoring("llm-monitoring", cfg, provider=k8s, namespace=namespace.name, opts=on_nodes)

pulumi.export("release", cfg.release)
pulumi.export("llmModel", cfg.llm.model)
pulumi.export("kubeconfig", cluster.kubeconfig)  # secret
pulumi.export("clusterId", cluster.cluster_id)
pulumi.export("modelStoreId", storage.store_id)
if storage.cache_reader is not None:  # make its AccessKey for the Fluid cache's Secret (README)
    pulumi.export("modelCacheReader", storage.cache_reader)
if database is not None:
    pulumi.export("adbHost", database.host)
pulumi.export("chatImage", registry.chat_image)
pulumi.export("llmImage", registry.llm_image)
pulumi.export("chatRepository", registry.chat_repository)
pulumi.export("llmRepository", registry.llm_repository)
pulumi.export("chatApiKey", security.chat_api_key)  # secret
pulumi.export("chatWebUrl", chat.web_url)
pulumi.export("chatApiUrl", chat.api_url)
pulumi.export("llmEndpoint", llm.endpoint)
pulumi.export(
    "portForward",
    namespace.name.apply(
        lambda ns: (
            f"kubectl port-forward -n {ns} svc/{workload_name('chat', cfg.release)} "
            f"{CHAT_WEB_PORT}:{CHAT_WEB_PORT}"
        )
    ),
)
