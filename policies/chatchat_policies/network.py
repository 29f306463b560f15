"""Network policies for Alibaba Cloud resources: no public ingress in security groups."""

from __future__ import annotations

from pulumi_policy import EnforcementLevel, ResourceValidationArgs

from .common import OPEN_TO_ALL, Report, describe, resource_policy

SECURITY_GROUP_RULE = "alicloud:ecs/securityGroupRule:SecurityGroupRule"


@resource_policy(
    "security-group-no-public-ingress",
    EnforcementLevel.MANDATORY,
    "Security group rules never accept ingress from 0.0.0.0/0.",
    types=[SECURITY_GROUP_RULE],
    config={
        "allowedPublicPortRanges": {
            "type": "array",
            "items": {"type": "string"},
            "default": [],
            "description": "Port ranges (e.g. 443/443) that may be open to 0.0.0.0/0.",
        }
    },
)
def security_group_no_public_ingress(args: ResourceValidationArgs, report: Report) -> None:
    props = args.props
    if props.get("type") != "ingress" or (props.get("policy") or "accept") != "accept":
        return
    allowed = set(args.get_config().get("allowedPublicPortRanges", []))
    port_range = str(props.get("portRange") or "-1/-1")
    for key in ("cidrIp", "ipv6CidrIp"):
        cidr = props.get(key)
        if cidr in OPEN_TO_ALL and port_range not in allowed:
            report(
                f"{describe(args.resource_type, args.name)}: accepts {props.get('ipProtocol')} "
                f"{port_range} from {cidr}, the whole internet. Fix: restrict cidr_ip to the "
                f"VPC or office CIDRs, or reach the service through an internal SLB."
            )


POLICIES = [security_group_no_public_ingress]
