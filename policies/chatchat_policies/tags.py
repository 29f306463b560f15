"""Tags on every taggable Alibaba Cloud resource: who owns it, which project and stack."""

from __future__ import annotations

from pulumi_policy import EnforcementLevel, ResourceValidationArgs

from .common import Report, describe, mapping, resource_policy

# Alibaba Cloud types this stack uses that take `tags` (tests check each against the provider).
TAGGABLE_TYPES = (
    "alicloud:vpc/network:Network",
    "alicloud:vpc/switch:Switch",
    "alicloud:vpc/natGateway:NatGateway",
    "alicloud:ecs/eipAddress:EipAddress",
    "alicloud:ecs/securityGroup:SecurityGroup",
    "alicloud:ecs/instance:Instance",
    "alicloud:cs/managedKubernetes:ManagedKubernetes",
    "alicloud:cs/nodePool:NodePool",
    "alicloud:oss/bucket:Bucket",
    "alicloud:nas/fileSystem:FileSystem",
    "alicloud:gpdb/instance:Instance",
    "alicloud:ram/policy:Policy",
)
DEFAULT_REQUIRED_TAGS = ["project", "stack", "owner"]


@resource_policy(
    "required-tags",
    EnforcementLevel.ADVISORY,
    "Taggable Alibaba Cloud resources carry the project, stack and owner tags.",
    types=TAGGABLE_TYPES,
    config={
        "requiredTags": {
            "type": "array",
            "items": {"type": "string"},
            "default": DEFAULT_REQUIRED_TAGS,
        }
    },
)
def required_tags(args: ResourceValidationArgs, report: Report) -> None:
    tags = mapping(args.props.get("tags"))
    required = args.get_config().get("requiredTags", DEFAULT_REQUIRED_TAGS)
    missing = [key for key in required if not tags.get(key)]
    if missing:
        report(
            f"{describe(args.resource_type, args.name)} lacks tag(s) {', '.join(missing)}. "
            f"Fix: pass tags=cfg.resource_tags() (project, stack, owner)."
        )


POLICIES = [required_tags]
