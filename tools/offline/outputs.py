"""Realistic computed outputs for offline rendering.

The Alibaba Cloud and Kubernetes providers compute ids, endpoints and credentials at create
time. Offline, `OfflineMocks` returns values of the same shape, derived deterministically from
the resource's URN-free identity (type and name) and the stack's region (`alicloud:region`), so
rendering a stack twice gives identical resources and a stack in another region gets that
region's endpoints. Add a row to `COMPUTED` when a component starts using a new resource type's
outputs.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pulumi

from tools.offline.wire import secret_envelope


def _digest(*parts: str, length: int = 16) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:length]


def _kubeconfig(server: str, cluster_name: str) -> str:
    return f"""apiVersion: v1
kind: Config
clusters:
- cluster:
    server: {server}
    certificate-authority-data: LS0tLS1CRUdJTi1PRkZMSU5FLUNBLS0tLS0K
  name: {cluster_name}
contexts:
- context:
    cluster: {cluster_name}
    user: offline-admin
  name: offline
current-context: offline
users:
- name: offline-admin
  user:
    client-certificate-data: LS0tLS1CRUdJTi1PRkZMSU5FLUNFUlQtLS0tLQo=
    client-key-data: LS0tLS1CRUdJTi1PRkZMSU5FLUtFWS0tLS0tCg==
"""


@dataclass(frozen=True)
class Seed:
    """What a computed output may depend on: the resource and the stack it is declared in."""

    name: str
    inputs: dict[str, Any]
    id: str
    region: str


def api_server(cluster_id: str, region: str) -> str:
    """The private API server endpoint of a cluster (the stacks keep it off the internet)."""
    return f"https://{cluster_id}.{region}.vpc.cs.aliyuncs.com:6443"


Computed = Callable[[Seed], dict[str, Any]]
ACCOUNT_ID = "1234567890123456"  # the offline account (also the bucket owner below)

# type token -> (id prefix, computed outputs)
COMPUTED: dict[str, tuple[str, Computed]] = {
    "alicloud:vpc/network:Network": (
        "vpc-",
        lambda r: {
            "routeTableId": f"vtb-{_digest(r.name, 'rt')}",
            "routerId": f"vrt-{_digest(r.name, 'r')}",
            "status": "Available",
        },
    ),
    "alicloud:vpc/switch:Switch": ("vsw-", lambda r: {"status": "Available"}),
    "alicloud:vpc/natGateway:NatGateway": (
        "ngw-",
        lambda r: {
            "snatTableIds": f"stb-{_digest(r.name, 's')}",
            "forwardTableIds": f"ftb-{_digest(r.name, 'f')}",
        },
    ),
    "alicloud:ecs/eipAddress:EipAddress": (
        "eip-",
        lambda r: {
            "ipAddress": f"47.96.{int(_digest(r.name)[:2], 16)}.{int(_digest(r.name)[2:4], 16)}",
            "status": "Available",
        },
    ),
    "alicloud:ecs/securityGroup:SecurityGroup": ("sg-", lambda r: {}),
    "alicloud:cs/managedKubernetes:ManagedKubernetes": (
        "c",
        lambda r: {
            "vpcId": r.inputs.get("vpcId", "vpc-offline"),
            "securityGroupId": r.inputs.get("securityGroupId", f"sg-{_digest(r.name, 'sg')}"),
            "slbInternet": "",
            "slbIntranet": f"lb-{_digest(r.name, 'slb')}",
            "slbId": f"lb-{_digest(r.name, 'slb')}",
            "connections": [
                {
                    "apiServerIntranet": api_server(r.id, r.region),
                    "apiServerInternet": "",
                    "masterPublicIp": "",
                    "serviceDomain": "cluster.local",
                }
            ],
            "workerRamRoleName": f"KubernetesWorkerRole-{_digest(r.name, 'role', length=8)}",
            "clusterDomain": "cluster.local",
            # RRSA on (enable_rrsa): the shape flattenRRSAMetadata gives the provider's state.
            "rrsaMetadata": {
                "enabled": True,
                "ramOidcProviderArn": f"acs:ram::{ACCOUNT_ID}:oidc-provider/ack-rrsa-{r.id}",
                "ramOidcProviderName": f"ack-rrsa-{r.id}",
                "rrsaOidcIssuerUrl": f"https://oidc-ack-{r.region}.oss-{r.region}.aliyuncs.com/{r.id}",
            },
        },
    ),
    "alicloud:slb/acl:Acl": ("acl-", lambda r: {}),
    "alicloud:cs/nodePool:NodePool": (
        "np",
        lambda r: {
            "nodePoolId": r.id.split(":")[-1],
            "scalingGroupId": f"asg-{_digest(r.name, 'asg')}",
        },
    ),
    "alicloud:cs/kubernetesAddon:KubernetesAddon": (
        "",
        lambda r: {"currentConfig": r.inputs.get("config", ""), "nextVersion": ""},
    ),
    "alicloud:oss/bucket:Bucket": (
        "",
        lambda r: {
            "extranetEndpoint": f"oss-{r.region}.aliyuncs.com",
            "intranetEndpoint": f"oss-{r.region}-internal.aliyuncs.com",
            "location": f"oss-{r.region}",
            "owner": ACCOUNT_ID,
        },
    ),
    "alicloud:ram/user:User": ("", lambda r: {}),
    "alicloud:ram/role:Role": (
        "",
        lambda r: {
            "arn": f"acs:ram::{ACCOUNT_ID}:role/{r.inputs.get('roleName', r.name)}",
            "roleId": str(int(_digest(r.name, "role", length=12), 16)),
        },
    ),
    "alicloud:ram/accessKey:AccessKey": (
        "LTAI",
        lambda r: {"secret": f"offline{_digest(r.name, 'secret', length=24)}", "status": "Active"},
    ),
    "alicloud:nas/fileSystem:FileSystem": ("", lambda r: {}),
    "alicloud:nas/mountTarget:MountTarget": (
        "",
        lambda r: {
            "mountTargetDomain": f"{r.id.split(':')[0]}-{_digest(r.name, length=5)}"
            f".{r.region}.nas.aliyuncs.com",
            "status": "Active",
        },
    ),
    "alicloud:gpdb/instance:Instance": (
        "gp-",
        lambda r: {
            "connectionString": f"{r.id}-master.gpdbmaster.rds.aliyuncs.com",
            "port": "5432",
            "status": "Running",
        },
    ),
    "alicloud:gpdb/account:Account": ("", lambda r: {"status": "Active"}),
    "alicloud:gpdb/database:Database": ("", lambda r: {}),
    "alicloud:cr/namespace:Namespace": ("", lambda r: {}),
    "alicloud:cr/repo:Repo": (
        "",
        lambda r: {
            "domainLists": [
                {
                    "public": f"registry.{r.region}.aliyuncs.com",
                    "internal": f"registry-internal.{r.region}.aliyuncs.com",
                    "vpc": f"registry-vpc.{r.region}.aliyuncs.com",
                }
            ]
        },
    ),
    "random:index/randomPassword:RandomPassword": (
        "",
        lambda r: {
            "result": "Off1ine-" + _digest(r.name, "password", length=24),
            "bcryptHash": "$2a$10$" + _digest(r.name, "bcrypt", length=53),
        },
    ),
    "random:index/randomId:RandomId": (
        "",
        lambda r: {
            "hex": _digest(r.name, "hex", length=2 * int(r.inputs.get("byteLength", 4))),
            "dec": str(int(_digest(r.name, "dec", length=8), 16)),
            "b64Url": _digest(r.name, "b64", length=8),
            "b64Std": _digest(r.name, "b64", length=8),
        },
    ),
}


@dataclass
class _Clusters:
    """Clusters declared so far, by id: the credential invoke answers for the cluster asked."""

    names: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


_SIG, _SECRET_SIG = "4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270"


class OfflineMocks(pulumi.runtime.Mocks):
    def __init__(self, region: str, stack: str) -> None:
        super().__init__()
        self.region, self.stack = region, stack
        self.clusters = _Clusters()
        # Set by the recording monitor for the registration running on this thread (the SDK
        # registers resources from several threads at once).
        self.registration = threading.local()

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        resource_id, state = self._outputs(args)
        secret: set[str] = getattr(self.registration, "secret_outputs", set())
        return resource_id, {k: secret_envelope(v) if k in secret else v for k, v in state.items()}

    def _outputs(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        inputs = dict(args.inputs)
        if args.typ.startswith("kubernetes:"):
            return self._kubernetes(args.typ, args.name, inputs)
        if args.typ.startswith("pulumi:providers:"):
            return f"{args.name}-provider", inputs
        prefix, computed = COMPUTED.get(args.typ, ("", lambda r: {}))
        resource_id = prefix + _digest(args.typ, args.name)
        if args.typ == "alicloud:cs/nodePool:NodePool":
            resource_id = f"{inputs.get('clusterId', 'c0')}:{prefix}{_digest(args.name)}"
        if args.typ == "alicloud:cs/managedKubernetes:ManagedKubernetes":
            with self.clusters.lock:
                self.clusters.names[resource_id] = str(inputs.get("name") or args.name)
        seed = Seed(args.name, inputs, resource_id, self.region)
        state = {**inputs, **computed(seed)}
        if args.typ == "alicloud:oss/bucket:Bucket" and "bucket" not in state:
            state["bucket"] = f"{args.name}-{_digest(args.name, length=7)}"
        return resource_id, state

    @staticmethod
    def _kubernetes(typ: str, name: str, inputs: dict) -> tuple[str, dict]:
        metadata = dict(inputs.get("metadata") or {})
        # The Kubernetes provider auto-names objects without metadata.name: <name>-<8 chars>.
        metadata.setdefault("name", f"{name}-{_digest(typ, name, length=8)}")
        cluster_scoped = typ.split(":")[-1] in {
            "Namespace",
            "PersistentVolume",
            "StorageClass",
            "ClusterRole",
            "ClusterRoleBinding",
            "PriorityClass",
        }
        if not cluster_scoped:
            metadata.setdefault("namespace", "default")
        metadata.setdefault("uid", _digest(typ, name, "uid", length=32))
        state = {**inputs, "metadata": metadata}
        if typ == "kubernetes:core/v1:Service":
            state.setdefault("spec", {})
            octets = int(_digest(name)[:2], 16) % 16, int(_digest(name)[2:4], 16)
            state["spec"] = {**state["spec"], "clusterIP": f"172.21.{octets[0]}.{octets[1]}"}
        object_id = (
            metadata["name"] if cluster_scoped else f"{metadata['namespace']}/{metadata['name']}"
        )
        return object_id, state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list]:
        arguments = dict(args.args)
        if args.token == "alicloud:cs/getClusterCredential:getClusterCredential":
            result = self._cluster_credential(str(arguments.get("clusterId", "")))
        elif args.token == "alicloud:index/getZones:getZones":
            zones = [f"{self.region}-j", f"{self.region}-k"]
            result = {"ids": zones, "zones": [{"id": zone} for zone in zones]}
        elif args.token == "alicloud:index/getAccount:getAccount":
            result = {"id": ACCOUNT_ID}
        else:
            raise NotImplementedError(
                f"offline renderer has no mock for invoke {args.token}; "
                "add one to tools/offline/outputs.py"
            )
        return result, []  # no failures (the SDK iterates this list)

    def _cluster_credential(self, cluster_id: str) -> dict[str, Any]:
        with self.clusters.lock:
            name = self.clusters.names.get(cluster_id)
        if name is None:
            raise LookupError(f"getClusterCredential: no cluster {cluster_id!r} was declared")
        return {
            "clusterId": cluster_id,
            "clusterName": name,
            "kubeConfig": _kubeconfig(api_server(cluster_id, self.region), name),
            "certificateAuthority": {},
            "expiration": "",
        }
