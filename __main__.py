"""The chatchat stack: load and validate the stack config, build the components, export."""

import pulumi

from components.cluster import AckGpuCluster
from components.config import load_config
from components.database import VectorDatabase
from components.namespace import ReleaseNamespace
from components.network import Network
from components.registry import Registry
from components.storage import ModelStorage

cfg = load_config()  # fails here, naming every bad key, before any resource is declared

# Logical names are fixed (not derived from config): renaming the release must never replace
# the cluster or the stores; physical names carry the release and stack where it matters.
network = Network("network", cfg)
cluster = AckGpuCluster("cluster", cfg, network)
k8s = cluster.k8s_provider
namespace = ReleaseNamespace("release", cfg, k8s)
storage = ModelStorage("storage", cfg, network, k8s, namespace.name)
database = VectorDatabase("vectors", cfg, network, k8s, namespace.name) \
    if cfg.db.db_type == "adb" else None
registry = Registry("registry", cfg)

# --- workloads (issue 4) ------------------------------------------------------------------
# LlmWorkload, ChatWorkload and NetworkSecurity are wired here, from: cfg, k8s (provider),
# namespace.name, storage.model_pvc_name / .model_writer_pvc_name / .kb_pvc_name,
# database.secret_name (None for faiss), registry.llm_image / .chat_image,
# cluster.node_pools (depends_on, so pods wait for GPU nodes).
# -------------------------------------------------------------------------------------------

pulumi.export("release", cfg.release)
pulumi.export("llmModel", cfg.llm.model)
pulumi.export("kubeconfig", cluster.kubeconfig)  # secret
pulumi.export("clusterId", cluster.cluster_id)
pulumi.export("modelStoreId", storage.store_id)
if database is not None:
    pulumi.export("adbHost", database.host)
pulumi.export("chatImage", registry.chat_image)
pulumi.export("llmImage", registry.llm_image)
pulumi.export("chatRepository", registry.chat_repository)
pulumi.export("llmRepository", registry.llm_repository)
pulumi.export("portForward", namespace.name.apply(
    lambda ns: f"kubectl port-forward -n {ns} svc/chat-{cfg.release} 8501:8501"))
