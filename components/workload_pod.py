"""Pod building shared by the llm and chat workloads: labels, placement (GPU pools or ECI),
resources, probes, the locked-down security context, and the Service and PodDisruptionBudget
that every workload gets. One function per concern, parameterised by the workload's side.

Objects are plain dicts under Kubernetes' own (camelCase) field names, so what the tests validate
with kubernetes-validate is exactly what the provider sends.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import contract
from components.catalog import MODEL_ROOT
from components.config import Probe, StackConfig
from components.contract import Side
from components.registry import image_pull_secrets

APP_NAME = "chatchat"
RUN_AS_UID = 10001  # the images' non-root user (app_images/*/Dockerfile)
SLB_ADDRESS_TYPE = "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-address-type"


def release_labels(cfg: StackConfig) -> dict[str, str]:
    """The labels of every object of this release."""
    return {"app.kubernetes.io/name": APP_NAME, "app.kubernetes.io/instance": cfg.release}


def component_labels(cfg: StackConfig, component: str) -> dict[str, str]:
    """The selector labels of one workload (also what the NetworkPolicies select on)."""
    return {**release_labels(cfg), "app.kubernetes.io/component": component}


def workload_name(cfg: StackConfig, side: Side) -> str:
    return contract.workload_name(side, cfg.release)


# GPU nodes carry the GPU taint; only pods that take a card tolerate it.
GPU_TOLERATION = {
    "key": contract.GPU_TAINT["key"],
    "operator": "Exists",
    "effect": contract.GPU_TAINT["effect"],
}
SYSTEM_POOL_SELECTOR = {contract.NODE_POOL_LABEL: contract.SYSTEM_POOL}


def gpu_pool_affinity(pools: list[str]) -> dict[str, Any]:
    """Required node affinity to the named GPU pools (by their node-pool label)."""
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {
                                "key": contract.NODE_POOL_LABEL,
                                "operator": "In",
                                "values": sorted(pools),
                            }
                        ]
                    }
                ]
            }
        }
    }


def placement(cfg: StackConfig, side: Side) -> dict[str, Any]:
    """Pod spec fields that choose nodes: ECI virtual node, for the llm a GPU pool whose card
    fits the model, for chat the system pool, or any GPU pool when chat takes a GPU (the
    embedding model fits every allowed card). Config tolerations and nodeSelector are merged in
    (config wins on a shared nodeSelector key)."""
    pod = cfg.side_pod(side)
    # config refuses a GPU toleration on a CPU chat (components.config), so none is merged here
    tolerations = [t.model_dump(exclude_none=True) for t in pod.tolerations]
    if pod.instance_type == "eci":
        selector = dict(contract.VIRTUAL_NODE_SELECTOR)
        tolerations.append(
            {"key": contract.VIRTUAL_NODE_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}
        )
        fields: dict[str, Any] = {}
    elif side == "llm" or cfg.chat_gpu:
        fitting = cfg.gpu_pools_fitting_llm() if side == "llm" else cfg.cluster.gpu_pools
        selector = {}
        tolerations.append(dict(GPU_TOLERATION))
        fields = {"affinity": gpu_pool_affinity([p.name for p in fitting])}
    else:
        selector = dict(SYSTEM_POOL_SELECTOR)
        fields = {}
    if selector or pod.node_selector:
        fields["nodeSelector"] = {**selector, **pod.node_selector}
    if tolerations:
        fields["tolerations"] = tolerations
    return fields


def pod_metadata(
    cfg: StackConfig, side: Side, component: str, annotations: dict[str, str]
) -> dict[str, Any]:
    """Template labels and annotations: the config's, then ours (the policy pack reads ours, so
    config cannot override them), with the ECI ones in eci mode."""
    pod = cfg.side_pod(side)
    labels = {**pod.labels, **component_labels(cfg, component)}
    extra = dict(annotations)
    if pod.instance_type == "eci":
        labels[contract.ECI_LABEL] = "true"
        extra[contract.ECI_SPECS_ANNOTATION] = ",".join(cfg.eci_specs(side))
        extra[contract.ECI_STORAGE_ANNOTATION] = f"{pod.eci_ephemeral_storage_gib}Gi"
    return {"labels": labels, "annotations": {**pod.annotations, **extra}}


def http_probe(probe: Probe, path: str, port: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": port}, **probe.model_dump(by_alias=True)}


def container_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_UID,
        "runAsGroup": RUN_AS_UID,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def pod_spec(
    *,
    service_account: str,
    containers: list[dict[str, Any]],
    volumes: list[dict[str, Any]],
    init_containers: list[dict[str, Any]] | None = None,
    restart_policy: str = "Always",
    **fields: Any,
) -> dict[str, Any]:
    """A non-root pod with no service-account token, a writable /tmp and read-only roots."""
    spec: dict[str, Any] = {
        "serviceAccountName": service_account,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,  # no *_SERVICE_HOST variables next to our own env
        "restartPolicy": restart_policy,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_UID,
            "runAsGroup": RUN_AS_UID,
            "fsGroup": RUN_AS_UID,
            # a recursive chown of a large model store would take hours
            "fsGroupChangePolicy": "OnRootMismatch",
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": containers,
        "volumes": [{"name": "tmp", "emptyDir": {}}, *volumes],
        **fields,
    }
    if init_containers:
        spec["initContainers"] = init_containers
    return spec


def model_volume(pvc_name: pulumi.Input[str], *, read_only: bool = True) -> dict[str, Any]:
    return {
        "name": "llm-model",
        "persistentVolumeClaim": {"claimName": pvc_name, "readOnly": read_only},
    }


def model_mount(*, read_only: bool = True) -> dict[str, Any]:
    return {"name": "llm-model", "mountPath": MODEL_ROOT, "readOnly": read_only}


TMP_MOUNT = {"name": "tmp", "mountPath": "/tmp"}
# The root filesystem is read-only: caches (Hugging Face, torch, pip) go to the /tmp emptyDir.
HOME_ENV = {"name": "HOME", "value": "/tmp"}


def secret_env(name: str, secret: pulumi.Input[str], key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def service_account(
    name: str,
    cfg: StackConfig,
    side: Side,
    namespace: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
) -> k8s.core.v1.ServiceAccount:
    return k8s.core.v1.ServiceAccount(
        name,
        metadata={
            "name": workload_name(cfg, side),
            "namespace": namespace,
            "labels": component_labels(cfg, side),
        },
        automount_service_account_token=False,
        opts=opts,
    )


def with_pull_secrets(cfg: StackConfig, pod: dict[str, Any]) -> dict[str, Any]:
    """The pod spec naming the registry pull Secret, when the stack makes one."""
    secrets = image_pull_secrets(cfg)
    return {**pod, "imagePullSecrets": secrets} if secrets else pod


def deployment(
    name: str,
    cfg: StackConfig,
    side: Side,
    namespace: pulumi.Input[str],
    *,
    strategy: dict[str, Any],
    annotations: dict[str, str],
    pod: dict[str, Any],
    opts: pulumi.ResourceOptions,
) -> k8s.apps.v1.Deployment:
    """The workload's Deployment: its name, labels, replicas and selector come from the side."""
    labels = component_labels(cfg, side)
    pod = with_pull_secrets(cfg, pod)
    return k8s.apps.v1.Deployment(
        name,
        metadata={"name": workload_name(cfg, side), "namespace": namespace, "labels": labels},
        spec={
            "replicas": cfg.side_pod(side).replicas,
            "selector": {"matchLabels": labels},
            "strategy": strategy,
            "template": {"metadata": pod_metadata(cfg, side, side, annotations), "spec": pod},
        },
        opts=opts,
    )


def service(
    name: str,
    cfg: StackConfig,
    side: Side,
    namespace: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
) -> k8s.core.v1.Service:
    """ClusterIP by default; a LoadBalancer is an internal SLB limited to the allowed CIDRs
    unless `<side>.service.allowPublic`."""
    config = getattr(cfg, side).service
    annotations, spec = {}, {}
    if config.type == "LoadBalancer":
        annotations[SLB_ADDRESS_TYPE] = "internet" if config.allow_public else "intranet"
        # Local keeps the client address, so the NetworkPolicy's ipBlock can judge it.
        spec = {
            "loadBalancerSourceRanges": cfg.chat_allowed_cidrs(),
            "externalTrafficPolicy": "Local",
        }
    if side == "chat" and cfg.chat.sign_in.issuer and cfg.chat.pod.replicas > 1:
        # A provider sign-in lives in the web UI process that made it (its access token never
        # reaches the browser): keep each client on one pod.
        spec["sessionAffinity"] = "ClientIP"
    return k8s.core.v1.Service(
        name,
        metadata={
            "name": workload_name(cfg, side),
            "namespace": namespace,
            "labels": component_labels(cfg, side),
            "annotations": annotations,
        },
        spec={
            "type": config.type,
            "selector": component_labels(cfg, side),
            "ports": [
                {"name": port_name, "port": port, "targetPort": port_name, "protocol": "TCP"}
                for port_name, port in contract.SERVICE_PORTS[side].items()
            ],
            **spec,
        },
        opts=opts,
    )


def expose(
    name: str,
    cfg: StackConfig,
    side: Side,
    namespace: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
    *,
    least_replicas: int | None = None,
) -> k8s.core.v1.Service:
    """The workload's Service (`<name>-service`) and, with replicas, its PDB (`<name>-pdb`)."""
    declared = service(f"{name}-service", cfg, side, namespace, opts)
    disruption_budget(f"{name}-pdb", cfg, side, namespace, opts, least_replicas=least_replicas)
    return declared


def service_url(service: k8s.core.v1.Service, port: int) -> pulumi.Output[str]:
    return pulumi.Output.concat("http://", service.metadata["name"], ":", str(port))


def disruption_budget(
    name: str,
    cfg: StackConfig,
    side: Side,
    namespace: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
    *,
    least_replicas: int | None = None,
) -> k8s.policy.v1.PodDisruptionBudget | None:
    """With more than one replica (at the least, when an autoscaler moves them), a node drain
    may take only one pod at a time. One replica gets none: a budget could only block drains."""
    if (cfg.side_pod(side).replicas if least_replicas is None else least_replicas) <= 1:
        return None
    return k8s.policy.v1.PodDisruptionBudget(
        name,
        metadata={
            "name": workload_name(cfg, side),
            "namespace": namespace,
            "labels": component_labels(cfg, side),
        },
        spec={"maxUnavailable": 1, "selector": {"matchLabels": component_labels(cfg, side)}},
        opts=opts,
    )
