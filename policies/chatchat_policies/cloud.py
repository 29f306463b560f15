"""Values the Alibaba Cloud API refuses, judged on the cloud facts table shipped in the pack
(`data/cloud_facts.json`), and an API server open to the internet in production."""

from __future__ import annotations

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from . import cloud_facts
from .common import describe, is_production, production_schema, schema, stack_of

MANAGED_KUBERNETES = "alicloud:cs/managedKubernetes:ManagedKubernetes"
GPDB_INSTANCE = "alicloud:gpdb/instance:Instance"
ACL_ENTRY = "alicloud:slb/aclEntryAttachment:AclEntryAttachment"
DYNAMIC = "pulumi-python:dynamic:Resource"
LISTENER_ACL_PURPOSE = "ack-api-server-acl"  # components/api_server_access.py ListenerAcl


def _validate_ack_version(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != MANAGED_KUBERNETES:
        return
    version = str(args.props.get("version") or "")
    creatable = cloud_facts.value("ack", "creatableMinorVersions")
    minor = ".".join(version.split(".")[:2])
    if version and minor not in creatable:
        report(f"{describe(args.resource_type, args.name)}: version {version} cannot be created; "
               f"ACK creates {', '.join(creatable)} only. Fix: set cluster.version to "
               f"{cloud_facts.value('ack', 'defaultVersion')} or another creatable version.")


ack_version_creatable = ResourceValidationPolicy(
    name="ack-version-creatable",
    description="ACK clusters use a Kubernetes version ACK still creates (cloud facts table).",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_validate_ack_version,
)


def _validate_adb_spec(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != GPDB_INSTANCE or args.props.get("dbInstanceMode") != "StorageElastic":
        return
    category = str(args.props.get("dbInstanceCategory") or "")
    specs = cloud_facts.value("adb", "storageElasticSpecs").get(category)
    spec = args.props.get("instanceSpec")
    if specs is not None and spec and spec not in specs:
        report(f"{describe(args.resource_type, args.name)}: instanceSpec {spec} is not offered "
               f"for {category} storage-elastic instances. Fix: set db.adb.instanceSpec to one "
               f"of {', '.join(specs)}.")


adb_spec_for_category = ResourceValidationPolicy(
    name="adb-spec-for-category",
    description="ADB storage-elastic segment specs are ones the API accepts for the category.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_validate_adb_spec,
)


def _validate_api_server(args: StackValidationArgs, report: ReportViolation) -> None:
    config = args.get_config()
    for cluster in (r for r in args.resources if r.resource_type == MANAGED_KUBERNETES):
        if not is_production(cluster.urn, cluster.props, config):
            continue
        # The provider's default for slb_internet_enabled is true.
        if cluster.props.get("slbInternetEnabled") is False:
            continue
        entries = [str(r.props.get("entry")) for r in args.resources
                   if r.resource_type == ACL_ENTRY]
        bound = any(r.resource_type == DYNAMIC and r.props.get("purpose") == LISTENER_ACL_PURPOSE
                    for r in args.resources)
        open_entries = [e for e in entries if e.endswith("/0") or e in ("0.0.0.0", "::")]
        what = f"{describe(cluster.resource_type, cluster.name)} in production stack " \
               f"{stack_of(cluster.urn)}"
        if not bound or not entries:
            report(f"{what} has a public API server endpoint with no access control list. Fix: "
                   "set cluster.apiServerAllowedCidrs to the deployer's egress CIDRs, or leave it "
                   "empty (no public endpoint) and run `pulumi up` inside the VPC.", cluster.urn)
        elif open_entries:
            report(f"{what} admits {', '.join(open_entries)} to the API server. Fix: list only "
                   "the deployer's egress CIDRs in cluster.apiServerAllowedCidrs.", cluster.urn)


api_server_not_open = StackValidationPolicy(
    name="production-api-server-restricted",
    description="In production the API server has no public endpoint, or one behind a whitelist "
                "that is not 0.0.0.0/0.",
    enforcement_level=EnforcementLevel.MANDATORY,
    config_schema=schema(production_schema()),
    validate=_validate_api_server,
)

POLICIES = [ack_version_creatable, adb_spec_for_category, api_server_not_open]
