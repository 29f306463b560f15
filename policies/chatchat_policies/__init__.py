"""The chatchat policy pack's policies, importable without starting the pack's gRPC server.

`policies/__main__.py` hands `all_policies` to `PolicyPack`; `tools/checks/policy_runner.py`
runs the very same objects offline.
"""

from . import adb, cloud, gpu, kubernetes, network, production, storage, tags

PACK_NAME = "chatchat"
PACK_DESCRIPTION = (
    "Guard rails for the chatchat RAG stack on Alibaba Cloud ACK: GPU families and "
    "model fit, ADB, OSS/RAM/NAS, security groups, Kubernetes workloads, tags, "
    "production redundancy."
)

all_policies = [
    *gpu.POLICIES,
    *adb.POLICIES,
    *storage.POLICIES,
    *network.POLICIES,
    *kubernetes.POLICIES,
    *tags.POLICIES,
    *production.POLICIES,
    *cloud.POLICIES,
]

__all__ = ["PACK_DESCRIPTION", "PACK_NAME", "all_policies"]
