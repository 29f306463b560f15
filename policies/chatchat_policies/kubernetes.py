"""Kubernetes workload policies: privilege, requests, GPUs, images, exposure, secrets, isolation."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pulumi_policy import EnforcementLevel, ResourceValidationArgs, StackValidationArgs

from .common import (
    WORKLOAD_TYPES,
    Pods,
    Report,
    containers,
    image_tag,
    items,
    k8s_name,
    mapping,
    namespace_of,
    node_selector_terms,
    pod_policy,
    resource_policy,
    resource_quantity,
    stack_policy,
)
from .gpu import FAMILY_LABEL, MEMORY_LABEL, REQUIRED_GIB

SERVICE = "kubernetes:core/v1:Service"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
DAEMON_SET = "kubernetes:apps/v1:DaemonSet"
INTRANET_ANNOTATION = "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-address-type"
GPU_NODE_LABELS = (FAMILY_LABEL, MEMORY_LABEL, "aliyun.accelerator/nvidia_name")
DEFAULT_SECRET_PATTERN = r"PASSWORD|PASSWD|SECRET|KEY|TOKEN|CREDENTIAL"


@pod_policy("k8s-no-privileged", EnforcementLevel.MANDATORY, "No privileged containers.")
def k8s_no_privileged(pods: Pods, args: ResourceValidationArgs, report: Report) -> None:
    for container in containers(pods.spec):
        if mapping(container.get("securityContext")).get("privileged") is True:
            report(
                f"{pods.who}: container {container.get('name')} is privileged. Fix: drop "
                f"securityContext.privileged; GPUs come through nvidia.com/gpu, not privilege."
            )


@pod_policy(
    "k8s-resource-requests", EnforcementLevel.ADVISORY, "Every container requests CPU and memory."
)
def k8s_resource_requests(pods: Pods, args: ResourceValidationArgs, report: Report) -> None:
    for container in containers(pods.spec):
        requests = mapping(mapping(container.get("resources")).get("requests"))
        missing = [r for r in ("cpu", "memory") if not requests.get(r)]
        if missing:
            report(
                f"{pods.who}: container {container.get('name')} has no {' or '.join(missing)} "
                f"request. Fix: set resources.requests.cpu and .memory so the scheduler can "
                f"place it."
            )


def targets_gpu_nodes(
    resource_type: str, metadata: Mapping[str, Any], spec: Mapping[str, Any]
) -> bool:
    """Pods that select GPU nodes, tolerate the GPU taint (not DaemonSets) or need GPU memory."""
    if mapping(metadata.get("annotations")).get(REQUIRED_GIB) is not None:
        return True
    if any(key in GPU_NODE_LABELS for key in mapping(spec.get("nodeSelector"))):
        return True
    for term in node_selector_terms(spec):
        keys = {mapping(e).get("key") for e in items(term.get("matchExpressions"))}
        if keys & set(GPU_NODE_LABELS):
            return True
    return resource_type != DAEMON_SET and any(
        mapping(t).get("key") == "nvidia.com/gpu" for t in items(spec.get("tolerations"))
    )


@pod_policy(
    "k8s-gpu-request",
    EnforcementLevel.MANDATORY,
    "Pods scheduled onto GPU nodes request nvidia.com/gpu (with a limit).",
)
def k8s_gpu_request(pods: Pods, args: ResourceValidationArgs, report: Report) -> None:
    who, metadata, spec = pods.who, pods.metadata, pods.spec
    main = list(map(mapping, items(spec.get("containers"))))
    for container in main:
        resources = mapping(container.get("resources"))
        if mapping(resources.get("requests")).get("nvidia.com/gpu") and not mapping(
            resources.get("limits")
        ).get("nvidia.com/gpu"):
            report(
                f"{who}: container {container.get('name')} requests nvidia.com/gpu without a "
                f'limit. Fix: set resources.limits["nvidia.com/gpu"] (extended resources '
                f"need limits)."
            )
    if targets_gpu_nodes(args.resource_type, metadata, spec) and not any(
        resource_quantity(c, "nvidia.com/gpu") for c in main
    ):
        report(
            f"{who} is scheduled onto GPU nodes but no container requests nvidia.com/gpu: it "
            f"would hold a GPU node without a card. Fix: set resources.limits"
            f'["nvidia.com/gpu"] on the model-serving container.'
        )


@pod_policy(
    "k8s-image-pinned",
    EnforcementLevel.MANDATORY,
    "Container images are pinned: a version tag or digest, never latest or untagged.",
)
def k8s_image_pinned(pods: Pods, args: ResourceValidationArgs, report: Report) -> None:
    for container in containers(pods.spec):
        image = str(container.get("image") or "")
        if "@sha256:" in image:
            continue
        tag = image_tag(image)
        if tag is None or tag == "latest":
            problem = "has no tag" if tag is None else "uses the latest tag"
            report(
                f"{pods.who}: container {container.get('name')} image {image or '(none)'} "
                f"{problem}. Fix: pin a version tag (e.g. :0.1.0) or a digest "
                f"(@sha256:...)."
            )


@resource_policy(
    "k8s-no-public-load-balancer",
    EnforcementLevel.MANDATORY,
    "LoadBalancer services are internal (intranet SLB) unless the stack allows public ones.",
    types=[SERVICE],
    config={
        "allowPublicLoadBalancer": {
            "type": "boolean",
            "default": False,
            "description": "Allow internet-facing LoadBalancer services.",
        }
    },
)
def k8s_no_public_load_balancer(args: ResourceValidationArgs, report: Report) -> None:
    if mapping(args.props.get("spec")).get("type") != "LoadBalancer":
        return
    annotations = mapping(mapping(args.props.get("metadata")).get("annotations"))
    if annotations.get(INTRANET_ANNOTATION) == "intranet":
        return
    if args.get_config().get("allowPublicLoadBalancer", False):
        return
    report(
        f"{k8s_name(args.resource_type, args.props, args.name)} is a public (internet) "
        f"LoadBalancer. Fix: annotate {INTRANET_ANNOTATION}: intranet, or set "
        f"allowPublicLoadBalancer in the policy config for this stack."
    )


@pod_policy(
    "k8s-no-literal-secret-env",
    EnforcementLevel.MANDATORY,
    "Passwords, keys and tokens reach containers from Secrets, never as literal env values.",
    config={
        "secretNamePattern": {
            "type": "string",
            "default": DEFAULT_SECRET_PATTERN,
            "description": "Regular expression (case-insensitive) for env names holding secrets.",
        }
    },
)
def k8s_no_literal_secret_env(pods: Pods, args: ResourceValidationArgs, report: Report) -> None:
    pattern = re.compile(
        args.get_config().get("secretNamePattern", DEFAULT_SECRET_PATTERN), re.IGNORECASE
    )
    for container in containers(pods.spec):
        for env in map(mapping, items(container.get("env"))):
            name = str(env.get("name") or "")
            if pattern.search(name) and env.get("value") not in (None, ""):
                report(
                    f"{pods.who}: container {container.get('name')} sets {name} as a literal "
                    f"value. Fix: put it in a Secret and use valueFrom.secretKeyRef."
                )


@stack_policy(
    "k8s-network-policy",
    EnforcementLevel.MANDATORY,
    "Every namespace that runs workloads has a NetworkPolicy.",
    config={
        "exemptNamespaces": {
            "type": "array",
            "items": {"type": "string"},
            "default": ["kube-system"],
        }
    },
)
def k8s_network_policy(args: StackValidationArgs, report: Report) -> None:
    exempt = set(args.get_config().get("exemptNamespaces", ["kube-system"]))
    covered = {namespace_of(r.props) for r in args.resources if r.resource_type == NETWORK_POLICY}
    first: dict[str, Any] = {}
    for r in args.resources:
        if r.resource_type in WORKLOAD_TYPES:
            first.setdefault(namespace_of(r.props), r)
    for namespace, r in sorted(first.items()):
        if namespace not in covered | exempt | {"(unknown)"}:
            report(
                f"namespace {namespace} runs {k8s_name(r.resource_type, r.props, r.name)} but "
                f"has no NetworkPolicy. Fix: add a default-deny NetworkPolicy plus the allowed "
                f"flows (chat -> llm, ingress to chat) in {namespace}.",
                r.urn,
            )


POLICIES = [
    k8s_no_privileged,
    k8s_resource_requests,
    k8s_gpu_request,
    k8s_image_pinned,
    k8s_no_public_load_balancer,
    k8s_no_literal_secret_env,
    k8s_network_policy,
]
