"""The ACK managed Pro cluster, its addons and node pools, and the Kubernetes provider for it.

Node pools: a CPU `system` pool for everything that needs no GPU, and one pool per configured GPU
pool, tainted `nvidia.com/gpu=true:NoSchedule` and labelled with its GPU family and memory so
that only the llm workload (which tolerates the taint and selects the labels) lands there. ACK
GPU node images ship the NVIDIA driver and device plugin; a pool pins the driver by the
`ack.aliyun.com/nvidia-driver-version` label when configured.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_alicloud as alicloud
import pulumi_kubernetes as k8s
import pulumi_random as random
import yaml

from components import cloud_facts, contract
from components.api_server_access import ApiServerAccess
from components.config import GpuPool, StackConfig
from components.network import Network

# Terway, not Flannel: Flannel on ACK does not enforce NetworkPolicy, and the release relies on
# NetworkPolicies to keep the llm API reachable from chat only. Terway gives pods addresses in
# the pod vSwitches (`network.podVswitchCidrs`, else the node vSwitches), so `network.podCidr`
# is not used.
TERWAY = {
    "name": "terway-eniip",
    "config": json.dumps(
        {"IPVlan": "false", "NetworkPolicy": "true", "ENITrunking": "false"}, sort_keys=True
    ),
}
# Cluster `addons` apply at create only: the network plugin and the CSI storage drivers (OSS,
# NAS, disk static and dynamic volumes) must exist before the first pod. The ingress controller
# is not needed: the UI is reached by port-forward or an internal Service.
CREATE_TIME_ADDONS: list[dict[str, Any]] = [
    TERWAY,
    {"name": "csi-plugin"},
    {"name": "csi-provisioner"},
    {"name": "nginx-ingress-controller", "disabled": True},
]
# Day-2 addons, managed as resources so that a config change installs or removes them later.
# Node pools' auto_repair detects faults through it (cloud facts: ack.nodePoolAutoRepairAddon).
NODE_PROBLEM_DETECTOR: str = cloud_facts.value("ack", "nodePoolAutoRepairAddon")
# Password-free pulls serve ACR Enterprise Edition only (and Personal Edition instances made on or
# before 2024-09-08): installed when `registry.edition` is enterprise.
ACR_CREDENTIAL_HELPER: str = cloud_facts.value("registry", "credentialHelperAddon")
VIRTUAL_NODE = "ack-virtual-node"  # ECI pods: only when llm or chat runs on ECI
# The CRDs of the llm's autoscaler (KEDA ScaledObject) and monitoring (ServiceMonitor, ...).
KEDA: str = cloud_facts.value("serving", "kedaAddon")
MANAGED_PROMETHEUS: str = cloud_facts.value("serving", "prometheusAddon")
# The Dataset / JindoRuntime / DataLoad CRDs and the Fluid CSI plugin: only with a model cache.
FLUID: str = cloud_facts.value("storage", "fluidAddon")


def day2_addons(cfg: StackConfig) -> list[str]:
    """The `cs.KubernetesAddon`s this stack installs after the cluster exists."""
    addons = [NODE_PROBLEM_DETECTOR]
    addons += [ACR_CREDENTIAL_HELPER] if cfg.registry.edition == "enterprise" else []
    addons += [VIRTUAL_NODE] if cfg.uses_eci else []
    addons += [MANAGED_PROMETHEUS] if cfg.monitoring.enabled else []
    addons += [KEDA] if cfg.llm.autoscaling.enabled else []
    addons += [FLUID] if cfg.model_store.fluid else []
    return addons


def stack_addons(cfg: StackConfig) -> list[str]:
    """Every add-on the stack asks ACK for (create-time ones not disabled, then day-2 ones):
    `python -m tools preflight` asks ACK whether it offers each for the cluster version."""
    return [a["name"] for a in CREATE_TIME_ADDONS if not a.get("disabled")] + day2_addons(cfg)


def intranet_kubeconfig(kubeconfig: str, connections: Any) -> str:
    """`kubeconfig` with every cluster's server set to the API server's intranet endpoint."""
    rows = connections if isinstance(connections, list) else [connections or {}]
    endpoint = next(
        (
            r.get("api_server_intranet") or r.get("apiServerIntranet")
            if isinstance(r, dict)
            else r.api_server_intranet
            for r in rows
            if r
        ),
        None,
    )
    if not endpoint:
        raise ValueError("the cluster reports no intranet API server endpoint")
    document = yaml.safe_load(kubeconfig)
    for entry in document.get("clusters", []):
        entry["cluster"]["server"] = endpoint
    return yaml.safe_dump(document, sort_keys=False)


class AckGpuCluster(pulumi.ComponentResource):
    """ACK Pro cluster with a system pool and GPU pools; exposes a Kubernetes provider."""

    cluster_id: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    k8s_provider: k8s.Provider
    node_pools: dict[str, alicloud.cs.NodePool]
    crd_addons: list[alicloud.cs.KubernetesAddon]

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        network: Network,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("chatchat:cluster:AckGpuCluster", name, None, opts)
        self._cfg, self._network = cfg, network
        tags = cfg.resource_tags()
        cluster = alicloud.cs.ManagedKubernetes(
            f"{name}-ack",
            name_prefix=f"{cfg.release}-{cfg.stack}-",
            cluster_spec=cfg.cluster.cluster_spec,
            version=cfg.cluster.version,
            vswitch_ids=network.vswitch_ids,
            pod_vswitch_ids=network.pod_vswitch_ids,
            service_cidr=cfg.network.service_cidr,
            security_group_id=network.security_group_id,
            new_nat_gateway=False,  # the Network component owns the NAT gateway
            # A public endpoint only with a whitelist (ApiServerAccess below); else VPC only.
            slb_internet_enabled=bool(cfg.cluster.api_server_allowed_cidrs),
            # RRSA: pods assume RAM roles through their service account, no AccessKeys.
            enable_rrsa=True,
            deletion_protection=cfg.production,
            proxy_mode="ipvs",
            addons=CREATE_TIME_ADDONS,
            tags=tags,
            opts=pulumi.ResourceOptions(
                parent=self,
                protect=cfg.production,
                # Create-time only: later edits would show a diff that never applies.
                ignore_changes=["addons"],
            ),
        )
        self.cluster_id = cluster.id
        # The cluster's RRSA OIDC provider: RAM roles for pods trust it (components/storage.py).
        self.rrsa_metadata = cluster.rrsa_metadata

        day2 = day2_addons(cfg)
        addons = {
            addon: alicloud.cs.KubernetesAddon(
                f"{name}-addon-{addon}",
                cluster_id=cluster.id,
                name=addon,
                cleanup_cloud_resources=True if addon == VIRTUAL_NODE else None,
                opts=pulumi.ResourceOptions(parent=self),
            )
            for addon in day2
        }
        self._repair_addon = addons[NODE_PROBLEM_DETECTOR]
        # What objects of those CRDs must wait for.
        self.crd_addons = [addons[a] for a in (MANAGED_PROMETHEUS, KEDA, FLUID) if a in addons]
        # Auto-scaling node pools scale only with cluster node scaling on (and the
        # AliyunCSManagedAutoScalerRole authorised: `python -m tools preflight` checks it).
        self.autoscaling = (
            alicloud.cs.AutoscalingConfig(
                f"{name}-autoscaling",
                cluster_id=cluster.id,
                scaler_type="cluster-autoscaler",
                scale_up_from_zero=True,
                scale_down_enabled=True,
                expander="least-waste",
                cool_down_duration="10m",
                unneeded_duration="10m",
                utilization_threshold="0.5",
                gpu_utilization_threshold="0.5",
                scan_interval="30s",
                opts=pulumi.ResourceOptions(parent=self),
            )
            if cfg.cluster.gpu_pools
            else None
        )

        system_labels = {contract.NODE_POOL_LABEL: contract.SYSTEM_POOL}
        self.node_pools = {
            contract.SYSTEM_POOL: self._node_pool(
                f"{name}-system",
                contract.SYSTEM_POOL,
                cluster.id,
                instance_types=cfg.cluster.system_pool.instance_types,
                desired_size=str(cfg.cluster.system_pool.size),
                system_disk_size=cfg.cluster.system_pool.system_disk_gib,
                labels=[{"key": k, "value": v} for k, v in sorted(system_labels.items())],
            )
        }
        for pool in cfg.cluster.gpu_pools:
            self.node_pools[pool.name] = self._gpu_pool(name, pool, cluster.id)

        # The provider always asks for the public-endpoint kubeconfig (PrivateIpAddress=false;
        # cloud facts: ack.kubeconfigEndpoint). Without a public endpoint, point it at the
        # intranet endpoint: `pulumi up` then runs inside the VPC (docs/infrastructure.md).
        credential = alicloud.cs.get_cluster_credential_output(
            cluster_id=cluster.id, opts=pulumi.InvokeOutputOptions(parent=self)
        )
        waits: list[pulumi.Resource] = [self.node_pools[contract.SYSTEM_POOL]]
        if cfg.cluster.api_server_allowed_cidrs:
            access = ApiServerAccess(
                f"{name}-api-server",
                region=cfg.region,
                load_balancer_id=cluster.slb_id,
                allowed_cidrs=cfg.cluster.api_server_allowed_cidrs,
                tags=tags,
                opts=pulumi.ResourceOptions(parent=self),
            )
            waits.append(access.ready)
            kubeconfig = credential.kube_config
        else:
            kubeconfig = pulumi.Output.all(credential.kube_config, cluster.connections).apply(
                lambda a: intranet_kubeconfig(a[0], a[1])
            )
        self.kubeconfig = pulumi.Output.secret(kubeconfig)
        self.k8s_provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            enable_server_side_apply=True,
            delete_unreachable=False,
            # Objects need nodes to run on (CSI, DNS): wait for the system pool, not the GPU
            # pools; workloads that need a GPU depend on `node_pools` themselves. With a public
            # endpoint, wait for its whitelist too.
            opts=pulumi.ResourceOptions(parent=self, depends_on=waits),
        )
        self.register_outputs({"clusterId": self.cluster_id, "kubeconfig": self.kubeconfig})

    def _gpu_pool(
        self, name: str, pool: GpuPool, cluster_id: pulumi.Output[str]
    ) -> alicloud.cs.NodePool:
        family = pool.gpu_family  # config checked: one supported family per pool
        labels = {
            **pool.labels,
            contract.NODE_POOL_LABEL: pool.name,
            contract.GPU_FAMILY_LABEL: family.label,
            contract.GPU_MEMORY_LABEL: str(family.gpu_memory_gib),
        }
        if pool.driver_version:
            labels[contract.DRIVER_LABEL] = pool.driver_version
        taints = [contract.GPU_TAINT] + [
            t.model_dump() for t in pool.taints if t.key != contract.GPU_RESOURCE
        ]
        spot: dict[str, Any] = {"spot_strategy": "NoSpot"}
        if pool.spot:
            # Without a price limit, bid up to the pay-as-you-go price (never pay more than it).
            spot = {
                "spot_strategy": "SpotAsPriceGo",
                "spot_instance_remedy": True,
                "compensate_with_on_demand": True,
                "multi_az_policy": "COST_OPTIMIZED",
            }
            if pool.spot_price_limit is not None:
                spot["spot_strategy"] = "SpotWithPriceLimit"
                spot["spot_price_limits"] = [
                    {"instance_type": t, "price_limit": f"{pool.spot_price_limit:.4f}"}
                    for t in pool.instance_types
                ]
        return self._node_pool(
            f"{name}-gpu-{pool.name}",
            pool.name,
            cluster_id,
            instance_types=pool.instance_types,
            system_disk_size=pool.system_disk_gib,
            scaling_config={
                "enable": True,
                "min_size": pool.min_size,
                "max_size": pool.max_size,
                "type": "gpu",
            },
            labels=[{"key": k, "value": v} for k, v in sorted(labels.items())],
            taints=taints,
            **spot,
        )

    def _node_pool(
        self, resource_name: str, pool_name: str, cluster_id: pulumi.Output[str], **args: Any
    ) -> alicloud.cs.NodePool:
        """One node pool; its ACK name carries a random suffix so a replacement never collides
        with the pool it replaces (create-before-replace keeps GPU capacity during the swap)."""
        cfg, network = self._cfg, self._network
        suffix = random.RandomId(
            f"{resource_name}-suffix",
            byte_length=3,
            # A new suffix when a new cluster or security group forces a new pool.
            keepers={"clusterId": cluster_id, "securityGroupId": network.security_group_id},
            opts=pulumi.ResourceOptions(parent=self),
        )
        return alicloud.cs.NodePool(
            resource_name,
            cluster_id=cluster_id,
            node_pool_name=suffix.hex.apply(lambda h: f"{pool_name}-{h}"),
            vswitch_ids=network.vswitch_ids,
            security_group_ids=[network.security_group_id],
            image_type="AliyunLinux3",
            system_disk_category="cloud_essd",
            install_cloud_monitor=True,
            management={"enable": True, "auto_repair": True, "max_unavailable": 1},
            tags=cfg.resource_tags(),
            **args,
            # auto_repair detects faults through ack-node-problem-detector: installed first.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self._repair_addon]),
        )
