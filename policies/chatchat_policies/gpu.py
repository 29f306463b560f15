"""GPU policies: the seed's "V100, A10 only, no vGPU", model fit, DeepGPU-LLM off ECI, node cap."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyResource,
    ResourceValidationArgs,
    StackValidationArgs,
)

from .common import (
    Report,
    containers,
    describe,
    dig,
    items,
    k8s_name,
    known,
    mapping,
    namespace_of,
    node_pool_labels,
    node_selector_terms,
    number,
    pod_template,
    resource_policy,
    resource_quantity,
    selects_node,
    stack_policy,
    tolerates,
)
from .gpu_table import ALLOWED, GPU_FAMILIES, gpu_family_of

NODE_POOL = "alicloud:cs/nodePool:NodePool"
ECS_INSTANCE = "alicloud:ecs/instance:Instance"
NAMESPACE = "kubernetes:core/v1:Namespace"
ECI_SPECS = "k8s.aliyun.com/eci-use-specs"
ECI_LABEL = "alibabacloud.com/eci"
REQUIRED_GIB = "chatchat.io/gpu-memory-required-gib"
MEMORY_LABEL = "chatchat.io/gpu-memory-gib"
FAMILY_LABEL = "chatchat.io/gpu-family"
# ACK shared-GPU scheduling: a node-pool label and the extended resources it hands out.
SHARED_GPU_LABEL = "ack.node.gpu.schedule"
SHARED_GPU_RESOURCES = ("aliyun.com/gpu-mem", "aliyun.com/gpu-core.percentage")


def eci_specs(pod_metadata: Mapping[str, Any]) -> list[str]:
    raw = mapping(pod_metadata.get("annotations")).get(ECI_SPECS) or ""
    return [s.strip() for s in str(raw).split(",") if s.strip()]


def _instance_types(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    if resource_type == NODE_POOL:
        return [str(t) for t in items(props.get("instanceTypes"))]
    if resource_type == ECS_INSTANCE:
        return [str(t) for t in items(props.get("instanceType"))]
    template = pod_template(resource_type, props)
    return eci_specs(template[0]) if template else []


@resource_policy(
    "gpu-family-allowed",
    EnforcementLevel.MANDATORY,
    "GPU instances are V100 (ecs.gn6v, ecs.gn6e) or A10 (ecs.gn7i) only; no T4, vGPU or "
    "shared-GPU types or scheduling.",
)
def gpu_family_allowed(args: ResourceValidationArgs, report: Report) -> None:
    template = pod_template(args.resource_type, args.props)
    what = (
        k8s_name(args.resource_type, args.props, args.name)
        if template
        else describe(args.resource_type, args.name)
    )
    for itype in _instance_types(args.resource_type, args.props):
        family = gpu_family_of(itype)
        if family is not None and not family.supported:
            report(
                f"{what}: instance type {itype} ({family.gpu_model}) is refused: "
                f"{family.refusal}. Fix: use a type of {ALLOWED}."
            )
    if args.resource_type == NODE_POOL:
        mode = node_pool_labels(args.props).get(SHARED_GPU_LABEL)
        if mode:
            report(
                f"{what}: label {SHARED_GPU_LABEL}={mode} turns on shared-GPU scheduling. "
                f"Fix: remove the label; every llm pod gets whole cards."
            )
    if template:
        for container in containers(template[1]):
            for resource in SHARED_GPU_RESOURCES:
                if resource_quantity(container, resource):
                    report(
                        f"{what}: container "
                        f"{container.get('name')} requests shared GPU {resource}. "
                        f"Fix: request whole cards with nvidia.com/gpu."
                    )


@resource_policy(
    "gpu-memory-per-card",
    EnforcementLevel.ADVISORY,
    "GPU node pools have at least minGpuMemoryGib (24) of memory per card.",
    types=[NODE_POOL],
    config={
        "minGpuMemoryGib": {
            "type": "integer",
            "default": 24,
            "minimum": 1,
            "description": "GPU memory per card below which a pool is reported.",
        }
    },
)
def gpu_memory_per_card(args: ResourceValidationArgs, report: Report) -> None:
    minimum = args.get_config().get("minGpuMemoryGib", 24)
    for itype in _instance_types(args.resource_type, args.props):
        family = gpu_family_of(itype)
        if family is not None and family.supported and family.gpu_memory_gib < minimum:
            report(
                f"{describe(args.resource_type, args.name)}: {itype} has "
                f"{family.gpu_memory_gib} GiB per card, under the {minimum} GiB the chart "
                f"recommends. Fix: use ecs.gn7i (A10 24 GiB) or ecs.gn6e (V100 32 GiB), or "
                f"keep this pool for models that fit 16 GiB."
            )


# --- stack policies -------------------------------------------------------------------------


def _card_gib(instance_type: str) -> int:
    family = gpu_family_of(instance_type)
    return family.gpu_memory_gib if family else 0


def _eci_namespaces(resources: list[PolicyResource]) -> set[str]:
    return {
        str(known(r.props, "metadata", "name"))
        for r in resources
        if r.resource_type == NAMESPACE
        and str(mapping(dig(r.props, "metadata", "labels")).get(ECI_LABEL)) == "true"
    }


def is_eci_pod(
    pod_metadata: Mapping[str, Any],
    pod_spec: Mapping[str, Any],
    namespace: str,
    eci_namespaces: set[str],
) -> bool:
    return (
        str(mapping(pod_metadata.get("labels")).get(ECI_LABEL)) == "true"
        or mapping(pod_spec.get("nodeSelector")).get("type") == "virtual-kubelet"
        or namespace in eci_namespaces
    )


def _selector_gib(pod_spec: Mapping[str, Any]) -> float | None:
    """GPU memory the pod pins itself to through labels, when no pool in the stack says more."""
    selector = mapping(pod_spec.get("nodeSelector"))
    candidates: list[float] = []
    if (labelled := number(selector.get(MEMORY_LABEL))) is not None:
        candidates.append(labelled)
    family = selector.get(FAMILY_LABEL)
    if family and f"ecs.{family}" in GPU_FAMILIES:
        candidates.append(GPU_FAMILIES[f"ecs.{family}"].gpu_memory_gib)
    for term in node_selector_terms(pod_spec):
        for expr in map(mapping, items(term.get("matchExpressions"))):
            values = [number(v) for v in items(expr.get("values"))]
            if expr.get("key") == MEMORY_LABEL and expr.get("operator") == "In" and values:
                candidates.append(min(v or 0 for v in values))
            if expr.get("key") == MEMORY_LABEL and expr.get("operator") == "Gt" and values:
                candidates.append((values[0] or 0) + 1)
    return max(candidates) if candidates else None


@stack_policy(
    "llm-model-fits-gpu",
    EnforcementLevel.MANDATORY,
    "The llm workload's model fits one card of the GPU it is scheduled on (annotation "
    f"{REQUIRED_GIB} against the node pools or ECI specs it can use).",
)
def llm_model_fits_gpu(args: StackValidationArgs, report: Report) -> None:
    pools = [r for r in args.resources if r.resource_type == NODE_POOL]
    eci_namespaces = _eci_namespaces(args.resources)
    for r in args.resources:
        template = pod_template(r.resource_type, r.props)
        if not template:
            continue
        metadata, spec = template
        needed = number(mapping(metadata.get("annotations")).get(REQUIRED_GIB))
        if needed is None:
            continue
        who = k8s_name(r.resource_type, r.props, r.name)
        if is_eci_pod(metadata, spec, namespace_of(r.props), eci_namespaces):
            specs = eci_specs(metadata)
            if not specs:
                report(
                    f"{who} needs {needed} GiB of GPU memory but runs on ECI without "
                    f"{ECI_SPECS}. Fix: list GPU specs that hold it (e.g. "
                    f"ecs.gn7i-c8g1.2xlarge).",
                    r.urn,
                )
            for itype in specs:
                if _card_gib(itype) < needed:
                    report(
                        f"{who} needs {needed} GiB of GPU memory on one card; ECI spec {itype} "
                        f"has {_card_gib(itype)} GiB. Fix: use a larger spec or a smaller "
                        f"model / load8bit.",
                        r.urn,
                    )
            continue
        wants_gpu = any(resource_quantity(c, "nvidia.com/gpu") for c in containers(spec))
        landing = []
        for pool in pools:
            types = [str(t) for t in items(pool.props.get("instanceTypes"))]
            if wants_gpu and not any(gpu_family_of(t) for t in types):
                continue  # no GPU capacity: the scheduler never puts a GPU pod there
            taints = [mapping(t) for t in items(pool.props.get("taints"))]
            if selects_node(spec, node_pool_labels(pool.props)) and all(
                tolerates(spec, t) for t in taints
            ):
                landing.append((pool, min((_card_gib(t) for t in types), default=0)))
        for pool, gib in landing:
            if gib < needed:
                report(
                    f"{who} needs {needed} GiB of GPU memory on one card but can be scheduled "
                    f"on node pool {pool.name} ({gib} GiB per card). Fix: select a pool "
                    f"that fits with nodeSelector {MEMORY_LABEL}, or choose a smaller model "
                    f"or load8bit.",
                    r.urn,
                )
        if landing:
            continue
        pinned = _selector_gib(spec)
        if pinned is None:
            report(
                f"{who} needs {needed} GiB of GPU memory but nothing tells which GPU it lands "
                f"on. Fix: select a GPU pool with nodeSelector {MEMORY_LABEL} or "
                f"chatchat.io/node-pool.",
                r.urn,
            )
        elif pinned < needed:
            report(
                f"{who} needs {needed} GiB of GPU memory on one card but selects nodes with "
                f"{pinned:g} GiB. Fix: select a larger GPU or a smaller model / load8bit.",
                r.urn,
            )


def embeds_on_gpu(container: Mapping[str, Any]) -> bool:
    """The chat container that takes a GPU for its embedding model (EMBEDDING_DEVICE=cuda)."""
    return any(
        env.get("name") == "EMBEDDING_DEVICE" and env.get("value") == "cuda"
        for env in map(mapping, items(container.get("env")))
    )


def is_aiacc(pod_metadata: Mapping[str, Any], pod_spec: Mapping[str, Any]) -> bool:
    """A pod that serves a DeepGPU-LLM model: by its annotations, or by LLM_MODEL on a container
    that takes a GPU. The chat pod names the same model in LLM_MODEL but only calls the llm; when
    it takes a GPU, that is for embedding (EMBEDDING_DEVICE=cuda), not for serving the model."""
    annotations = mapping(pod_metadata.get("annotations"))
    if annotations.get("chatchat.io/model-kind") == "aiacc":
        return True
    if str(annotations.get("chatchat.io/model") or "").endswith("-aiacc"):
        return True
    return any(
        env.get("name") == "LLM_MODEL" and str(env.get("value") or "").endswith("-aiacc")
        for c in containers(pod_spec)
        if resource_quantity(c, "nvidia.com/gpu") and not embeds_on_gpu(c)
        for env in map(mapping, items(c.get("env")))
    )


@stack_policy(
    "aiacc-not-on-eci",
    EnforcementLevel.MANDATORY,
    "DeepGPU-LLM (-aiacc) models never run on ECI pods.",
)
def aiacc_not_on_eci(args: StackValidationArgs, report: Report) -> None:
    eci_namespaces = _eci_namespaces(args.resources)
    for r in args.resources:
        template = pod_template(r.resource_type, r.props)
        if (
            template
            and is_aiacc(*template)
            and is_eci_pod(*template, namespace_of(r.props), eci_namespaces)
        ):
            report(
                f"{k8s_name(r.resource_type, r.props, r.name)} runs a DeepGPU-LLM (-aiacc) "
                f"model on ECI, which cannot run it. Fix: run it on an ECS GPU node pool "
                f"(llm.pod.instanceType=ecs) or use the open-source model on ECI.",
                r.urn,
            )


def pool_max_nodes(props: Mapping[str, Any]) -> int:
    scaling = mapping(props.get("scalingConfig"))
    if (
        scaling
        and scaling.get("enable", True) is not False
        and (maximum := number(scaling.get("maxSize")))
    ):
        return int(maximum)
    for key in ("desiredSize", "nodeCount"):
        if (size := number(props.get(key))) is not None:
            return int(size)
    return len(items(props.get("instances")))


@stack_policy(
    "gpu-node-cap",
    EnforcementLevel.ADVISORY,
    "The GPU node pools together scale to at most maxGpuNodes nodes.",
    config={
        "maxGpuNodes": {
            "type": "integer",
            "default": 8,
            "minimum": 0,
            "description": "Cap on the sum of scalingConfig.maxSize over GPU node pools.",
        }
    },
)
def gpu_node_cap(args: StackValidationArgs, report: Report) -> None:
    cap = args.get_config().get("maxGpuNodes", 8)
    gpu_pools = [
        r
        for r in args.resources
        if r.resource_type == NODE_POOL
        and any(gpu_family_of(str(t)) for t in items(r.props.get("instanceTypes")))
    ]
    total = sum(pool_max_nodes(p.props) for p in gpu_pools)
    if total > cap:
        sizes = ", ".join(f"{p.name}={pool_max_nodes(p.props)}" for p in gpu_pools)
        report(
            f"GPU node pools can grow to {total} nodes ({sizes}), over maxGpuNodes={cap}. "
            f"Fix: lower scalingConfig.maxSize, or raise maxGpuNodes in the policy config."
        )


def _landing_pools(pools: list[PolicyResource], spec: Mapping[str, Any]) -> list[PolicyResource]:
    """GPU node pools whose nodes the pod selects and whose taints it tolerates."""
    return [
        pool
        for pool in pools
        if any(gpu_family_of(str(t)) for t in items(pool.props.get("instanceTypes")))
        and selects_node(spec, node_pool_labels(pool.props))
        and all(tolerates(spec, mapping(t)) for t in items(pool.props.get("taints")))
    ]


@stack_policy(
    "gpu-pods-fit-gpu-pools",
    EnforcementLevel.MANDATORY,
    "A pod that takes nvidia.com/gpu (llm, GPU chat, GPU import Job) can land on a GPU node pool "
    "of the stack, and a Job's parallel GPU pods fit those pools' maxSize (ECI pods and stacks "
    "without node pools are not judged).",
)
def gpu_pods_fit_gpu_pools(args: StackValidationArgs, report: Report) -> None:
    pools = [r for r in args.resources if r.resource_type == NODE_POOL]
    if not pools:
        return
    eci_namespaces = _eci_namespaces(args.resources)
    for r in args.resources:
        template = pod_template(r.resource_type, r.props)
        if not template:
            continue
        metadata, spec = template
        cards = sum(
            number(resource_quantity(c, "nvidia.com/gpu")) or 0
            for c in map(mapping, items(spec.get("containers")))
        )
        if not cards or is_eci_pod(metadata, spec, namespace_of(r.props), eci_namespaces):
            continue
        who = k8s_name(r.resource_type, r.props, r.name)
        landing = _landing_pools(pools, spec)
        if not landing:
            report(
                f"{who} takes nvidia.com/gpu but no GPU node pool of the stack matches its "
                f"nodeSelector/affinity and tolerations: it would stay Pending. Fix: select a GPU "
                f"pool (chatchat.io/node-pool) and tolerate the nvidia.com/gpu taint.",
                r.urn,
            )
            continue
        parallel = number(dig(r.props, "spec", "parallelism"))
        if r.resource_type.endswith(":Job") and parallel is not None:
            nodes = sum(pool_max_nodes(p.props) for p in landing)
            if parallel * cards > nodes:
                report(
                    f"{who} runs {parallel:g} pod(s) x {cards:g} GPU(s) at once but the GPU pools "
                    f"it can use grow to {nodes} node(s) "
                    f"({', '.join(p.name for p in landing)}). Fix: lower parallelism or raise "
                    f"the pools' maxSize.",
                    r.urn,
                )


POLICIES = [
    gpu_family_allowed,
    gpu_memory_per_card,
    llm_model_fits_gpu,
    aiacc_not_on_eci,
    gpu_node_cap,
    gpu_pods_fit_gpu_pools,
]
