"""What the llm needs from the GPU pools, as plain functions of the config: the most replicas
that can run, the rollout strategy that capacity allows, and how long a new pod takes to load
its model. Read by the llm workload (strategy), the config rules, and `tools model-change`.

Capacity is counted in GPU nodes: every llm pod lands on its own node of a pool whose card holds
the model (the shipped instance types carry one GPU each), so the pools that fit the model give
at most the sum of their `maxSize` llm pods. ECI pods have no pool to fit into: no limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from components import cloud_facts
from components.config import StackConfig

BYTES_PER_GIB = 1024**3


@dataclass(frozen=True)
class Rollout:
    """How a changed llm pod template rolls out, and what users see meanwhile."""

    strategy: dict[str, Any]
    gap_free: bool
    peak_replicas: int  # the most pods the stack may run before a rollout adds its surge pod
    gpus_per_pod: int
    gpu_nodes: int | None  # None: ECI, no pool limit
    statement: str


def peak_replicas(cfg: StackConfig) -> int:
    """The most llm replicas the stack runs: the autoscaler's maximum, else llm.pod.replicas."""
    scaling = cfg.llm.autoscaling
    return scaling.max_replicas if scaling.enabled else cfg.llm.pod.replicas


def least_replicas(cfg: StackConfig) -> int:
    """The fewest llm replicas running when a rollout starts: the autoscaler's minimum."""
    scaling = cfg.llm.autoscaling
    return scaling.min_replicas if scaling.enabled else cfg.llm.pod.replicas


def gpu_nodes(cfg: StackConfig) -> int | None:
    """The most llm pods the fitting GPU pools can hold (None on ECI: no pool limit)."""
    if cfg.llm.pod.instance_type == "eci":
        return None
    return sum(pool.max_size for pool in cfg.gpu_pools_fitting_llm())


def rollout(cfg: StackConfig) -> Rollout:
    """Surge one pod when the pools can grow by its GPUs beside the most replicas (no gap);
    otherwise replace pods one at a time while at least two run, else a stated outage while the
    single new pod loads."""
    peak, gpus, nodes = peak_replicas(cfg), cfg.llm_gpus_per_pod, gpu_nodes(cfg)
    least = least_replicas(cfg)
    if nodes is None or nodes >= (peak + 1) * gpus:
        room = "ECI has no pool limit" if nodes is None else f"the pools allow {nodes} GPU nodes"
        return Rollout(
            {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            True,
            peak,
            gpus,
            nodes,
            f"gap-free: a surge pod starts beside {peak} replica(s) ({room}); the old pod goes "
            "once the new one has loaded the model",
        )
    if least >= 2:
        return Rollout(
            {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
            True,
            peak,
            gpus,
            nodes,
            f"no surge ({nodes} GPU node(s) for up to {peak} replica(s)): pods are replaced one "
            f"at a time, at least {least - 1} keep serving at reduced capacity",
        )
    return Rollout(
        {"type": "Recreate"},
        False,
        peak,
        gpus,
        nodes,
        f"brief outage: {nodes} GPU node(s) leave no room for a surge pod beside {peak} "
        "replica(s), so the old pod stops before the new one has loaded the model",
    )


@dataclass(frozen=True)
class ColdStart:
    """Time for a new pod to read the model's weights from the model store (or its cache)."""

    weights_gib: float
    store: str
    read_mb_per_s: float
    seconds: float
    # With a Fluid cache: the first read, from OSS, that fills it (None without a cache), and
    # whether the warm-up DataLoad does it before the llm starts (else the first pod does).
    fill_seconds: float | None = None
    fill_mb_per_s: float | None = None
    warm_up: bool = False


def _seconds(weights_gib: float, mb_per_s: float) -> float:
    return round(weights_gib * BYTES_PER_GIB / (mb_per_s * 1_000_000), 1)


def cold_start(cfg: StackConfig) -> ColdStart:
    """Weights size over the store's read bandwidth (cloud facts serving.modelStoreReadMBps); a
    lower bound: node start, image pull and engine warm-up come on top. With a Fluid cache the
    first read comes from OSS and fills it; later pods read the warm cache at the cache
    figure (an assumption until measured, labelled so in the facts table)."""
    model = cfg.llm.catalog_entry
    weights = model.weights_gib(cfg.llm.load8bit)
    bandwidth = cloud_facts.value("serving", "modelStoreReadMBps")
    store, fluid = cfg.model_store.type, cfg.model_store.fluid
    if store == "nas":
        mb_per_s = float(bandwidth["nas"][cfg.model_store.nas_storage_type])
        label = f"nas ({cfg.model_store.nas_storage_type})"
    elif fluid is not None:
        cached = float(bandwidth["fluid"][fluid.medium])
        return ColdStart(
            weights,
            f"the Fluid cache (JindoRuntime, {fluid.medium})",
            cached,
            _seconds(weights, cached),
            fill_seconds=_seconds(weights, float(bandwidth["oss"])),
            fill_mb_per_s=float(bandwidth["oss"]),
            warm_up=fluid.warm_up,
        )
    else:
        mb_per_s, label = float(bandwidth["oss"]), "oss (ossfs)"
    return ColdStart(weights, label, mb_per_s, _seconds(weights, mb_per_s))
