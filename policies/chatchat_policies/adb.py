"""AnalyticDB for PostgreSQL (gpdb) policies: vector engine on, big enough, never open to all."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pulumi_policy import EnforcementLevel, ResourceValidationArgs

from .common import OPEN_TO_ALL, Report, describe, items, mapping, resource_policy

GPDB_INSTANCE = "alicloud:gpdb/instance:Instance"
GPDB_IP_ARRAY = "alicloud:gpdb/dbInstanceIpArray:DbInstanceIpArray"
_SPEC = re.compile(r"^(\d+)C(\d+)G$", re.IGNORECASE)
_SERVERLESS = ("Serverless", "ServerlessPro")


@resource_policy(
    "adb-vector-engine-enabled",
    EnforcementLevel.MANDATORY,
    "AnalyticDB for PostgreSQL instances have vector engine optimisation enabled.",
    types=[GPDB_INSTANCE],
)
def adb_vector_engine(args: ResourceValidationArgs, report: Report) -> None:
    status = args.props.get("vectorConfigurationStatus")
    if status != "enabled":
        report(
            f"{describe(args.resource_type, args.name)}: vectorConfigurationStatus is "
            f"{status or 'unset (disabled)'}; knowledge-base vectors need the vector engine. "
            f'Fix: set vector_configuration_status="enabled".'
        )


@resource_policy(
    "adb-segment-spec",
    EnforcementLevel.MANDATORY,
    "AnalyticDB for PostgreSQL segments are at least 4C16G (vector engine minimum).",
    types=[GPDB_INSTANCE],
    config={
        "minCores": {"type": "integer", "default": 4, "minimum": 1},
        "minMemoryGib": {"type": "integer", "default": 16, "minimum": 1},
    },
)
def adb_segment_spec(args: ResourceValidationArgs, report: Report) -> None:
    if args.props.get("dbInstanceMode") in _SERVERLESS:
        return  # sized through serverless resources, not a segment spec
    config = args.get_config()
    min_cores, min_gib = config.get("minCores", 4), config.get("minMemoryGib", 16)
    spec = str(args.props.get("instanceSpec") or "")
    match = _SPEC.match(spec)
    what = describe(args.resource_type, args.name)
    if not match:
        report(
            f"{what}: instanceSpec {spec or 'unset'} is not <cores>C<memory>G. "
            f"Fix: set instance_spec to at least {min_cores}C{min_gib}G."
        )
    elif int(match.group(1)) < min_cores or int(match.group(2)) < min_gib:
        report(
            f"{what}: instanceSpec {spec} is below {min_cores}C{min_gib}G, the minimum for "
            f"vector engine optimisation. Fix: set instance_spec to {min_cores}C{min_gib}G "
            f"or larger."
        )


def whitelist_entries(props: Mapping[str, Any]) -> list[str]:
    entries: list[str] = []
    for value in items(props.get("securityIpLists")):
        entries += str(value).split(",")
    for group in map(mapping, items(props.get("ipWhitelists"))):
        entries += str(group.get("securityIpList") or "").split(",")
    return [e.strip() for e in entries if e.strip()]


@resource_policy(
    "adb-whitelist-not-open",
    EnforcementLevel.MANDATORY,
    "AnalyticDB for PostgreSQL whitelists never contain 0.0.0.0/0.",
    types=[GPDB_INSTANCE, GPDB_IP_ARRAY],
)
def adb_whitelist(args: ResourceValidationArgs, report: Report) -> None:
    for entry in whitelist_entries(args.props):
        if entry in OPEN_TO_ALL:
            report(
                f"{describe(args.resource_type, args.name)}: whitelist entry {entry} opens the "
                f"database to every address. Fix: list the VPC or vSwitch CIDRs of the "
                f"cluster instead."
            )


POLICIES = [adb_vector_engine, adb_segment_spec, adb_whitelist]
