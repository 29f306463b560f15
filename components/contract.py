"""The cluster contract: the names the node pools, the workloads, the import tool and the
offline tools agree on. The policy pack reads the same names from resource properties (it stands
alone and keeps its own constants; `tests/test_policies_gpu_table.py` proves they agree).
"""

from __future__ import annotations

from typing import Literal

Side = Literal["llm", "chat"]

# Node pools: every pool carries its name; GPU pools also their family and memory per card.
NODE_POOL_LABEL = "chatchat.io/node-pool"
GPU_FAMILY_LABEL = "chatchat.io/gpu-family"
GPU_MEMORY_LABEL = "chatchat.io/gpu-memory-gib"
DRIVER_LABEL = "ack.aliyun.com/nvidia-driver-version"
SYSTEM_POOL = "system"

# GPU nodes are tainted so that only pods that tolerate it (the llm) land there.
GPU_RESOURCE = "nvidia.com/gpu"
GPU_TAINT = {"key": GPU_RESOURCE, "value": "true", "effect": "NoSchedule"}

# ECI (virtual node) pods: the chart's annotations and label, and ACK's virtual-node selector.
ECI_LABEL = "alibabacloud.com/eci"
ECI_SPECS_ANNOTATION = "k8s.aliyun.com/eci-use-specs"
ECI_STORAGE_ANNOTATION = "k8s.aliyun.com/eci-extra-ephemeral-storage"
VIRTUAL_NODE_SELECTOR = {"type": "virtual-kubelet"}
VIRTUAL_NODE_TAINT_KEY = "virtual-kubelet.io/provider"

# Annotations on the llm pod: what it serves and how much GPU memory one card must hold.
MODEL_ANNOTATION = "chatchat.io/model"
MODEL_KIND_ANNOTATION = "chatchat.io/model-kind"
GPU_MEMORY_REQUIRED_ANNOTATION = "chatchat.io/gpu-memory-required-gib"
LOAD8BIT_ANNOTATION = "chatchat.io/load8bit"

# Ports (the chart's): the llm's model API, the chat web UI and API, and the ADB connection.
LLM_PORT = 8888
CHAT_WEB_PORT = 8501
CHAT_API_PORT = 7861
ADB_PORT = 5432
SERVICE_PORTS: dict[Side, dict[str, int]] = {
    "llm": {"api": LLM_PORT},
    "chat": {"webui": CHAT_WEB_PORT, "api": CHAT_API_PORT},
}


# Bulk-import pods (chat.imports): their app.kubernetes.io/component, which the NetworkPolicies
# select on.
IMPORT_COMPONENT = "import"


def workload_name(side: Side, release: str) -> str:
    """`llm-<release>` / `chat-<release>`: the chart's Deployment and Service names."""
    return f"{side}-{release}"
