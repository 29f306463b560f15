"""Hand-declared resource sets for the policy tests, rendered like the real program.

`declare(shape)` declares a complete, well-formed chatchat stack with the real pulumi_alicloud and
pulumi_kubernetes classes; each field of `Shape` is one knob a test turns to break one rule. The
resources go through `tools.offline.engine.render_program`, so the policies see exactly the engine's
property names, and through the offline runner's `check_rendering`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

import pulumi
import pulumi_alicloud as alicloud
import pulumi_kubernetes as k8s
import pytest

from components.api_server_access import ListenerAcl
from tools.checks.policy_runner import (
    Violation,
    check_rendering,
    load_policies,
    parse_policy_config,
)
from tools.offline.engine import Rendering, render_program
from tools.offline.stack_files import read_stack_file

POLICIES = load_policies()
NAMESPACE = "chatchat"
MODEL_CACHE = "chatchat-model-cache"  # a Fluid Dataset; Fluid names its PVC the same
IMAGE = "registry-vpc.cn-hangzhou.aliyuncs.com/chatchat/{}:0.1.0"


@dataclass(frozen=True)
class Shape:
    # GPU pool
    pool_types: tuple[str, ...] = ("ecs.gn7i-c8g1.2xlarge",)
    pool_max: int = 2
    pool_labels: tuple[tuple[str, str], ...] = ()
    # llm workload
    llm_annotations: tuple[tuple[str, str], ...] = (
        ("chatchat.io/model", "qwen-7b-chat-aiacc"),
        ("chatchat.io/model-kind", "aiacc"),
        ("chatchat.io/gpu-memory-required-gib", "9.6"),
    )
    llm_selector: tuple[tuple[str, str], ...] = (("chatchat.io/node-pool", "a10"),)
    llm_tolerates_gpu: bool = True
    llm_eci: bool = False
    llm_eci_specs: str | None = None
    llm_gpu_limit: bool = True
    llm_image: str = IMAGE.format("llm")
    llm_privileged: bool = False
    llm_requests: bool = True
    llm_api_key_literal: bool = False
    llm_replicas: int = 1
    llm_scaled_min: int | None = None  # a KEDA ScaledObject with this minReplicaCount
    llm_pdb: bool = False  # a PodDisruptionBudget selecting the llm pods
    namespace_eci: bool = False
    # chat workload
    chat_replicas: int = 2
    chat_eci: bool = False
    chat_gpu: bool = False  # nvidia.com/gpu limit and EMBEDDING_DEVICE=cuda (GPU embedding)
    chat_tolerates_gpu: bool = False
    chat_embedding_device: str | None = "cuda"  # with chat_gpu; None: no EMBEDDING_DEVICE
    chat_oidc_issuer: str | None = "https://idp.example.com"  # OIDC_ISSUER; None: no sign-in
    chat_service_annotations: tuple[tuple[str, str], ...] = (
        ("service.beta.kubernetes.io/alibaba-cloud-loadbalancer-address-type", "intranet"),
    )
    network_policy_namespace: str | None = NAMESPACE
    # a GPU bulk-import Job (Indexed, like components/chat_imports.py): its parallelism; None: none
    import_parallelism: int | None = None
    import_image: str = IMAGE.format("chat") + "-cuda"
    import_privileged: bool = False
    import_tolerates_gpu: bool = True
    # storage and access
    bucket_acl: str = "private"
    bucket_sse: bool = True
    separate_sse: bool = False
    separate_acl: str | None = None
    ram_resources: tuple[str, ...] = (
        "acs:oss:*:*:chatchat-models",
        "acs:oss:*:*:chatchat-models/*",
    )
    ram_system_attachment: str | None = None
    # the OSS model volume: its volume attributes (RRSA) and the RAM role's trust condition
    oss_volume_attributes: tuple[tuple[str, str], ...] = (
        ("authType", "rrsa"),
        ("roleName", "chatchat-models-read"),
    )
    oss_volume_secret: bool = False
    trust_condition: tuple[tuple[str, str], ...] = (
        ("oidc:aud", "sts.aliyuncs.com"),
        ("oidc:iss", "https://oidc-ack-cn-hangzhou.oss-cn-hangzhou.aliyuncs.com/c0ffee"),
        ("oidc:sub", "system:serviceaccount:ack-csi-fuse:csi-fuse-ossfs"),
    )
    # the Fluid model cache (a Dataset) and how the llm mounts the PVC Fluid makes for it
    fluid_access_modes: tuple[str, ...] = ("ReadOnlyMany",)
    fluid_mount_read_only: bool = True
    fluid_inline_key: bool = False
    llm_cache_mount_read_only: bool = True
    nas_cidr: str = "10.30.0.0/16"
    sg_cidr: str = "10.30.0.0/16"
    # ADB
    adb_vector: str | None = "enabled"
    adb_spec: str = "4C32G"
    adb_whitelist: str = "10.30.0.0/16"
    # production
    zones: tuple[str, ...] = ("cn-hangzhou-j", "cn-hangzhou-k")
    protect: bool = True
    deletion_protection: bool = True
    ack_version: str = "1.36.1-aliyun.1"
    api_server_public: bool = False
    api_server_cidrs: tuple[str, ...] = ()
    api_server_acl_bound: bool = True
    tags: dict[str, str] = field(
        default_factory=lambda: {"project": "chatchat", "stack": "prod", "owner": "platform-team"}
    )

    def but(self, **changes: Any) -> Shape:
        return replace(self, **changes)


GOOD = Shape()


def declare(shape: Shape) -> None:
    """Declare the stack; call inside `render_program`."""
    tags = shape.tags
    vpc = alicloud.vpc.Network("vpc", vpc_name="chatchat", cidr_block="10.30.0.0/16", tags=tags)
    switches = [
        alicloud.vpc.Switch(
            f"vsw-{i}", vpc_id=vpc.id, zone_id=zone, tags=tags, cidr_block=f"10.30.{16 * i}.0/20"
        )
        for i, zone in enumerate(shape.zones)
    ]
    sg = alicloud.ecs.SecurityGroup("sg", vpc_id=vpc.id, tags=tags)
    alicloud.ecs.SecurityGroupRule(
        "sg-api",
        type="ingress",
        ip_protocol="tcp",
        port_range="6443/6443",
        security_group_id=sg.id,
        cidr_ip=shape.sg_cidr,
        policy="accept",
    )
    cluster = alicloud.cs.ManagedKubernetes(
        "ack",
        cluster_spec="ack.pro.small",
        vswitch_ids=[s.id for s in switches],
        deletion_protection=shape.deletion_protection,
        version=shape.ack_version,
        slb_internet_enabled=shape.api_server_public,
        tags=tags,
    )
    if shape.api_server_cidrs:
        acl = alicloud.slb.Acl("api-acl", name="api-server", ip_version="ipv4")
        entries = [
            alicloud.slb.AclEntryAttachment(f"api-acl-{i}", acl_id=acl.id, entry=cidr)
            for i, cidr in enumerate(shape.api_server_cidrs)
        ]
        if shape.api_server_acl_bound:
            ListenerAcl(
                "api-listener-acl",
                region="cn-hangzhou",
                load_balancer_id=cluster.slb_id,
                acl_id=acl.id,
                opts=pulumi.ResourceOptions(depends_on=entries),
            )
    alicloud.cs.NodePool(
        "system",
        cluster_id=cluster.id,
        vswitch_ids=[s.id for s in switches],
        instance_types=["ecs.g7.xlarge"],
        desired_size=2,
        tags=tags,
        labels=[alicloud.cs.NodePoolLabelArgs(key="chatchat.io/node-pool", value="system")],
    )
    labels = {
        "chatchat.io/node-pool": "a10",
        "chatchat.io/gpu-family": "gn7i",
        "chatchat.io/gpu-memory-gib": "24",
        **dict(shape.pool_labels),
    }
    alicloud.cs.NodePool(
        "gpu-a10",
        cluster_id=cluster.id,
        vswitch_ids=[s.id for s in switches],
        instance_types=list(shape.pool_types),
        tags=tags,
        scaling_config=alicloud.cs.NodePoolScalingConfigArgs(
            enable=True, min_size=0, max_size=shape.pool_max
        ),
        labels=[alicloud.cs.NodePoolLabelArgs(key=k, value=v) for k, v in labels.items()],
        taints=[
            alicloud.cs.NodePoolTaintArgs(key="nvidia.com/gpu", value="true", effect="NoSchedule")
        ],
    )
    _storage(shape, vpc)
    _workloads(shape)


def _storage(shape: Shape, vpc: alicloud.vpc.Network) -> None:
    tags, protect = shape.tags, pulumi.ResourceOptions(protect=shape.protect)
    sse = (
        alicloud.oss.BucketServerSideEncryptionRuleArgs(sse_algorithm="AES256")
        if shape.bucket_sse
        else None
    )
    bucket = alicloud.oss.Bucket(
        "models",
        bucket="chatchat-models",
        acl=shape.bucket_acl,
        server_side_encryption_rule=sse,
        tags=tags,
        opts=protect,
    )
    if shape.separate_sse:
        alicloud.oss.BucketServerSideEncryption(
            "models-sse", bucket=bucket.bucket, sse_algorithm="KMS"
        )
    if shape.separate_acl:
        alicloud.oss.BucketAcl("models-acl", bucket=bucket.bucket, acl=shape.separate_acl)
    document = {
        "Version": "1",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["oss:GetObject", "oss:ListObjects"],
                "Resource": list(shape.ram_resources),
            }
        ],
    }
    policy = alicloud.ram.Policy(
        "models-read",
        policy_name="chatchat-models-read",
        policy_document=json.dumps(document),
        tags=tags,
    )
    user = alicloud.ram.User("models-reader", name="chatchat-models-reader")
    alicloud.ram.UserPolicyAttachment(
        "models-read", user_name=user.name, policy_name=policy.policy_name, policy_type="Custom"
    )
    if shape.ram_system_attachment:
        alicloud.ram.UserPolicyAttachment(
            "models-system",
            user_name=user.name,
            policy_name=shape.ram_system_attachment,
            policy_type="System",
        )
    _oss_volume(shape, bucket)
    fs = alicloud.nas.FileSystem(
        "kb", protocol_type="NFS", storage_type="Performance", tags=tags, opts=protect
    )
    group = alicloud.nas.AccessGroup(
        "kb", access_group_name="chatchat-kb", access_group_type="Vpc", file_system_type="standard"
    )
    alicloud.nas.AccessRule(
        "kb-vpc",
        access_group_name=group.access_group_name,
        source_cidr_ip=shape.nas_cidr,
        rw_access_type="RDWR",
        user_access_type="no_squash",
        priority=1,
        opts=pulumi.ResourceOptions(depends_on=[fs]),
    )
    alicloud.gpdb.Instance(
        "vectors",
        engine="gpdb",
        engine_version="6.0",
        db_instance_mode="StorageElastic",
        db_instance_category="HighAvailability",
        payment_type="PayAsYouGo",
        instance_spec=shape.adb_spec,
        seg_node_num=4,
        storage_size=50,
        zone_id="cn-hangzhou-j",
        vpc_id=vpc.id,
        vswitch_id="vsw-0",
        vector_configuration_status=shape.adb_vector,
        ip_whitelists=[alicloud.gpdb.InstanceIpWhitelistArgs(security_ip_list=shape.adb_whitelist)],
        tags=tags,
        opts=protect,
    )


def _oss_volume(shape: Shape, bucket: alicloud.oss.Bucket) -> None:
    trust = {
        "Version": "1",
        "Statement": [
            {
                "Action": "sts:AssumeRole",
                "Effect": "Allow",
                "Principal": {"Federated": ["acs:ram::1234567890123456:oidc-provider/ack-rrsa-c0"]},
                "Condition": {"StringEquals": dict(shape.trust_condition)},
            }
        ],
    }
    alicloud.ram.Role(
        "models-reader-role",
        role_name="chatchat-models-read",
        assume_role_policy_document=json.dumps(trust),
        tags=shape.tags,
    )
    csi: dict[str, Any] = {
        "driver": "ossplugin.csi.alibabacloud.com",
        "volumeHandle": "chatchat-models",
        "readOnly": True,
        "volumeAttributes": {"bucket": bucket.bucket, **dict(shape.oss_volume_attributes)},
    }
    if shape.oss_volume_secret:
        csi["nodePublishSecretRef"] = {"name": "oss-keys", "namespace": NAMESPACE}
    key_options = (
        {"fs.oss.accessKeyId": "LTAI0000", "fs.oss.accessKeySecret": "s3cret"}
        if shape.fluid_inline_key
        else {}
    )
    k8s.apiextensions.CustomResource(
        "models-cache",
        api_version="data.fluid.io/v1alpha1",
        kind="Dataset",
        metadata={"name": MODEL_CACHE, "namespace": NAMESPACE},
        spec={
            "accessModes": list(shape.fluid_access_modes),
            "mounts": [
                {
                    "name": "models",
                    "mountPoint": "oss://chatchat-models/llm-model/",
                    "path": "/",
                    "readOnly": shape.fluid_mount_read_only,
                    "options": {
                        "fs.oss.endpoint": "oss-cn-hangzhou-internal.aliyuncs.com",
                        **key_options,
                    },
                    "encryptOptions": [
                        {"name": k, "valueFrom": {"secretKeyRef": {"name": "oss-reader", "key": k}}}
                        for k in ("fs.oss.accessKeyId", "fs.oss.accessKeySecret")
                        if not key_options
                    ],
                }
            ],
        },
    )
    k8s.core.v1.PersistentVolume(
        "models-pv",
        metadata={"name": "chatchat-models"},
        spec={
            "capacity": {"storage": "50Gi"},
            "accessModes": ["ReadOnlyMany"],
            "storageClassName": "",
            "csi": csi,
        },
    )


def _container(
    name: str,
    image: str,
    *,
    gpu: bool = False,
    requests: bool = True,
    privileged: bool = False,
    env: list[dict] | None = None,
) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if requests:
        resources["requests"] = {"cpu": "2", "memory": "8Gi"}
    if gpu:
        resources["limits"] = {"nvidia.com/gpu": "1"}
    return {
        "name": name,
        "image": image,
        "resources": resources,
        "env": env or [],
        "securityContext": {"privileged": privileged, "runAsNonRoot": True, "runAsUser": 10001},
    }


def _workloads(shape: Shape) -> None:
    ns_labels = {"alibabacloud.com/eci": "true"} if shape.namespace_eci else {}
    k8s.core.v1.Namespace("ns", metadata={"name": NAMESPACE, "labels": ns_labels})
    secret_ref = {"secretKeyRef": {"name": "chatchat-api-key", "key": "api-key"}}
    api_key = (
        {"name": "LLM_API_KEY", "value": "sk-literal"}
        if shape.llm_api_key_literal
        else {"name": "LLM_API_KEY", "valueFrom": secret_ref}
    )
    pod_labels = {
        "app.kubernetes.io/name": "chatchat",
        "app.kubernetes.io/instance": NAMESPACE,
        "app.kubernetes.io/component": "llm",
    }
    annotations = dict(shape.llm_annotations)
    if shape.llm_eci:
        pod_labels["alibabacloud.com/eci"] = "true"
    if shape.llm_eci_specs:
        annotations["k8s.aliyun.com/eci-use-specs"] = shape.llm_eci_specs
    tolerations = (
        [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
        if shape.llm_tolerates_gpu
        else []
    )
    llm = _container(
        "llm",
        shape.llm_image,
        gpu=shape.llm_gpu_limit,
        requests=shape.llm_requests,
        privileged=shape.llm_privileged,
        env=[{"name": "LLM_MODEL", "value": annotations.get("chatchat.io/model", "")}, api_key],
    )
    llm["volumeMounts"] = [
        {
            "name": "llm-model",
            "mountPath": "/llm-model",
            "readOnly": shape.llm_cache_mount_read_only,
        }
    ]
    _deployment(
        "llm",
        shape.llm_replicas,
        pod_labels,
        annotations,
        {
            "containers": [llm],
            "nodeSelector": dict(shape.llm_selector),
            "tolerations": tolerations,
            # the Fluid cache's PVC (named after its Dataset)
            "volumes": [
                {
                    "name": "llm-model",
                    "persistentVolumeClaim": {"claimName": MODEL_CACHE, "readOnly": True},
                }
            ],
        },
    )
    if shape.llm_scaled_min is not None:
        k8s.apiextensions.CustomResource(
            "llm-autoscaler",
            api_version="keda.sh/v1alpha1",
            kind="ScaledObject",
            metadata={"name": f"llm-{NAMESPACE}", "namespace": NAMESPACE},
            spec={
                "scaleTargetRef": {"kind": "Deployment", "name": f"llm-{NAMESPACE}"},
                "minReplicaCount": shape.llm_scaled_min,
                "maxReplicaCount": max(shape.llm_scaled_min, 1),
                "triggers": [],
            },
        )
    if shape.llm_pdb:
        k8s.policy.v1.PodDisruptionBudget(
            "llm-pdb",
            metadata={"name": f"llm-{NAMESPACE}", "namespace": NAMESPACE},
            spec={"maxUnavailable": 1, "selector": {"matchLabels": dict(pod_labels)}},
        )
    chat_labels = {
        "app.kubernetes.io/name": "chatchat",
        "app.kubernetes.io/instance": NAMESPACE,
        "app.kubernetes.io/component": "chat",
    }
    if shape.chat_eci:
        chat_labels["alibabacloud.com/eci"] = "true"
    chat_env: list[dict[str, Any]] = [
        {"name": "CHAT_API_KEY", "valueFrom": secret_ref},
        {"name": "LLM_MODEL", "value": annotations.get("chatchat.io/model", "")},
        {"name": "EMBEDDING_MODEL", "value": "text2vec-bge-large-chinese"},
    ]
    if shape.chat_gpu and shape.chat_embedding_device:
        chat_env.append({"name": "EMBEDDING_DEVICE", "value": shape.chat_embedding_device})
    if shape.chat_oidc_issuer is not None:
        chat_env += [
            {"name": "OIDC_ISSUER", "value": shape.chat_oidc_issuer},
            {"name": "OIDC_CLIENT_ID", "value": "chatchat"},
        ]
    chat = _container("chat", IMAGE.format("chat"), gpu=shape.chat_gpu, env=chat_env)
    chat_spec: dict[str, Any] = {"containers": [chat]}
    if shape.chat_tolerates_gpu:
        chat_spec["tolerations"] = [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
        ]
    _deployment("chat", shape.chat_replicas, chat_labels, {}, chat_spec)
    k8s.core.v1.Service(
        "chat",
        metadata={
            "name": f"chat-{NAMESPACE}",
            "namespace": NAMESPACE,
            "annotations": dict(shape.chat_service_annotations),
        },
        spec={
            "type": "LoadBalancer",
            "selector": chat_labels,
            "ports": [{"name": "web", "port": 8501}],
        },
    )
    if shape.import_parallelism is not None:
        _import_job(shape)
    if shape.network_policy_namespace:
        k8s.networking.v1.NetworkPolicy(
            "default-deny",
            metadata={"name": "default-deny", "namespace": shape.network_policy_namespace},
            spec={"podSelector": {}, "policyTypes": ["Ingress"]},
        )


def _import_job(shape: Shape) -> None:
    """A GPU bulk import: one card per pod on the a10 pool, `parallelism` pods at once."""
    labels = {"app.kubernetes.io/name": "chatchat", "app.kubernetes.io/component": "import"}
    worker = _container(
        "import",
        shape.import_image,
        gpu=True,
        privileged=shape.import_privileged,
        env=[{"name": "EMBEDDING_DEVICE", "value": "cuda"}],
    )
    spec: dict[str, Any] = {
        "containers": [worker],
        "restartPolicy": "Never",
        "nodeSelector": {"chatchat.io/node-pool": "a10"},
    }
    if shape.import_tolerates_gpu:
        spec["tolerations"] = [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
        ]
    k8s.batch.v1.Job(
        "import",
        metadata={"name": "import-manuals", "namespace": NAMESPACE},
        spec={
            "completionMode": "Indexed",
            "completions": 8,
            "parallelism": shape.import_parallelism,
            "backoffLimitPerIndex": 2,
            "template": {"metadata": {"labels": labels}, "spec": spec},
        },
    )


def _deployment(role: str, replicas: int, labels: dict, annotations: dict, spec: dict) -> None:
    k8s.apps.v1.Deployment(
        role,
        metadata={"name": f"{role}-{NAMESPACE}", "namespace": NAMESPACE},
        spec={
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels, "annotations": annotations}, "spec": spec},
        },
    )


def render(shape: Shape = GOOD, stack: str = "prod") -> Rendering:
    return render_program(lambda: declare(shape), read_stack_file(stack), stack)


_RENDERED: dict[tuple[str, str], Rendering] = {}


def check(
    shape: Shape = GOOD, stack: str = "prod", config: dict[str, Any] | None = None
) -> list[Violation]:
    """The pack's violations of `shape`; each shape is rendered once (renderings are
    deterministic and the runner only reads them)."""
    key = (repr(shape), stack)
    if key not in _RENDERED:
        _RENDERED[key] = render(shape, stack)
    settings = parse_policy_config(config or {}, POLICIES)
    return check_rendering(_RENDERED[key], POLICIES, settings)


def of(policy: str, violations: list[Violation]) -> list[Violation]:
    return [v for v in violations if v.policy == policy]


@dataclass(frozen=True)
class Case:
    """One policy's failing resource set (and the passing set it is measured against)."""

    id: str
    policy: str
    broken: Shape
    names: str  # what the message must name: the resource
    fix: str  # a piece of the fix the message must give
    passing: Shape = GOOD
    stack: str = "prod"
    config: dict[str, Any] | None = None


def assert_passes(case: Case) -> None:
    found = of(case.policy, check(case.passing, case.stack, case.config))
    assert found == [], [v.message for v in found]


def assert_caught(case: Case) -> None:
    found = of(case.policy, check(case.broken, case.stack, case.config))
    assert found, f"{case.policy} did not report {case.id}"
    for violation in found:
        assert case.names in violation.message, violation.message
        assert "Fix:" in violation.message and case.fix in violation.message, violation.message
        # A stack-wide violation (no URN) names its resources in the message instead.
        assert violation.urn is None or violation.urn.startswith(f"urn:pulumi:{case.stack}::")


class PolicyCases:
    """The scaffold of every policy test file: a `Test...` subclass in a module that defines
    `CASES` checks each case's passing set to pass and its broken set to be caught."""

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "case" in metafunc.fixturenames:
            cases: list[Case] = metafunc.module.CASES
            metafunc.parametrize("case", cases, ids=[c.id for c in cases])

    def test_passing_resource_set_is_not_reported(self, case: Case) -> None:
        assert_passes(case)

    def test_violation_names_resource_and_fix(self, case: Case) -> None:
        assert_caught(case)
