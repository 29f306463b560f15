"""The preflight items: pure functions of the config and the account's answers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from components import cloud_facts
from components.config import StackConfig, adb_category
from tools.preflight.account import Account

# Service roles the stack's resources need authorised (ACK console: "Cloud resource access
# authorization"); the autoscaler role comes from the cloud facts table.
SERVICE_ROLES = (
    "AliyunCSDefaultRole",
    "AliyunCSManagedKubernetesRole",
    "AliyunCSManagedCsiRole",
    "AliyunCSManagedNetworkRole",
    cloud_facts.value("ack", "autoscalerRole"),
)
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
    free = _attribute(response, "max-postpaid-instance-vcpu-count") - _attribute(
        response, "used-postpaid-instance-vcpu-count"
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
    check_instance_types,
    check_vcpu_quota,
    check_adb_spec,
    check_service_roles,
    check_registry,
)


def run_checks(cfg: StackConfig, account: Account) -> list[Finding]:
    return [finding for check in CHECKS for finding in check(cfg, account)]
