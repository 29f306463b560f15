"""Storage and access policies: private encrypted OSS, scoped RAM, OSS volumes through RRSA,
NAS not open to the world, a Fluid model cache that only reads."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from pulumi_policy import EnforcementLevel, ResourceValidationArgs, StackValidationArgs

from .common import (
    OPEN_TO_ALL,
    UNKNOWN,
    Report,
    describe,
    items,
    k8s_name,
    known,
    mapping,
    namespace_of,
    pod_template,
    resource_policy,
    stack_policy,
)

BUCKET = "alicloud:oss/bucket:Bucket"
BUCKET_ACL = "alicloud:oss/bucketAcl:BucketAcl"
BUCKET_SSE = "alicloud:oss/bucketServerSideEncryption:BucketServerSideEncryption"
RAM_POLICY = "alicloud:ram/policy:Policy"
RAM_ATTACHMENTS = (
    "alicloud:ram/userPolicyAttachment:UserPolicyAttachment",
    "alicloud:ram/rolePolicyAttachment:RolePolicyAttachment",
    "alicloud:ram/groupPolicyAttachment:GroupPolicyAttachment",
)
NAS_ACCESS_RULE = "alicloud:nas/accessRule:AccessRule"
RAM_ROLE = "alicloud:ram/role:Role"
PERSISTENT_VOLUME = "kubernetes:core/v1:PersistentVolume"
FLUID_DATASET = "kubernetes:data.fluid.io/v1alpha1:Dataset"
# Dataset mount options that would carry the OSS AccessKey in the object itself.
_FLUID_KEY_OPTIONS = {"fs.oss.accesskeyid", "fs.oss.accesskeysecret", "fs.oss.securitytoken"}
OSS_DRIVER = "ossplugin.csi.alibabacloud.com"
# Volume attributes that carry a long-lived AccessKey (the driver still reads them, deprecated).
_KEY_ATTRIBUTES = {"akid", "aksecret"}
SSE_ALGORITHMS = ("AES256", "KMS", "SM4")
_OSS_EVERYTHING = re.compile(r"^acs:oss:[^:]*:[^:]*:\*$")
# System policies that grant OSS actions on every bucket.
_BROAD_SYSTEM_POLICIES = re.compile(r"^(AdministratorAccess|AliyunOSS\w*Access)$")


@resource_policy(
    "oss-bucket-private",
    EnforcementLevel.MANDATORY,
    "OSS buckets are private (acl private on the bucket and on any BucketAcl).",
    types=[BUCKET, BUCKET_ACL],
)
def oss_bucket_private(args: ResourceValidationArgs, report: Report) -> None:
    acl = args.props.get("acl")
    if acl not in (None, "", "private"):
        report(
            f"{describe(args.resource_type, args.name)}: acl is {acl}, anyone can read the "
            f'model files. Fix: set acl="private" and reach the bucket through RAM '
            f"credentials."
        )


@stack_policy(
    "oss-bucket-encrypted",
    EnforcementLevel.MANDATORY,
    "OSS buckets have server-side encryption (on the bucket or a BucketServerSideEncryption "
    "resource).",
)
def oss_bucket_encrypted(args: StackValidationArgs, report: Report) -> None:
    sse = [
        r
        for r in args.resources
        if r.resource_type == BUCKET_SSE and r.props.get("sseAlgorithm") in SSE_ALGORITHMS
    ]
    for bucket in (r for r in args.resources if r.resource_type == BUCKET):
        rule = mapping(bucket.props.get("serverSideEncryptionRule"))
        if rule.get("sseAlgorithm") in SSE_ALGORITHMS:
            continue
        # The bucket name is computed for a new bucket: match by dependency first, then by name.
        name = known(bucket.props, "bucket")
        if any(
            bucket.urn in [d.urn for d in s.property_dependencies.get("bucket", [])]
            or (name not in (None, UNKNOWN) and known(s.props, "bucket") == name)
            for s in sse
        ):
            continue
        report(
            f"{describe(bucket.resource_type, bucket.name)} has no server-side encryption. "
            f'Fix: set server_side_encryption_rule sse_algorithm="AES256" (or KMS), or add '
            f"an oss.BucketServerSideEncryption for it.",
            bucket.urn,
        )


def _statements(props: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    found: list[Mapping[str, Any]] = []
    for key in ("policyDocument", "document"):
        raw = props.get(key)
        document = json.loads(raw) if isinstance(raw, str) and raw.strip() else mapping(raw)
        statement = mapping(document).get("Statement")
        found += (
            [statement] if isinstance(statement, Mapping) else list(map(mapping, items(statement)))
        )
    for s in map(mapping, items(props.get("statements"))):  # deprecated inline form
        found.append(
            {"Effect": s.get("effect"), "Action": s.get("actions"), "Resource": s.get("resources")}
        )
    return found


def _oss_wildcards(statement: Mapping[str, Any]) -> list[str]:
    if str(statement.get("Effect", "Allow")) != "Allow":
        return []
    actions = [str(a) for a in items(statement.get("Action"))]
    if not any(a == "*" or a.lower().startswith("oss:") for a in actions):
        return []
    return [
        str(r)
        for r in items(statement.get("Resource"))
        if str(r) == "*" or _OSS_EVERYTHING.match(str(r))
    ]


@resource_policy(
    "ram-oss-scoped",
    EnforcementLevel.MANDATORY,
    "RAM policies grant OSS actions on named buckets only: no `*` resource, no broad system OSS "
    "policies.",
    types=[RAM_POLICY, *RAM_ATTACHMENTS],
)
def ram_oss_scoped(args: ResourceValidationArgs, report: Report) -> None:
    what = describe(args.resource_type, args.name)
    if args.resource_type in RAM_ATTACHMENTS:
        name = str(args.props.get("policyName") or "")
        if args.props.get("policyType") == "System" and _BROAD_SYSTEM_POLICIES.match(name):
            report(
                f"{what}: attaches system policy {name}, which grants OSS on every bucket. "
                f"Fix: attach a custom ram.Policy scoped to the model bucket."
            )
        return
    try:
        statements = _statements(args.props)
    except json.JSONDecodeError as exc:
        report(f"{what}: policyDocument is not JSON ({exc}). Fix: pass json.dumps(document).")
        return
    for statement in statements:
        for resource in _oss_wildcards(statement):
            actions = ", ".join(str(a) for a in items(statement.get("Action")))
            report(
                f"{what}: allows {actions} on Resource {resource}, every bucket. Fix: name "
                f"the bucket, e.g. acs:oss:*:*:<bucket> and acs:oss:*:*:<bucket>/*."
            )


@resource_policy(
    "nas-access-not-open",
    EnforcementLevel.MANDATORY,
    "NAS access rules are never open to 0.0.0.0/0.",
    types=[NAS_ACCESS_RULE],
)
def nas_access_not_open(args: ResourceValidationArgs, report: Report) -> None:
    for key in ("sourceCidrIp", "ipv6SourceCidrIp"):
        cidr = args.props.get(key)
        if cidr in OPEN_TO_ALL:
            report(
                f"{describe(args.resource_type, args.name)}: {key} {cidr} lets every address "
                f"mount the file system. Fix: use the VPC CIDR of the cluster."
            )


@resource_policy(
    "oss-volume-rrsa",
    EnforcementLevel.MANDATORY,
    "OSS CSI volumes authenticate through RRSA (authType rrsa and a roleName): no AccessKey in "
    "volume attributes or a nodePublishSecretRef.",
    types=[PERSISTENT_VOLUME],
)
def oss_volume_rrsa(args: ResourceValidationArgs, report: Report) -> None:
    csi = mapping(mapping(args.props.get("spec")).get("csi"))
    if csi.get("driver") != OSS_DRIVER:
        return
    what = describe(args.resource_type, args.name)
    attributes = {str(k).lower(): v for k, v in mapping(csi.get("volumeAttributes")).items()}
    fix = (
        "Fix: set volumeAttributes authType: rrsa and roleName: <a RAM role trusting the "
        "cluster's RRSA OIDC provider for ack-csi-fuse/csi-fuse-ossfs>, and drop the keys."
    )
    if _KEY_ATTRIBUTES & attributes.keys() or csi.get("nodePublishSecretRef"):
        report(f"{what}: mounts OSS with a long-lived AccessKey. {fix}")
    elif str(attributes.get("authtype", "")).lower() != "rrsa" or not (
        attributes.get("rolename") or attributes.get("rolearn")
    ):
        report(f"{what}: OSS volume without authType rrsa and a roleName. {fix}")


def _federated(statement: Mapping[str, Any]) -> list[str]:
    return [str(p) for p in items(mapping(statement.get("Principal")).get("Federated"))]


@resource_policy(
    "ram-role-oidc-scoped",
    EnforcementLevel.MANDATORY,
    "A RAM role that trusts an OIDC provider (RRSA) names one service account and the STS "
    "audience exactly (StringEquals oidc:sub and oidc:aud, no wildcard).",
    types=[RAM_ROLE],
)
def ram_role_oidc_scoped(args: ResourceValidationArgs, report: Report) -> None:
    what = describe(args.resource_type, args.name)
    raw = args.props.get("assumeRolePolicyDocument") or args.props.get("document")
    if not isinstance(raw, str) or not raw.strip():
        return
    try:
        statements = items(json.loads(raw).get("Statement"))
    except (json.JSONDecodeError, AttributeError) as exc:
        report(f"{what}: the trust policy is not a JSON object ({exc}). Fix: json.dumps it.")
        return
    for statement in map(mapping, statements):
        if str(statement.get("Effect", "Allow")) != "Allow" or not _federated(statement):
            continue
        equals = mapping(mapping(statement.get("Condition")).get("StringEquals"))
        subject, audience = equals.get("oidc:sub"), equals.get("oidc:aud")
        if not isinstance(subject, str) or "*" in subject or not audience:
            report(
                f"{what}: trusts {', '.join(_federated(statement))} without an exact "
                f"oidc:sub and oidc:aud, so any service account of the cluster may assume "
                f'it. Fix: Condition StringEquals {{"oidc:aud": "sts.aliyuncs.com", '
                f'"oidc:iss": <issuer>, "oidc:sub": "system:serviceaccount:<ns>:<name>"}}.'
            )


def _claims(pod_spec: Mapping[str, Any]) -> dict[str, tuple[str, bool]]:
    """Volume name -> (claimName, readOnly) of a pod's PVC volumes."""
    found = {}
    for volume in map(mapping, items(pod_spec.get("volumes"))):
        claim = mapping(volume.get("persistentVolumeClaim"))
        if isinstance(claim.get("claimName"), str):
            found[str(volume.get("name"))] = (claim["claimName"], claim.get("readOnly") is True)
    return found


@stack_policy(
    "fluid-model-cache-read-only",
    EnforcementLevel.MANDATORY,
    "A Fluid Dataset (the model cache) mounts its store read-only, ReadOnlyMany, with no "
    "AccessKey in its options (encryptOptions from a Secret only); every pod mounts the PVC "
    "Fluid makes for it read-only.",
)
def fluid_model_cache_read_only(args: StackValidationArgs, report: Report) -> None:
    datasets = {}
    for r in args.resources:
        if r.resource_type != FLUID_DATASET:
            continue
        what = k8s_name(r.resource_type, r.props, r.name)
        spec = mapping(r.props.get("spec"))
        datasets[(namespace_of(r.props), known(r.props, "metadata", "name"))] = what
        if any(mode != "ReadOnlyMany" for mode in items(spec.get("accessModes"))):
            report(
                f"{what}: accessModes {items(spec.get('accessModes'))} let pods write through "
                "the cache. Fix: accessModes [ReadOnlyMany]; writers use the store's own volume.",
                r.urn,
            )
        for mount in map(mapping, items(spec.get("mounts"))):
            point = mount.get("mountPoint")
            if mount.get("readOnly") is not True:
                report(f"{what}: mount {point} is not readOnly. Fix: readOnly: true.", r.urn)
            inline = _FLUID_KEY_OPTIONS & {str(k).lower() for k in mapping(mount.get("options"))}
            if inline:
                report(
                    f"{what}: mount {point} carries {', '.join(sorted(inline))} in its options, "
                    "in the object and the stack's state. Fix: encryptOptions with "
                    "valueFrom.secretKeyRef naming an existing Secret.",
                    r.urn,
                )
    for r in args.resources:
        template = pod_template(r.resource_type, r.props)
        if template is None:
            continue
        pod_spec, namespace = template[1], namespace_of(r.props)
        claims = _claims(pod_spec)
        mounts = [
            mapping(m)
            for c in [*items(pod_spec.get("containers")), *items(pod_spec.get("initContainers"))]
            for m in items(mapping(c).get("volumeMounts"))
        ]
        for volume, (claim, read_only) in claims.items():
            dataset = datasets.get((namespace, claim))
            if dataset is None:
                continue
            writable = not read_only or any(
                m.get("name") == volume and m.get("readOnly") is not True for m in mounts
            )
            if writable:
                report(
                    f"{k8s_name(r.resource_type, r.props, r.name)} mounts {claim}, the PVC of "
                    f"{dataset}, writable. Fix: persistentVolumeClaim.readOnly and every "
                    "volumeMount readOnly: true.",
                    r.urn,
                )


POLICIES = [
    oss_bucket_private,
    oss_bucket_encrypted,
    ram_oss_scoped,
    oss_volume_rrsa,
    ram_role_oidc_scoped,
    nas_access_not_open,
    fluid_model_cache_read_only,
]
