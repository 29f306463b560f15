"""Where the models and the knowledge-base files live, and the PVCs the workloads mount.

Models: an OSS bucket (mounted through ossfs by the OSS CSI driver, which assumes a RAM role
through the cluster's RRSA OIDC provider: no AccessKey anywhere) or a NAS file system (NFS,
reachable only from the VPC). Either way two static PVs point at the model prefix: one
read-only (the llm at /llm-model) and one read-write (only the conversion Job).
Knowledge base: a dynamic ESSD disk (ReadWriteOnce) or a NAS subdirectory (ReadWriteMany).
A user's `llm.modelPVC` / `chat.kbPVC` replaces what the stack would make.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_alicloud as alicloud
import pulumi_kubernetes as k8s
import pulumi_random as random

from components import cloud_facts
from components.config import StackConfig, generated_bucket_name
from components.network import Network
from components.workload_pod import RUN_AS_UID

OSS_DRIVER = "ossplugin.csi.alibabacloud.com"
NAS_DRIVER = "nasplugin.csi.alibabacloud.com"
DISK_STORAGE_CLASS = "alicloud-disk-essd"  # ACK's built-in ESSD class
NAS_MOUNT_OPTIONS = ["nolock,tcp,noresvport", "vers=3"]  # ACK's recommended NFSv3 options
# The shared KB volume needs locks that hold across nodes (the faiss writer lease, SQLite):
# NFSv4.0 carries them in the protocol, where v3 `nolock` keeps them on one node. The options are
# NAS's documented v4.0 ones; the driver maps `vers` to `vers=4.0` (cloud facts: storage.nasNfsV4).
NAS_LOCKING_MOUNT_OPTIONS = [
    "vers=4.0",
    "rsize=1048576",
    "wsize=1048576",
    "hard",
    "timeo=600",
    "retrans=2",
    "noresvport",
]
NAS_WRITABLE_MODE = "0777"
OSS_RRSA: dict[str, Any] = cloud_facts.value("storage", "ossRrsaVolume")
RRSA_TRUST: dict[str, Any] = cloud_facts.value("ack", "rrsaTrustPolicy")
READ_ACTIONS = ["oss:GetObject", "oss:GetObjectMeta", "oss:ListObjects", "oss:GetBucketInfo"]
WRITE_ACTIONS = [
    "oss:PutObject",
    "oss:DeleteObject",
    "oss:AbortMultipartUpload",
    "oss:ListParts",
    "oss:ListMultipartUploads",
]


def oss_policy(bucket: str, prefix: str, write: bool) -> str:
    """RAM policy reaching one bucket: listing under `prefix`, objects under `prefix/` only."""
    objects = f"acs:oss:*:*:{bucket}/{prefix}/*" if prefix else f"acs:oss:*:*:{bucket}/*"
    return json.dumps(
        {
            "Version": "1",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["oss:ListObjects", "oss:GetBucketInfo"],
                    "Resource": [f"acs:oss:*:*:{bucket}"],
                },
                {
                    "Effect": "Allow",
                    "Action": READ_ACTIONS + (WRITE_ACTIONS if write else []),
                    "Resource": [objects],
                },
            ],
        },
        sort_keys=True,
    )


def _metadata(rrsa: Any, key: str) -> str:
    """One field of the cluster's `rrsa_metadata` (an output type, or a dict offline)."""
    value = rrsa.get(key) if isinstance(rrsa, dict) else getattr(rrsa, key, None)
    if not value:
        raise ValueError(
            f"the cluster's rrsa_metadata has no {key}: RRSA must be enabled (enable_rrsa) "
            "before the OSS volumes can trust it"
        )
    return str(value)


def rrsa_trust_policy(rrsa: Any) -> str:
    """Trust policy of a role only the OSS CSI driver's fuse pods may assume: the cluster's
    RRSA OIDC provider as principal, issuer, audience and service account as conditions."""
    subject = f"system:serviceaccount:{OSS_RRSA['fuseNamespace']}:{OSS_RRSA['fuseServiceAccount']}"
    return json.dumps(
        {
            "Version": "1",
            "Statement": [
                {
                    "Action": RRSA_TRUST["action"],
                    "Effect": "Allow",
                    "Principal": {"Federated": [_metadata(rrsa, "ram_oidc_provider_arn")]},
                    "Condition": {
                        "StringEquals": {
                            "oidc:aud": RRSA_TRUST["audience"],
                            "oidc:iss": _metadata(rrsa, "rrsa_oidc_issuer_url"),
                            "oidc:sub": subject,
                        }
                    },
                }
            ],
        },
        sort_keys=True,
    )


def ossfs_options(write: bool) -> str:
    """ossfs `otherOpts`: files owned by the images' user (the CSI driver does not apply
    fsGroup to ossfs), read-only unless the mount writes."""
    return f"-o allow_other -o uid={RUN_AS_UID} -o gid={RUN_AS_UID} -o umask=022" + (
        "" if write else " -o ro"
    )


def rrsa_oss_role(
    name: str,
    role_name: str,
    bucket: pulumi.Input[str],
    prefix: str,
    *,
    write: bool,
    rrsa: pulumi.Output[Any],
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
    what: str,
    policy_description: str,
) -> pulumi.Output[str]:
    """A RAM role only the OSS CSI driver's fuse pods may assume (trust: the cluster's OIDC
    provider, `oidc:sub` of the driver's service account), with a policy on one bucket and
    prefix. Returns the role name once the policy is attached, so that a PV naming it is
    mounted only once the role may read. No AccessKey anywhere."""
    ram_role = alicloud.ram.Role(
        f"{name}-role",
        role_name=role_name,
        assume_role_policy_document=rrsa.apply(rrsa_trust_policy),
        description=f"ossfs ({what}) through RRSA: one bucket, prefix {prefix or '/'}",
        force=True,
        tags=tags,
        opts=opts,
    )
    policy = alicloud.ram.Policy(
        f"{name}-policy",
        policy_name=role_name,
        policy_document=pulumi.Output.from_input(bucket).apply(
            lambda b: oss_policy(b, prefix, write)
        ),
        description=policy_description,
        force=True,
        tags=tags,
        opts=opts,
    )
    attachment = alicloud.ram.RolePolicyAttachment(
        f"{name}-attachment",
        policy_name=policy.policy_name,
        policy_type="Custom",
        role_name=ram_role.role_name,
        opts=opts,
    )
    return pulumi.Output.all(ram_role.role_name, attachment.id).apply(lambda a: a[0])


class ModelStorage(pulumi.ComponentResource):
    """Model store (OSS or NAS) with read-only and writer PVCs, and the knowledge-base PVC."""

    store_id: pulumi.Output[str]
    bucket_name: pulumi.Output[str] | None
    bucket_endpoint: pulumi.Output[str] | None  # the bucket's internal endpoint (OSS only)
    cache_reader: pulumi.Output[str] | None  # the RAM user the Fluid cache's AccessKey is for
    model_pvc_name: pulumi.Output[str]
    model_writer_pvc_name: pulumi.Output[str]
    kb_pvc_name: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        network: Network,
        provider: k8s.Provider,
        namespace: pulumi.Input[str],
        rrsa: pulumi.Input[Any],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """`rrsa`: the cluster's `rrsa_metadata` output (OIDC provider ARN and issuer)."""
        super().__init__("chatchat:storage:ModelStorage", name, None, opts)
        self._rrsa = pulumi.Output.from_input(rrsa)
        store, kb = cfg.model_store, cfg.chat.kb
        self._name, self._cfg, self._network = name, cfg, network
        self._namespace = namespace
        self._k8s = pulumi.ResourceOptions(parent=self, provider=provider)
        self._tags = cfg.resource_tags()
        self.bucket_name = self.bucket_endpoint = self.cache_reader = None
        self._nas: tuple[pulumi.Output[str], pulumi.Output[str]] | None = None

        if (store.type == "nas" and not cfg.llm.model_pvc) or (
            kb.storage == "nas" and not cfg.chat.kb_pvc
        ):
            self._nas_file_system()  # first, whichever volume it holds

        if cfg.llm.model_pvc:
            self.model_pvc_name = self.model_writer_pvc_name = pulumi.Output.from_input(
                cfg.llm.model_pvc
            )
            self.store_id = pulumi.Output.from_input(cfg.llm.model_pvc)
        elif store.type == "oss":
            self._oss()
        else:
            self.store_id, mount_domain = self._nas_file_system()
            self.model_pvc_name = self._nas_pvc("model", mount_domain, read_only=True)
            self.model_writer_pvc_name = self._nas_pvc("model-writer", mount_domain, False)

        if cfg.chat.kb_pvc:
            self.kb_pvc_name = pulumi.Output.from_input(cfg.chat.kb_pvc)
        elif kb.storage == "nas":
            self.kb_pvc_name = self._nas_pvc(
                "kb",
                self._nas_file_system()[1],
                read_only=False,
                path="/chatchat-kb",
                size=kb.size,
                locking=True,
            )
        else:  # the chat rules refuse ReadWriteMany on a disk
            self.kb_pvc_name = self._claim(
                "kb", kb.size, kb.effective_access_mode, DISK_STORAGE_CLASS
            )
        self.register_outputs(
            {
                "storeId": self.store_id,
                "modelPvcName": self.model_pvc_name,
                "modelWriterPvcName": self.model_writer_pvc_name,
                "kbPvcName": self.kb_pvc_name,
            }
        )

    # --- OSS --------------------------------------------------------------------------------
    def _oss(self) -> None:
        name, cfg, store = self._name, self._cfg, self._cfg.model_store
        child = pulumi.ResourceOptions(parent=self)
        if store.bucket_name:
            bucket_name: pulumi.Input[str] = store.bucket_name
        else:
            suffix = random.RandomId(f"{name}-bucket-suffix", byte_length=4, opts=child)
            bucket_name = suffix.hex.apply(lambda h: generated_bucket_name(cfg, h))
        bucket = alicloud.oss.Bucket(
            f"{name}-bucket",
            bucket=bucket_name,
            server_side_encryption_rule={"sse_algorithm": "AES256"},
            versioning={"status": "Enabled"} if cfg.production else None,
            redundancy_type="ZRS" if cfg.production else "LRS",
            force_destroy=not cfg.production,
            tags=self._tags,
            opts=pulumi.ResourceOptions(parent=self, protect=cfg.production),
        )
        # `Bucket.acl` is deprecated (cloud facts: storage.ossBucketAclResource).
        alicloud.oss.BucketAcl(
            f"{name}-bucket-acl", bucket=bucket.bucket, acl="private", opts=child
        )
        self.bucket_name = bucket.bucket
        self.bucket_endpoint = bucket.intranet_endpoint
        self.store_id = bucket.bucket
        self.model_pvc_name = self._oss_pvc("model", bucket, write=False)
        self.model_writer_pvc_name = self._oss_pvc("model-writer", bucket, write=True)
        if store.fluid:
            self.cache_reader = self._cache_reader(bucket)

    def _cache_reader(self, bucket: alicloud.oss.Bucket) -> pulumi.Output[str]:
        """A RAM user that may only read the model prefix: JindoRuntime reads OSS with an
        AccessKey only (cloud facts storage.fluidOssCredentials). The stack makes no key: whoever
        deploys makes one for this user and puts it in `credentialsSecret` (README)."""
        name, cfg = self._name, self._cfg
        prefix = cfg.model_store.prefix.strip("/")
        child = pulumi.ResourceOptions(parent=self)
        user = alicloud.ram.User(
            f"{name}-cache-reader",
            name=f"{cfg.release}-{cfg.stack}-model-cache",
            comments="Fluid model cache (JindoRuntime): reads the model prefix only",
            tags=self._tags,
            force=True,
            opts=child,
        )
        policy = alicloud.ram.Policy(
            f"{name}-cache-reader-policy",
            policy_name=f"{cfg.release}-{cfg.stack}-model-cache-oss",
            policy_document=bucket.bucket.apply(lambda b: oss_policy(b, prefix, write=False)),
            description="read-only on the model prefix, for the Fluid cache's AccessKey",
            force=True,
            tags=self._tags,
            opts=child,
        )
        alicloud.ram.UserPolicyAttachment(
            f"{name}-cache-reader-attachment",
            policy_name=policy.policy_name,
            policy_type="Custom",
            user_name=user.name,
            opts=child,
        )
        return user.name

    def _oss_pvc(self, role: str, bucket: alicloud.oss.Bucket, write: bool) -> pulumi.Output[str]:
        """A static ossfs PV that authenticates through RRSA: a RAM role only the OSS CSI
        driver's fuse pods may assume (trust: the cluster's OIDC provider, `oidc:sub` of the
        driver's service account), with a policy on this bucket and prefix. No AccessKey."""
        cfg, prefix = self._cfg, self._cfg.model_store.prefix.strip("/")
        role_name = rrsa_oss_role(
            f"{self._name}-{role}",
            f"{cfg.release}-{cfg.stack}-{role}-oss",
            bucket.bucket,
            prefix,
            write=write,
            rrsa=self._rrsa,
            tags=self._tags,
            opts=pulumi.ResourceOptions(parent=self),
            what=f"{role} PVC",
            policy_description=f"{'read-write' if write else 'read-only'} on one model bucket",
        )
        return self._static_pvc(
            role,
            OSS_DRIVER,
            "ReadWriteMany" if write else "ReadOnlyMany",
            {
                "bucket": bucket.bucket,
                "url": bucket.intranet_endpoint,
                "path": f"/{prefix}",
                "otherOpts": ossfs_options(write),
                "authType": OSS_RRSA["volumeAttributes"]["authType"],
                "roleName": role_name,
            },
            read_only=not write,
        )

    # --- NAS --------------------------------------------------------------------------------
    def _nas_file_system(self) -> tuple[pulumi.Output[str], pulumi.Output[str]]:
        """The NAS file system and the domain of its mount target in the first zone (declared
        once, on the first call)."""
        if self._nas is not None:
            return self._nas
        name, cfg, network = self._name, self._cfg, self._network
        child = pulumi.ResourceOptions(parent=self)
        file_system = alicloud.nas.FileSystem(
            f"{name}-nas",
            protocol_type="NFS",
            storage_type=cfg.model_store.nas_storage_type,
            file_system_type="standard",
            encrypt_type=1,
            zone_id=network.zones[0],
            description=f"chatchat {cfg.stack}: models and knowledge base",
            tags=self._tags,
            opts=pulumi.ResourceOptions(parent=self, protect=cfg.production),
        )
        group = alicloud.nas.AccessGroup(
            f"{name}-nas-access",
            access_group_name=f"{cfg.release}-{cfg.stack}-vpc",
            access_group_type="Vpc",
            file_system_type="standard",
            description="the stack's node vSwitches only",
            opts=child,
        )
        # Only the node vSwitches mount NFS (the CSI driver, on the node): pods on Terway pod
        # vSwitches get no rule at all. Root is not squashed because the driver creates a missing
        # subdirectory and applies `mode` as root on the node (cloud facts: storage.nasRootSquash);
        # the pods themselves run as uid 10001 and never as root.
        for zone, cidr in zip(cfg.zones, cfg.network.vswitch_cidrs, strict=True):
            alicloud.nas.AccessRule(
                f"{name}-nas-access-{zone}",
                access_group_name=group.access_group_name,
                source_cidr_ip=cidr,
                rw_access_type="RDWR",
                user_access_type="no_squash",
                priority=1,
                file_system_type="standard",
                opts=child,
            )
        target = alicloud.nas.MountTarget(
            f"{name}-nas-mount",
            file_system_id=file_system.id,
            access_group_name=group.access_group_name,
            network_type="Vpc",
            vpc_id=network.vpc_id,
            vswitch_id=network.vswitch_ids[0],
            security_group_id=network.security_group_id,
            opts=child,
        )
        self._nas = file_system.id, target.mount_target_domain
        return self._nas

    def _nas_pvc(
        self,
        role: str,
        server: pulumi.Output[str],
        read_only: bool,
        path: str | None = None,
        size: str | None = None,
        locking: bool = False,
    ) -> pulumi.Output[str]:
        path = path or f"/{self._cfg.model_store.prefix.strip('/')}"
        mode = "ReadOnlyMany" if read_only else "ReadWriteMany"
        attributes: dict[str, Any] = {
            "server": server,
            "path": path,
            "vers": "4.0" if locking else "3",
        }
        if not read_only:
            # NAS subdirectories are created root-owned 0755 and the driver does not apply
            # fsGroup: it chmods the mounted subdirectory (cloud facts: storage.nasModeAttribute)
            # so that uid 10001 can write; the NAS access group keeps it to the VPC.
            attributes |= {"mode": NAS_WRITABLE_MODE, "modeType": "non-recursive"}
        return self._static_pvc(
            role,
            NAS_DRIVER,
            mode,
            attributes,
            read_only=read_only,
            size=size,
            mount_options=NAS_LOCKING_MOUNT_OPTIONS if locking else NAS_MOUNT_OPTIONS,
        )

    # --- Kubernetes -------------------------------------------------------------------------
    def _static_pvc(
        self,
        role: str,
        driver: str,
        mode: str,
        attributes: dict[str, Any],
        read_only: bool,
        size: str | None = None,
        mount_options: list[str] | None = None,
    ) -> pulumi.Output[str]:
        cfg = self._cfg
        size = size or cfg.model_store.size
        volume = static_volume(
            f"{self._name}-{role}-pv",
            f"{cfg.release}-{cfg.stack}-{role}",  # PVs are cluster-scoped: stack in name
            driver,
            mode,
            attributes,
            read_only=read_only,
            size=size,
            mount_options=mount_options,
            opts=self._k8s,
        )
        return self._claim(role, size, mode, "", volume_name=volume)

    def _claim(
        self,
        role: str,
        size: str,
        mode: str,
        storage_class: str,
        volume_name: pulumi.Input[str] | None = None,
    ) -> pulumi.Output[str]:
        return volume_claim(
            f"{self._name}-{role}-pvc",
            f"{self._cfg.release}-{role}",
            self._namespace,
            size,
            mode,
            storage_class,
            volume_name=volume_name,
            opts=self._k8s,
        )


def static_volume(
    name: str,
    pv_name: str,
    driver: str,
    mode: str,
    attributes: dict[str, Any],
    *,
    read_only: bool,
    size: str,
    mount_options: list[str] | None,
    opts: pulumi.ResourceOptions,
) -> pulumi.Output[str]:
    """A static CSI PersistentVolume (kept on release: the data is not the cluster's)."""
    csi = {
        "driver": driver,
        "volumeHandle": pv_name,
        "readOnly": read_only,
        "volumeAttributes": attributes,
    }
    volume = k8s.core.v1.PersistentVolume(
        name,
        metadata={"name": pv_name, "labels": {"alicloud-pvname": pv_name}},
        spec={
            "capacity": {"storage": size},
            "accessModes": [mode],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "mountOptions": mount_options,
            "csi": csi,
        },
        opts=opts,
    )
    return volume.metadata["name"]


def volume_claim(
    name: str,
    claim_name: str,
    namespace: pulumi.Input[str],
    size: str,
    mode: str,
    storage_class: str,
    *,
    volume_name: pulumi.Input[str] | None,
    opts: pulumi.ResourceOptions,
) -> pulumi.Output[str]:
    """A PVC bound to `volume_name` (static) or provisioned from `storage_class` (dynamic)."""
    # A dynamic disk may bind only when its first pod is scheduled: do not wait for Bound.
    annotations = {"pulumi.com/skipAwait": "true"} if storage_class else None
    claim = k8s.core.v1.PersistentVolumeClaim(
        name,
        metadata={"name": claim_name, "namespace": namespace, "annotations": annotations},
        spec={
            "accessModes": [mode],
            "storageClassName": storage_class,
            "volumeName": volume_name,
            "resources": {"requests": {"storage": size}},
        },
        opts=opts,
    )
    return claim.metadata["name"]
