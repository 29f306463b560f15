"""Production stacks: redundancy and protection of what cannot be rebuilt from code."""

from __future__ import annotations

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from .common import (
    describe,
    is_production,
    k8s_name,
    mapping,
    number,
    pod_template,
    production_schema,
    schema,
    stack_of,
)

VSWITCH = "alicloud:vpc/switch:Switch"
MANAGED_KUBERNETES = "alicloud:cs/managedKubernetes:ManagedKubernetes"
# Stateful resources without a deletion-protection property of their own: `protect` guards them.
STATEFUL_TYPES = (
    "alicloud:gpdb/instance:Instance",
    "alicloud:nas/fileSystem:FileSystem",
    "alicloud:oss/bucket:Bucket",
)
COMPONENT_LABEL = "app.kubernetes.io/component"


def _validate_chat_replicas(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != "kubernetes:apps/v1:Deployment":
        return
    config = args.get_config()
    if not is_production(args.urn, args.props, config):
        return
    metadata, _ = pod_template(args.resource_type, args.props)
    if mapping(metadata.get("labels")).get(COMPONENT_LABEL) != "chat":
        return
    minimum = config.get("minChatReplicas", 2)
    replicas = number(mapping(args.props.get("spec")).get("replicas"))
    replicas = 1 if replicas is None else int(replicas)
    if replicas < minimum:
        report(f"{k8s_name(args.resource_type, args.props, args.name)} has {replicas} "
               f"replica(s) in production stack {stack_of(args.urn)}. Fix: set chat.pod.replicas "
               f"to {minimum} or more (with a ReadWriteMany knowledge-base volume).")


production_chat_replicas = ResourceValidationPolicy(
    name="production-chat-replicas",
    description="Production stacks run at least two chat replicas.",
    enforcement_level=EnforcementLevel.ADVISORY,
    config_schema=schema({**production_schema(),
                          "minChatReplicas": {"type": "integer", "default": 2, "minimum": 1}}),
    validate=_validate_chat_replicas,
)


def _validate_zones(args: StackValidationArgs, report: ReportViolation) -> None:
    config = args.get_config()
    switches = [r for r in args.resources if r.resource_type == VSWITCH]
    if not switches or not is_production(switches[0].urn, switches[0].props, config):
        return
    zones = sorted({str(s.props.get("zoneId")) for s in switches if s.props.get("zoneId")})
    minimum = config.get("minZones", 2)
    if len(zones) < minimum:
        report(f"production stack {stack_of(switches[0].urn)} has vSwitches in {len(zones)} "
               f"zone(s) ({', '.join(zones) or 'none'}). Fix: list {minimum} or more zones "
               f"(zones and network.vswitchCidrs) so a zone outage leaves the chatbot up.",
               switches[0].urn)


production_multi_zone = StackValidationPolicy(
    name="production-multi-zone",
    description="Production stacks spread their vSwitches over at least two zones.",
    enforcement_level=EnforcementLevel.ADVISORY,
    config_schema=schema({**production_schema(),
                          "minZones": {"type": "integer", "default": 2, "minimum": 1}}),
    validate=_validate_zones,
)


def _validate_protection(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not is_production(args.urn, args.props, args.get_config()):
        return
    what = describe(args.resource_type, args.name)
    protected = args.props.get("deletionProtection") is True
    if args.resource_type == MANAGED_KUBERNETES and not protected:
        report(f"{what}: deletionProtection is off in production. Fix: set "
               f"deletion_protection=True.")
    if args.resource_type in STATEFUL_TYPES and not args.opts.protect:
        report(f"{what} is not protected in production; a replace or destroy would lose data. "
               f"Fix: declare it with pulumi.ResourceOptions(protect=True).")


production_deletion_protection = ResourceValidationPolicy(
    name="production-deletion-protection",
    description="In production the cluster has deletion protection and stateful resources "
                "(ADB, NAS, OSS bucket) are protected.",
    enforcement_level=EnforcementLevel.ADVISORY,
    config_schema=schema(production_schema()),
    validate=_validate_protection,
)

POLICIES = [production_chat_replicas, production_multi_zone, production_deletion_protection]
