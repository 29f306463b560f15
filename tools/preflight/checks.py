"""The preflight items: pure functions of the config and the account's answers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from components import cloud_facts
from components.cluster import stack_addons
from components.config import StackConfig, adb_category, generated_bucket_name
from tools.preflight.account import Account

# Service roles the stack's resources need authorised (ACK console: "Cloud resource access
# authorization"), from the cloud facts table.
SERVICE_ROLES = (
    *cloud_facts.value("ack", "serviceRoles"),
    cloud_facts.value("ack", "autoscalerRole"),
)
VCPU_ATTRIBUTES: dict[str, str] = cloud_facts.value("ecs", "vcpuQuotaAttributes")
RRSA_CSI_MIN = cloud_facts.value("storage", "ossRrsaPrerequisites")["csiPlugin"]
_SIZE = re.compile(r"\.(\d*)x?large$")


@dataclass(frozen=True)
class Finding:
    item: str
    ok: bool
    key: str
    message: str


def vcpus(instance_type: str) -> int:
    """vCPUs of an ECS type from its size suffix: large 2, xlarge 4, Nxlarge 4N."""
    match = _SIZE.search(instance_type)
    if not match:
        return 0
    if instance_type.endswith(".large"):
        return 2
    return 4 * int(match.group(1) or 1)


def check_ack_version(cfg: StackConfig, account: Account) -> list[Finding]:
    versions = account.kubernetes_versions(cfg.region)
    creatable = [v["version"] for v in versions if v.get("creatable", True)]
    ok = cfg.cluster.version in creatable
    return [
        Finding(
            "ack-version",
            ok,
            "cluster.version",
            f"{cfg.cluster.version} is creatable"
            if ok
            else f"{cfg.cluster.version} cannot be created in {cfg.region}; set "
            f"cluster.version to one of {', '.join(creatable) or '(none returned)'}",
        )
    ]


def _offered(response: dict[str, Any], zone: str, instance_type: str) -> bool:
    for row in response.get("AvailableZones", {}).get("AvailableZone", []):
        if row.get("ZoneId") != zone or row.get("Status") != "Available":
            continue
        for resource in row.get("AvailableResources", {}).get("AvailableResource", []):
            for item in resource.get("SupportedResources", {}).get("SupportedResource", []):
                if item.get("Value") == instance_type and item.get("Status") == "Available":
                    return True
    return False


def check_instance_types(cfg: StackConfig, account: Account) -> list[Finding]:
    findings = []
    for i, pool in enumerate(cfg.cluster.gpu_pools):
        for j, itype in enumerate(pool.instance_types):
            missing = [
                z
                for z in cfg.zones
                if not _offered(account.available_instance_type(cfg.region, z, itype), z, itype)
            ]
            findings.append(
                Finding(
                    "gpu-instance-type",
                    not missing,
                    f"cluster.gpuPools[{i}].instanceTypes[{j}]",
                    f"{itype} is offered in {', '.join(cfg.zones)}"
                    if not missing
                    else f"{itype} is not offered (or out of stock) in {', '.join(missing)}; "
                    "pick another type of the family or change zones",
                )
            )
    return findings


def _attribute(response: dict[str, Any], name: str) -> int:
    for item in response.get("AccountAttributeItems", {}).get("AccountAttributeItem", []):
        if item.get("AttributeName") == name:
            values = item.get("AttributeValues", {}).get("ValueItem", [])
            return sum(int(v.get("Value", 0)) for v in values)
    return 0


def check_vcpu_quota(cfg: StackConfig, account: Account) -> list[Finding]:
    response = account.account_attributes(cfg.region)
    free = _attribute(response, VCPU_ATTRIBUTES["max"]) - _attribute(
        response, VCPU_ATTRIBUTES["used"]
    )
    needed = sum(
        pool.max_size * max(vcpus(t) for t in pool.instance_types) for pool in cfg.cluster.gpu_pools
    )
    needed += cfg.cluster.system_pool.size * max(
        vcpus(t) for t in cfg.cluster.system_pool.instance_types
    )
    ok = needed <= free
    return [
        Finding(
            "vcpu-quota",
            ok,
            "cluster.gpuPools",
            f"{needed} vCPUs needed at full scale, {free} free"
            if ok
            else f"{needed} vCPUs needed at full scale but only {free} pay-as-you-go vCPUs are "
            "free; lower the pools' maxSize or raise the quota in Quota Center",
        )
    ]


def _version(text: str) -> tuple[int, ...]:
    """(1, 33, 1) for `v1.33.1-b0a9e2c-aliyun`; () when the text carries no version."""
    match = re.match(r"^v?(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    return tuple(int(p or 0) for p in match.groups()) if match else ()


def check_addons(cfg: StackConfig, account: Account) -> list[Finding]:
    """ACK's add-on catalogue for this cluster type, spec and version (ListAddons) offers every
    add-on the stack installs; with OSS volumes (RRSA), csi-plugin is new enough."""
    offered = {
        a.get("name"): a.get("version", "")
        for a in account.addons(cfg.region, cfg.cluster.cluster_spec, cfg.cluster.version).get(
            "addons", []
        )
    }
    findings = []
    for name in stack_addons(cfg):
        ok = name in offered
        findings.append(
            Finding(
                "ack-addons",
                ok,
                "cluster.version",
                f"{name} {offered.get(name, '')} is offered".replace("  ", " ")
                if ok
                else f"ACK offers no add-on {name} for {cfg.cluster.cluster_spec} "
                f"{cfg.cluster.version} in {cfg.region}; pick a cluster.version that offers it "
                "(components/cluster.py installs it)",
            )
        )
    uses_oss = cfg.model_store.type == "oss" and not cfg.llm.model_pvc
    csi = offered.get("csi-plugin")
    if uses_oss and csi is not None:
        ok = _version(csi) >= _version(RRSA_CSI_MIN)
        findings.append(
            Finding(
                "ack-addons",
                ok,
                "modelStore.type",
                f"csi-plugin {csi} mounts OSS through RRSA (needs {RRSA_CSI_MIN}+)"
                if ok
                else f"csi-plugin {csi} is older than {RRSA_CSI_MIN}, which RRSA OSS volumes "
                "need; pick a newer cluster.version or set modelStore.type to nas",
            )
        )
    return findings


def check_adb_spec(cfg: StackConfig, account: Account) -> list[Finding]:
    if cfg.db.db_type != "adb":
        return []
    adb, zone, category = cfg.db.adb, cfg.zones[0], adb_category(cfg)
    offered = {
        (c.get("InstanceClass"), c.get("Category"))
        for r in account.adb_resources(cfg.region, zone).get("Resources", [])
        if r.get("ZoneId") == zone
        for e in r.get("SupportedEngines", [])
        if e.get("SupportedEngineVersion") == adb.engine_version
        for c in e.get("SupportedInstanceClasses", [])
    }
    ok = (adb.instance_spec, category) in offered
    choices = sorted(c for c, cat in offered if cat == category)
    return [
        Finding(
            "adb-spec",
            ok,
            "db.adb.instanceSpec",
            f"{adb.instance_spec} {category} is offered in {zone}"
            if ok
            else f"{adb.instance_spec} ({category}, ADB {adb.engine_version}) is not offered "
            f"in {zone}; choose one of {', '.join(choices) or '(none)'} or another zone",
        )
    ]


def check_service_roles(cfg: StackConfig, account: Account) -> list[Finding]:
    return [
        Finding(
            "service-role",
            account.role(name) is not None,
            "cluster",
            f"{name} is authorised"
            if account.role(name) is not None
            else f"{name} does not exist; authorise it in the RAM console (ACK: cloud "
            "resource access authorization) before `pulumi up`",
        )
        for name in SERVICE_ROLES
    ]


def check_adb_quota(cfg: StackConfig, account: Account) -> list[Finding]:
    """Quota Center's AnalyticDB for PostgreSQL quotas in the region: the stack creates one
    instance, so every listed quota needs a free unit (`TotalUsage < TotalQuota`)."""
    if cfg.db.db_type != "adb":
        return []
    product = cloud_facts.value("adb", "quotaCenterProductCode")
    quotas = [
        q
        for q in account.product_quotas(cfg.region, product).get("Quotas", [])
        if q.get("TotalQuota") is not None and q.get("TotalUsage") is not None
    ]
    if not quotas:
        return [
            Finding(
                "adb-quota",
                True,
                "db.dbType",
                f"Quota Center lists no {product} quota for {cfg.region}: nothing to check",
            )
        ]
    findings = []
    for q in quotas:
        total, used = float(q["TotalQuota"]), float(q["TotalUsage"])
        name = f"{q.get('QuotaName') or q.get('QuotaActionCode')} ({q.get('QuotaActionCode')})"
        findings.append(
            Finding(
                "adb-quota",
                used < total,
                "db.dbType",
                f"{name}: {used:g} of {total:g} used"
                if used < total
                else f"{name} is used up in {cfg.region} ({used:g} of {total:g}): raise it in "
                "Quota Center, or set db.dbType to faiss (in the chat pod) for this stack",
            )
        )
    return findings


def check_bucket_name(cfg: StackConfig, account: Account) -> list[Finding]:
    """`modelStore.bucketName` must be free (OSS names are global): GetBucketInfo answers 404
    NoSuchBucket for a free name, 403 for another account's bucket, 200 for one of ours."""
    store = cfg.model_store
    if store.type != "oss" or cfg.llm.model_pvc:
        return []
    if not store.bucket_name:
        return [
            Finding(
                "bucket-name",
                True,
                "modelStore.bucketPrefix",
                f"{generated_bucket_name(cfg, '<8 hex>')}: a random suffix picked at the first "
                "`pulumi up` keeps the name free",
            )
        ]
    name, key = store.bucket_name, "modelStore.bucketName"
    answer = account.bucket_info(cfg.region, name)
    if answer.status == 404 and answer.code == "NoSuchBucket":
        return [Finding("bucket-name", True, key, f"{name} is free")]
    if answer.status == 200:
        why = "already exists in this account: `pulumi import` it or"
    elif answer.status == 403:
        why = f"belongs to another account ({answer.code}):"
    else:
        why = f"could not be checked (HTTP {answer.status} {answer.code}):"
    return [
        Finding(
            "bucket-name",
            False,
            key,
            f"{name} {why} set modelStore.bucketName to another name (or unset it for "
            "a random suffix)",
        )
    ]


def check_registry(cfg: StackConfig, account: Account) -> list[Finding]:
    own = any(not getattr(cfg, side).image.repository for side in ("llm", "chat"))
    if cfg.registry.edition != "personal" or not own:
        return []
    ok = bool(cfg.registry.pull_password)
    return [
        Finding(
            "registry-pull",
            ok,
            "registry.pullPassword",
            "the stack makes the image pull Secret"
            if ok
            else "no pull credentials: nodes cannot pull from ACR Personal Edition; run "
            "`pulumi config set --secret --path chatchat:registry.pullPassword ...` "
            "and set registry.pullUsername",
        )
    ]


CHECKS = (
    check_ack_version,
    check_addons,
    check_instance_types,
    check_vcpu_quota,
    check_adb_spec,
    check_adb_quota,
    check_service_roles,
    check_bucket_name,
    check_registry,
)


def run_checks(cfg: StackConfig, account: Account) -> list[Finding]:
    return [finding for check in CHECKS for finding in check(cfg, account)]
