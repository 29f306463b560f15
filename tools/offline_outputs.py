"""Realistic computed outputs for offline rendering.

The Alibaba Cloud and Kubernetes providers compute ids, endpoints and credentials at create
time. Offline, `OfflineMocks` returns values of the same shape, derived deterministically from
the resource's URN-free identity (type and name), so rendering a stack twice gives identical
resources. Add a row to `COMPUTED` when a component starts using a new resource type's outputs.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from typing import Any

import pulumi


def _digest(*parts: str, length: int = 16) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:length]


def _kubeconfig(cluster_id: str) -> str:
    return f"""apiVersion: v1
kind: Config
clusters:
- cluster:
    server: https://{cluster_id}.cn-hangzhou.cs.aliyuncs.com:6443
    certificate-authority-data: LS0tLS1CRUdJTi1PRkZMSU5FLUNBLS0tLS0K
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: offline-admin
  name: offline
current-context: offline
users:
- name: offline-admin
  user:
    client-certificate-data: LS0tLS1CRUdJTi1PRkZMSU5FLUNFUlQtLS0tLQo=
    client-key-data: LS0tLS1CRUdJTi1PRkZMSU5FLUtFWS0tLS0tCg==
"""


Computed = Callable[[str, dict[str, Any], str], dict[str, Any]]

# type token -> (id prefix, computed outputs from (name, inputs, id))
COMPUTED: dict[str, tuple[str, Computed]] = {
    "alicloud:vpc/network:Network": ("vpc-", lambda n, i, id_: {
        "routeTableId": f"vtb-{_digest(n, 'rt')}", "routerId": f"vrt-{_digest(n, 'r')}",
        "status": "Available"}),
    "alicloud:vpc/switch:Switch": ("vsw-", lambda n, i, id_: {"status": "Available"}),
    "alicloud:vpc/natGateway:NatGateway": ("ngw-", lambda n, i, id_: {
        "snatTableIds": f"stb-{_digest(n, 's')}", "forwardTableIds": f"ftb-{_digest(n, 'f')}"}),
    "alicloud:ecs/eipAddress:EipAddress": ("eip-", lambda n, i, id_: {
        "ipAddress": f"47.96.{int(_digest(n)[:2], 16)}.{int(_digest(n)[2:4], 16)}",
        "status": "Available"}),
    "alicloud:ecs/securityGroup:SecurityGroup": ("sg-", lambda n, i, id_: {}),
    "alicloud:cs/managedKubernetes:ManagedKubernetes": ("c", lambda n, i, id_: {
        "vpcId": i.get("vpcId", "vpc-offline"),
        "securityGroupId": i.get("securityGroupId", f"sg-{_digest(n, 'sg')}"),
        "slbInternet": "", "slbIntranet": f"lb-{_digest(n, 'slb')}",
        "slbId": f"lb-{_digest(n, 'slb')}",
        "connections": [{"apiServerIntranet": f"https://{id_}.vpc.cs.aliyuncs.com:6443",
                         "apiServerInternet": "", "masterPublicIp": "",
                         "serviceDomain": "cluster.local"}],
        "workerRamRoleName": f"KubernetesWorkerRole-{_digest(n, 'role', length=8)}",
        "clusterDomain": "cluster.local"}),
    "alicloud:slb/acl:Acl": ("acl-", lambda n, i, id_: {}),
    "alicloud:cs/nodePool:NodePool": ("np", lambda n, i, id_: {
        "nodePoolId": id_.split(":")[-1], "scalingGroupId": f"asg-{_digest(n, 'asg')}"}),
    "alicloud:cs/kubernetesAddon:KubernetesAddon": ("", lambda n, i, id_: {
        "currentConfig": i.get("config", ""), "nextVersion": ""}),
    "alicloud:oss/bucket:Bucket": ("", lambda n, i, id_: {
        "extranetEndpoint": "oss-cn-hangzhou.aliyuncs.com",
        "intranetEndpoint": "oss-cn-hangzhou-internal.aliyuncs.com",
        "location": "oss-cn-hangzhou", "owner": "1234567890123456"}),
    "alicloud:ram/user:User": ("", lambda n, i, id_: {}),
    "alicloud:ram/accessKey:AccessKey": ("LTAI", lambda n, i, id_: {
        "secret": f"offline{_digest(n, 'secret', length=24)}", "status": "Active"}),
    "alicloud:nas/fileSystem:FileSystem": ("", lambda n, i, id_: {}),
    "alicloud:nas/mountTarget:MountTarget": ("", lambda n, i, id_: {
        "mountTargetDomain": f"{id_.split(':')[0]}-{_digest(n, length=5)}"
                             ".cn-hangzhou.nas.aliyuncs.com", "status": "Active"}),
    "alicloud:gpdb/instance:Instance": ("gp-", lambda n, i, id_: {
        "connectionString": f"{id_}-master.gpdbmaster.rds.aliyuncs.com", "port": "5432",
        "status": "Running"}),
    "alicloud:gpdb/account:Account": ("", lambda n, i, id_: {"status": "Active"}),
    "alicloud:gpdb/database:Database": ("", lambda n, i, id_: {}),
    "alicloud:cr/namespace:Namespace": ("", lambda n, i, id_: {}),
    "alicloud:cr/repo:Repo": ("", lambda n, i, id_: {
        "domainLists": [{"public": "registry.cn-hangzhou.aliyuncs.com",
                         "internal": "registry-internal.cn-hangzhou.aliyuncs.com",
                         "vpc": "registry-vpc.cn-hangzhou.aliyuncs.com"}]}),
    "random:index/randomPassword:RandomPassword": ("", lambda n, i, id_: {
        "result": "Off1ine-" + _digest(n, "password", length=24),
        "bcryptHash": "$2a$10$" + _digest(n, "bcrypt", length=53)}),
    "random:index/randomId:RandomId": ("", lambda n, i, id_: {
        "hex": _digest(n, "hex", length=2 * int(i.get("byteLength", 4))),
        "dec": str(int(_digest(n, "dec", length=8), 16)),
        "b64Url": _digest(n, "b64", length=8), "b64Std": _digest(n, "b64", length=8)}),
}

# Invokes (functions) the program may call: token -> outputs from args.
INVOKES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "alicloud:cs/getClusterCredential:getClusterCredential": lambda a: {
        "clusterId": a.get("clusterId"), "kubeConfig": _kubeconfig(a.get("clusterId", "c0")),
        "clusterName": "offline", "certificateAuthority": {}, "expiration": ""},
    "alicloud:index/getZones:getZones": lambda a: {
        "ids": ["cn-hangzhou-j", "cn-hangzhou-k"], "zones": [{"id": "cn-hangzhou-j"},
                                                             {"id": "cn-hangzhou-k"}]},
    "alicloud:index/getAccount:getAccount": lambda a: {"id": "1234567890123456"},
}


_SIG, _SECRET_SIG = "4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270"


class OfflineMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        super().__init__()
        # Set by the recording monitor for the registration running on this thread (the SDK
        # registers resources from several threads at once).
        self.registration = threading.local()

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        resource_id, state = self._outputs(args)
        secret = getattr(self.registration, "secret_outputs", set())
        return resource_id, {k: {_SIG: _SECRET_SIG, "value": v} if k in secret else v
                             for k, v in state.items()}

    def _outputs(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        inputs = dict(args.inputs)
        if args.typ.startswith("kubernetes:"):
            return self._kubernetes(args.typ, args.name, inputs)
        if args.typ.startswith("pulumi:providers:"):
            return f"{args.name}-provider", inputs
        prefix, computed = COMPUTED.get(args.typ, ("", lambda n, i, id_: {}))
        resource_id = prefix + _digest(args.typ, args.name)
        if args.typ == "alicloud:cs/nodePool:NodePool":
            resource_id = f"{inputs.get('clusterId', 'c0')}:{prefix}{_digest(args.name)}"
        state = {**inputs, **computed(args.name, inputs, resource_id)}
        if args.typ == "alicloud:oss/bucket:Bucket" and "bucket" not in state:
            state["bucket"] = f"{args.name}-{_digest(args.name, length=7)}"
        return resource_id, state

    @staticmethod
    def _kubernetes(typ: str, name: str, inputs: dict) -> tuple[str, dict]:
        metadata = dict(inputs.get("metadata") or {})
        # The Kubernetes provider auto-names objects without metadata.name: <name>-<8 chars>.
        metadata.setdefault("name", f"{name}-{_digest(typ, name, length=8)}")
        cluster_scoped = typ.split(":")[-1] in {"Namespace", "PersistentVolume", "StorageClass",
                                                "ClusterRole", "ClusterRoleBinding",
                                                "PriorityClass"}
        if not cluster_scoped:
            metadata.setdefault("namespace", "default")
        metadata.setdefault("uid", _digest(typ, name, "uid", length=32))
        state = {**inputs, "metadata": metadata}
        if typ == "kubernetes:core/v1:Service":
            state.setdefault("spec", {})
            octets = int(_digest(name)[:2], 16) % 16, int(_digest(name)[2:4], 16)
            state["spec"] = {**state["spec"], "clusterIP": f"172.21.{octets[0]}.{octets[1]}"}
        object_id = metadata["name"] if cluster_scoped else f"{metadata['namespace']}/" \
                                                            f"{metadata['name']}"
        return object_id, state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list]:
        handler = INVOKES.get(args.token)
        if handler is None:
            raise NotImplementedError(f"offline renderer has no mock for invoke {args.token}; "
                                      "add one to tools/offline_outputs.py")
        return handler(dict(args.args)), []  # no failures (the SDK iterates this list)
