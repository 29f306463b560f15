"""Values the Alibaba Cloud API refuses, judged on the cloud facts table shipped in the pack
(`data/cloud_facts.json`), and an API server open to the internet in production."""

from __future__ import annotations

from pulumi_policy import EnforcementLevel, ResourceValidationArgs, StackValidationArgs

from . import cloud_facts
from .common import (
    OPEN_TO_ALL,
    Report,
    describe,
    is_production,
    production_schema,
    resource_policy,
    stack_of,
    stack_policy,
)

MANAGED_KUBERNETES = "alicloud:cs/managedKubernetes:ManagedKubernetes"
GPDB_INSTANCE = "alicloud:gpdb/instance:Instance"
ACL_ENTRY = "alicloud:slb/aclEntryAttachment:AclEntryAttachment"
DYNAMIC = "pulumi-python:dynamic:Resource"
LISTENER_ACL_PURPOSE = "ack-api-server-acl"  # components/api_server_access.py ListenerAcl


@resource_policy(
    "ack-version-creatable",
    EnforcementLevel.MANDATORY,
    "ACK clusters use a Kubernetes version ACK still creates (cloud facts table).",
    types=[MANAGED_KUBERNETES],
)
def ack_version_creatable(args: ResourceValidationArgs, report: Report) -> None:
    version = str(args.props.get("version") or "")
    creatable = cloud_facts.value("ack", "creatableMinorVersions")
    minor = ".".join(version.split(".")[:2])
    if version and minor not in creatable:
        report(
            f"{describe(args.resource_type, args.name)}: version {version} cannot be created; "
            f"ACK creates {', '.join(creatable)} only. Fix: set cluster.version to "
            f"{cloud_facts.value('ack', 'defaultVersion')} or another creatable version."
        )


@resource_policy(
    "adb-spec-for-category",
    EnforcementLevel.MANDATORY,
    "ADB storage-elastic segment specs are ones the API accepts for the category.",
    types=[GPDB_INSTANCE],
)
def adb_spec_for_category(args: ResourceValidationArgs, report: Report) -> None:
    if args.props.get("dbInstanceMode") != "StorageElastic":
        return
    category = str(args.props.get("dbInstanceCategory") or "")
    specs = cloud_facts.value("adb", "storageElasticSpecs").get(category)
    spec = args.props.get("instanceSpec")
    if specs is not None and spec and spec not in specs:
        report(
            f"{describe(args.resource_type, args.name)}: instanceSpec {spec} is not offered "
            f"for {category} storage-elastic instances. Fix: set db.adb.instanceSpec to one "
            f"of {', '.join(specs)}."
        )


@stack_policy(
    "production-api-server-restricted",
    EnforcementLevel.MANDATORY,
    "In production the API server has no public endpoint, or one behind a whitelist that is not "
    "0.0.0.0/0.",
    config=production_schema(),
)
def api_server_not_open(args: StackValidationArgs, report: Report) -> None:
    config = args.get_config()
    for cluster in (r for r in args.resources if r.resource_type == MANAGED_KUBERNETES):
        if not is_production(cluster.urn, cluster.props, config):
            continue
        # The provider's default for slb_internet_enabled is true.
        if cluster.props.get("slbInternetEnabled") is False:
            continue
        entries = [
            str(r.props.get("entry")) for r in args.resources if r.resource_type == ACL_ENTRY
        ]
        bound = any(
            r.resource_type == DYNAMIC and r.props.get("purpose") == LISTENER_ACL_PURPOSE
            for r in args.resources
        )
        open_entries = [e for e in entries if e.endswith("/0") or e in OPEN_TO_ALL]
        what = (
            f"{describe(cluster.resource_type, cluster.name)} in production stack "
            f"{stack_of(cluster.urn)}"
        )
        if not bound or not entries:
            report(
                f"{what} has a public API server endpoint with no access control list. Fix: "
                "set cluster.apiServerAllowedCidrs to the deployer's egress CIDRs, or leave it "
                "empty (no public endpoint) and run `pulumi up` inside the VPC.",
                cluster.urn,
            )
        elif open_entries:
            report(
                f"{what} admits {', '.join(open_entries)} to the API server. Fix: list only "
                "the deployer's egress CIDRs in cluster.apiServerAllowedCidrs.",
                cluster.urn,
            )


POLICIES = [ack_version_creatable, adb_spec_for_category, api_server_not_open]
