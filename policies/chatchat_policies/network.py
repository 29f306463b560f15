"""Network policies for Alibaba Cloud resources: no public ingress in security groups."""

from __future__ import annotations

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

from .common import describe, schema

SECURITY_GROUP_RULE = "alicloud:ecs/securityGroupRule:SecurityGroupRule"
OPEN_TO_ALL = {"0.0.0.0/0", "0.0.0.0", "::/0"}


def _validate_ingress(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != SECURITY_GROUP_RULE:
        return
    props = args.props
    if props.get("type") != "ingress" or (props.get("policy") or "accept") != "accept":
        return
    allowed = set(args.get_config().get("allowedPublicPortRanges", []))
    port_range = str(props.get("portRange") or "-1/-1")
    for key in ("cidrIp", "ipv6CidrIp"):
        cidr = props.get(key)
        if cidr in OPEN_TO_ALL and port_range not in allowed:
            report(f"{describe(args.resource_type, args.name)}: accepts {props.get('ipProtocol')} "
                   f"{port_range} from {cidr}, the whole internet. Fix: restrict cidr_ip to the "
                   f"VPC or office CIDRs, or reach the service through an internal SLB.")


security_group_no_public_ingress = ResourceValidationPolicy(
    name="security-group-no-public-ingress",
    description="Security group rules never accept ingress from 0.0.0.0/0.",
    enforcement_level=EnforcementLevel.MANDATORY,
    config_schema=schema({"allowedPublicPortRanges": {
        "type": "array", "items": {"type": "string"}, "default": [],
        "description": "Port ranges (e.g. 443/443) that may be open to 0.0.0.0/0."}}),
    validate=_validate_ingress,
)

POLICIES = [security_group_no_public_ingress]
